"""The nncf quantizers QAT trains through compute exactly what the exported Q/DQ pair does.

Each quantizer of a quantized SmallNet is compared, bit for bit, with a one-node-pair ONNX
model (QuantizeLinear -> DequantizeLinear with the scale and zero point nncf.strip writes)
run in onnxruntime, on inputs placed within a few float steps of rounding boundaries.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.quantization import QuantConfig, quantize  # noqa: E402
from tests.helpers import SmallNet  # noqa: E402
from tests.helpers import block_data as _data  # noqa: E402


def _ort_qdq(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    inits = [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=axis),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis)]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _near_boundaries(scale: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Values (k + 1/2) steps from zero, moved by a few float32 ulps either way."""
    rng = np.random.default_rng(0)
    bshape = [1] * len(shape)
    bshape[axis] = -1
    step = scale.reshape(bshape) if scale.size > 1 else scale.reshape(())
    k = rng.integers(-126, 126, shape).astype(np.float32)
    x = ((k + 0.5) * step).astype(np.float32)
    bits = x.view(np.int32).astype(np.int64) + rng.integers(-3, 4, shape)
    return bits.astype(np.int32).view(np.float32)


@pytest.fixture(scope="module", params=["tensorrt", "onnxruntime"])  # 8- and 7-bit weights
def ptq_net(request):
    torch.manual_seed(0)
    return quantize(SmallNet().eval(), QuantConfig(target=request.param, mode="ptq",
                                                   calibration_size=64), calib_data=_data(128))


def test_every_quantizer_forward_equals_the_onnx_qdq_pair(ptq_net):
    from nncf.torch.quantization.layers import SymmetricQuantizer

    quantizers = [m for m in ptq_net.model.modules() if isinstance(m, SymmetricQuantizer)]
    assert len(quantizers) >= 5
    for quantizer in quantizers:
        qmin, _, scale, zero = quantizer.get_parameters_for_torch_fq()
        scale = scale.numpy().astype(np.float32)
        zero = zero.numpy().astype(np.int8 if qmin < 0 else np.uint8)
        shape, axis = (8, 3, 5, 5), 1
        if quantizer.per_channel:
            axis = int(np.argmax(quantizer.scale_shape))
            shape = tuple(scale.size if d == axis else 4 for d in range(len(quantizer.scale_shape)))
        else:
            scale, zero = scale.reshape(()), zero.reshape(())
        x = _near_boundaries(scale, shape, axis)
        if quantizer.clamps_to_range:  # narrow/half-range weights: strip clamps them
            low, high = (t.detach().numpy() for t in quantizer.get_input_low_input_high())
            x = np.clip(x, low.reshape(-1, *[1] * (len(shape) - 1)),
                        high.reshape(-1, *[1] * (len(shape) - 1))).astype(np.float32)
        with torch.no_grad():
            trained = quantizer(torch.from_numpy(x)).numpy()
        np.testing.assert_array_equal(trained, _ort_qdq(x, scale, zero, axis))


def test_qdq_forward_keeps_nncf_gradients(ptq_net):
    """QAT still trains: the input gets the straight-through gradient, the scale its own."""
    from nncf.torch.quantization.layers import SymmetricQuantizer

    quantizer = next(m for m in ptq_net.model.modules()
                     if isinstance(m, SymmetricQuantizer) and not m.per_channel)
    quantizer.scale.grad = None
    x = (torch.randn(4, 8, 5, 5) * 2).requires_grad_()
    quantizer(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert quantizer.scale.grad is not None and quantizer.scale.grad.abs().sum() > 0
