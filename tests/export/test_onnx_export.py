"""ONNX export: QDQ layout TensorRT's explicit quantization expects, checked on the real file."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402

from edgekit.core.errors import ExportError, InvalidInputError  # noqa: E402
from edgekit.export.onnx import export_onnx, read_metadata  # noqa: E402
from tests.helpers import block_data  # noqa: E402

PASS_THROUGH = {"Flatten", "Reshape", "Identity"}  # TensorRT moves Q/DQ across these


def _producers(graph):
    return {out: node for node in graph.node for out in node.output}


def _source(name, producers):
    node = producers.get(name)
    while node is not None and node.op_type in PASS_THROUGH:
        node = producers.get(node.input[0])
    return node


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.slow
def test_qdq_on_every_conv_and_gemm_input(quantized_net, tmp_path):
    artifact = export_onnx(quantized_net, tmp_path / "m.onnx")
    proto = onnx.load(str(artifact.path))
    graph = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = _producers(graph)
    compute = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(compute) == 3
    for node in compute:
        act, weight = (_source(node.input[i], producers) for i in (0, 1))
        assert act.op_type == "DequantizeLinear", f"{node.name}: activation not from DQ"
        assert weight.op_type == "DequantizeLinear", f"{node.name}: weight not from DQ"
        axis = {a.name: a.i for a in weight.attribute}.get("axis", 1)
        scale = inits[weight.input[1]]
        assert axis == 0 and scale.ndim == 1 and scale.size > 1, "weights must be per-channel"
        assert np.ndim(inits.get(act.input[1], np.zeros(()))) == 0, "activations per-tensor"
    # symmetric signed int8: every zero point is an int8 zero
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = _zero_point(node, graph, inits, producers)
            assert zp.dtype == np.int8 and not zp.any(), node.name
    assert not any(n.op_type == "BatchNormalization" for n in graph.node)
    assert {o.domain: o.version for o in proto.opset_import}[""] >= 13
    dim0 = graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value, "batch axis must be dynamic"
    onnx.checker.check_model(proto, full_check=True)
    meta = read_metadata(artifact.path)
    assert meta["precision"] == "int8" and meta["target"] == "tensorrt"
    assert artifact.to_dict()["sha256"] == artifact.sha256 and len(artifact.sha256) == 64


def _zero_point(node, graph, inits, producers):
    name = node.input[2]
    while name not in inits:  # the exporter shares zero points through Identity nodes
        name = producers[name].input[0]
    return inits[name]


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 7])
def test_onnxruntime_matches_fake_quant_model(quantized_net, tmp_path, batch):
    path = export_onnx(quantized_net, tmp_path / "m.onnx").path
    x = block_data(batch, seed=3).x
    with torch.no_grad():
        ref = quantized_net.model(torch.from_numpy(x)).numpy()
    out = _run(path, x)
    # onnxruntime accumulates in another order, so a value at a rounding tie may land one
    # int8 step away; that moves a logit by far less than the gap between classes
    np.testing.assert_allclose(out, ref, atol=0.02 * np.abs(ref).max())
    assert (out.argmax(1) == ref.argmax(1)).all()


@pytest.mark.slow
def test_float_export_matches_and_has_no_qdq(trained_net, tmp_path):
    artifact = export_onnx(trained_net, tmp_path / "f.onnx", input_shape=(1, 16, 16),
                           metadata={"recipe": {"epochs": 3}})
    ops = {n.op_type for n in onnx.load(str(artifact.path)).graph.node}
    assert "QuantizeLinear" not in ops and artifact.precision == "fp32"
    assert read_metadata(artifact.path)["recipe"] == '{"epochs": 3}'
    x = block_data(4, seed=2).x
    with torch.no_grad():
        ref = trained_net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(artifact.path, x), ref, atol=1e-5, rtol=1e-4)


class NotTraceable(torch.nn.Module):
    def forward(self, x):
        return [x.sum().item()]  # a Python float leaves the graph: nothing to trace


def test_untraceable_model_leaves_nothing(tmp_path):
    target = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="cannot be exported"):
        export_onnx(NotTraceable(), target, input_shape=(1, 4, 4))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [dict(input_shape=(1, 4, 4), opset=11),
                                    dict(input_shape=(4, 4)), dict()])
def test_bad_options(kwargs, tmp_path):
    with pytest.raises(InvalidInputError):
        export_onnx(torch.nn.Conv2d(1, 1, 1), tmp_path / "x.onnx", **kwargs)
