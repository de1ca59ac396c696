"""The onnxruntime target: every conv fused by onnxruntime, and the fused x86 kernels
computing what the trained model computes (7-bit weights, biases on their int32 grid).

Real nncf PTQ, real ONNX export and real onnxruntime sessions. "Reference" runs have graph
optimization off (each Q/DQ and float op as the ONNX spec defines it), so equal reference
outputs mean the rewritten file computes exactly what the unrewritten one does.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

from edgekit.export.onnx import export_onnx, read_metadata  # noqa: E402
from edgekit.export.verify import verify  # noqa: E402
from edgekit.quantization import QuantConfig, quantize  # noqa: E402
from edgekit.quantization.qdq.bias_grid import bias_steps  # noqa: E402
from edgekit.quantization.qdq.onnx_uint8 import GraphIndex, requantize_after_data_movement  # noqa: E402
from tests.helpers import block_data  # noqa: E402

SIZE = 32  # input height and width of the rewrite tests (MobileNetV2 needs > 16)


class ShuffleBlockNet(torch.nn.Module):
    """ShuffleNetV2's pattern: channel split, concat and channel shuffle between convs."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())
        self.mix = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        y = self.stem(x)
        kept, worked = y.chunk(2, dim=1)
        y = torch.cat([kept, self.branch(worked)], dim=1)
        b, c, h, w = y.shape
        y = y.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
        return self.head(self.mix(y).mean((2, 3)))


def _exports(net, tmp_path):
    """The same PTQ model written for onnxruntime (rewritten) and for TensorRT (as is)."""
    torch.manual_seed(0)
    qm = quantize(net.eval(), QuantConfig(target="onnxruntime", mode="ptq", calibration_size=64),
                  calib_data=block_data(64, size=SIZE))
    as_tensorrt = dataclasses.replace(qm, config=dataclasses.replace(qm.config, target="tensorrt"))
    return (export_onnx(qm, tmp_path / "ort.onnx").path,
            export_onnx(as_tensorrt, tmp_path / "plain.onnx").path)


