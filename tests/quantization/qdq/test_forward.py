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


@pytest.mark.parametrize("grad", [False, True], ids=["evaluation", "qat-step"])
def test_every_quantizer_forward_equals_the_onnx_qdq_pair(ptq_net, grad):
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
        with torch.set_grad_enabled(grad):  # the two paths of QDQSymmetricQuantizer
            trained = quantizer(torch.from_numpy(x).requires_grad_(grad)).detach().numpy()
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


def test_qat_step_gradients_are_nncf_own_bit_for_bit(ptq_net):
    """The QAT-step path trains exactly as nncf's autograd node would."""
    import copy

    from nncf.torch.quantization.layers import SymmetricQuantizer

    from edgekit.quantization.qdq.forward import QDQSymmetricQuantizer

    for ours in [m for m in ptq_net.model.modules() if isinstance(m, QDQSymmetricQuantizer)]:
        nncf_own = copy.deepcopy(ours)
        nncf_own.__class__ = SymmetricQuantizer
        shape = (4, *ours.scale_shape[1:]) if ours.per_channel else (4, 8, 5, 5)
        if ours.per_channel:
            shape = tuple(s if s > 1 else 3 for s in ours.scale_shape)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 3
        grads = []
        for quantizer in (ours, nncf_own):
            quantizer.scale.grad = None
            xi = x.clone().requires_grad_()
            quantizer(xi).mul(torch.linspace(-1, 1, xi.numel()).reshape(shape)).sum().backward()
            grads.append((xi.grad, quantizer.scale.grad))
        assert torch.equal(grads[0][0], grads[1][0])
        assert torch.equal(grads[0][1], grads[1][1])


def test_a_weight_past_the_narrow_range_is_deployed_as_trained(tmp_path):
    """QAT can move a weight past its quantizer's range; the file must hold the -127 the
    trained model used, not the -128 QuantizeLinear would saturate to (the stored weight
    is clamped by nncf.strip, which finds it through the quantizer's traced op)."""
    from onnx import numpy_helper

    from edgekit.export.onnx import export_onnx

    torch.manual_seed(0)
    qm = quantize(SmallNet().eval(), QuantConfig(target="tensorrt", mode="ptq",
                                                 calibration_size=64), calib_data=_data(128))
    conv = next(m for m in qm.model.modules() if isinstance(m, torch.nn.Conv2d))  # the stem
    quantizer = next(m for m in qm.model.modules()
                     if getattr(m, "clamps_to_range", False) and m.scale.numel() == 8)
    step = quantizer.get_parameters_for_torch_fq()[2].reshape(-1)
    with torch.no_grad():
        conv.weight[0].fill_(-130 * float(step[0]))  # 2.5 steps past the low end
        conv.weight[0, 0, 0, 0] = 130 * float(step[0])
    path = export_onnx(qm, tmp_path / "m.onnx", input_shape=(1, 16, 16)).path
    weights = [numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer
               if i.data_type == TensorProto.INT8 and tuple(i.dims) == tuple(conv.weight.shape)]
    assert len(weights) == 2  # the stem's and the depthwise conv's
    rows = [w[0].reshape(-1) for w in weights]
    assert any(row[0] == 127 and (row[1:] == -127).all() for row in rows)
    assert not any((w == -128).any() for w in weights)
