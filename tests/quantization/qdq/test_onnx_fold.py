"""Folding weight QuantizeLinear into int8 initializers: same outputs, ~4x smaller weights."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgekit.quantization.qdq.onnx_fold import fold_weight_quantizers


def _qdq_conv_model(rng: np.random.Generator) -> onnx.ModelProto:
    """x -> Q/DQ -> Conv(W: float -> per-channel Q/DQ) -> y, as fake-quant export writes it."""
    w = rng.normal(size=(16, 3, 3, 3)).astype(np.float32)
    w_scale = (np.abs(w).reshape(16, -1).max(1) / 127).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(16, np.int8), "w_zero"),
        numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "x_zero_src"),
    ]
    nodes = [
        helper.make_node("Identity", ["x_zero_src"], ["x_zero"]),
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("QuantizeLinear", ["W", "w_scale", "w_zero"], ["wq"], axis=0),
        helper.make_node("DequantizeLinear", ["wq", "w_scale", "w_zero"], ["wd"], axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_fold_keeps_outputs_bit_exact_and_stores_int8_weights():
    rng = np.random.default_rng(0)
    model = _qdq_conv_model(rng)
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    before = _run(model, x)
    size_before = len(model.SerializeToString())

    assert fold_weight_quantizers(model) == 1
    onnx.checker.check_model(model, full_check=True)
    after = _run(model, x)

    np.testing.assert_array_equal(after, before)
    inits = {i.name: i for i in model.graph.initializer}
    assert "W" not in inits and inits["wq"].data_type == TensorProto.INT8
    assert [n.op_type for n in model.graph.node].count("QuantizeLinear") == 1  # activation only
    assert len(model.SerializeToString()) < 0.5 * size_before


def test_fold_leaves_activation_quantizers_alone():
    model = _qdq_conv_model(np.random.default_rng(1))
    fold_weight_quantizers(model)
    assert fold_weight_quantizers(model) == 0
    assert any(n.op_type == "Identity" for n in model.graph.node)  # x_zero still read