def _run(path, x, *, optimized, saved=None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if saved is not None:
        options.optimized_model_filepath = str(saved)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def _float_ops(path, tmp_path):
    """(convs onnxruntime's optimized CPU graph runs in float, fused int8 convs and adds).

    (Convs that feed h-swish get a quantizer on their output for this target:
    tests/quantization/qdq/test_fusable.py.)
    """
    saved = tmp_path / f"{path.stem}.optimized.onnx"
    _run(path, np.zeros((1, 1, SIZE, SIZE), np.float32), optimized=True, saved=saved)
    ops = [n.op_type for n in onnx.load(str(saved)).graph.node]
    return (ops.count("Conv") + ops.count("FusedConv"),
            ops.count("QLinearConv") + ops.count("QLinearAdd"))


def _mobilenet_v2():
    from edgekit.models import create_model

    return create_model("mobilenet_v2", num_classes=10, in_channels=1, input_size=SIZE)


# MobileNetV2: 52 convs, 10 residual adds; the plain file left 15 of its convs in float
@pytest.mark.parametrize(("net", "ops"), [(_mobilenet_v2, 62), (ShuffleBlockNet, 3)])
def test_rewrite_keeps_the_arithmetic_and_fuses_every_conv(net, ops, tmp_path):
    torch.manual_seed(1)
    rewritten, plain = _exports(net(), tmp_path)
    x = block_data(64, seed=2, size=SIZE).x

    np.testing.assert_array_equal(_run(rewritten, x, optimized=False),
                                  _run(plain, x, optimized=False))
    meta = read_metadata(rewritten)
    assert int(meta["activations_as_uint8"]) >= 1  # a signed tensor was re-typed
    assert "activations_as_uint8" not in read_metadata(plain)
    g = GraphIndex(onnx.load(str(rewritten)).graph)
    activation_q = [n for n in g.graph.node if n.op_type == "QuantizeLinear"]
    assert {g.constants[n.input[2]].dtype for n in activation_q} == {np.dtype(np.uint8)}

    assert _float_ops(rewritten, tmp_path) == (0, ops)
    assert _float_ops(plain, tmp_path)[0] > 0  # what the rewrite is for


def test_shuffle_block_is_requantized_after_the_split_and_shuffle(tmp_path):
    torch.manual_seed(1)
    rewritten, _ = _exports(ShuffleBlockNet(), tmp_path)
    assert int(read_metadata(rewritten)["requantized_after_data_movement"]) >= 3


def test_mixed_grids_are_not_requantized():
    """A Concat of two different grids is not one grid: no pair is inserted after it."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(s, np.float32), n)
             for n, s in (("sa", 0.1), ("sb", 0.2))]
    inits.append(numpy_helper.from_array(np.array(0, np.uint8), "z"))
    nodes = [helper.make_node("QuantizeLinear", [v, s, "z"], [f"{v}q"]) for v, s in
             (("a", "sa"), ("b", "sb"))]
    nodes += [helper.make_node("DequantizeLinear", [f"{v}q", s, "z"], [f"{v}d"]) for v, s in
              (("a", "sa"), ("b", "sb"))]
    nodes.append(helper.make_node("Concat", ["ad", "bd"], ["c"], axis=1))
    nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    info = [helper.make_tensor_value_info(v, TensorProto.FLOAT, [1, 2]) for v in "ab"]
    graph = helper.make_graph(nodes, "g", info,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert requantize_after_data_movement(model) == 0
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.array(0.1, np.float32), "sb"))
    assert requantize_after_data_movement(model) == 1
    onnx.checker.check_model(model, full_check=True)


def _largest_weights(path):
    proto = onnx.load(str(path))
    return sorted(int(np.abs(onnx.numpy_helper.to_array(i)).max()) for i in proto.graph.initializer
                  if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1)


def test_tensorrt_weights_use_the_whole_int8_range(trained_net, tmp_path):
    """nncf's default overflow fix halves the first conv's range; TensorRT needs no such fix."""
    qm = quantize(trained_net, QuantConfig(target="tensorrt", mode="ptq", calibration_size=64),
                  calib_data=block_data(64))
    assert _largest_weights(export_onnx(qm, tmp_path / "m.onnx").path) == [127, 127, 127]


def test_weights_are_7bit_but_depthwise_and_biases_sit_on_their_int32_grid(trained_net, tmp_path):
    qm = quantize(trained_net, QuantConfig(target="onnxruntime", mode="ptq",
                                           calibration_size=64), calib_data=block_data(64))
    path = export_onnx(qm, tmp_path / "m.onnx").path
    # stem conv and head 7-bit; the depthwise conv 8-bit
    assert _largest_weights(path) == [63, 63, 127]
    assert qm.weight_quantizers_7bit == 2

    steps = bias_steps(path)
    assert len(steps) == 3 and qm.biases_on_int32_grid == 3
    params = dict(qm.model.named_parameters())
    for name, step in steps.items():
        units = params[name].detach().numpy() / step
        np.testing.assert_allclose(units, np.round(units), atol=1e-3)


def test_fused_kernels_reproduce_the_trained_model(trained_net, tmp_path):
    qm = quantize(trained_net, QuantConfig(target="onnxruntime", epochs=1, calibration_size=64),
                  train_data=block_data(256), val_data=block_data(64, seed=1))
    path = export_onnx(qm, tmp_path / "m.onnx").path
    report = verify(path, qm.model, block_data(256, seed=3))  # default: onnxruntime's fused
    assert report.kernels == "optimized"
    assert report.agreement == 1.0 and report.max_error_steps <= 1.0


def test_pairs_with_other_readers_keep_int8():
    """A quantized tensor read by anything but its DequantizeLinear keeps its type."""
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.quantization.qdq.onnx_uint8 import signed_activations_as_uint8

    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = [helper.make_node("QuantizeLinear", [v, "s", "z"], [f"{v}q"]) for v in "ab"]
    nodes += [helper.make_node("DequantizeLinear", ["aq", "s", "z"], ["ad"]),
              helper.make_node("DequantizeLinear", ["bq", "s", "z"], ["bd"]),
              helper.make_node("Identity", ["bq"], ["b_raw"])]  # a second, integer reader
    info = [helper.make_tensor_value_info(v, TensorProto.FLOAT, [2]) for v in "ab"]
    outputs = [helper.make_tensor_value_info("ad", TensorProto.FLOAT, [2]),
               helper.make_tensor_value_info("bd", TensorProto.FLOAT, [2]),
               helper.make_tensor_value_info("b_raw", TensorProto.INT8, [2])]
    model = helper.make_model(helper.make_graph(nodes, "g", info, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    x = {"a": np.array([-1.0, 0.26], np.float32), "b": np.array([0.3, -12.9], np.float32)}
    before = ort.InferenceSession(model.SerializeToString()).run(["ad", "bd"], x)

    assert signed_activations_as_uint8(model) == 1  # a only
    onnx.checker.check_model(model, full_check=True)
    zero_of = {n.output[0]: n.input[2] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    assert zero_of["bq"] == "z"
    after = ort.InferenceSession(model.SerializeToString()).run(["ad", "bd"], x)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
