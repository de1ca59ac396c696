"""Pre-flight op check against the TensorRT / TFLite tables (real ONNX export)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgekit.core.errors import InvalidInputError, UnsupportedOpError  # noqa: E402
from edgekit.export.check import check_model  # noqa: E402
from tests.helpers import SmallNet  # noqa: E402


def test_small_net_lists_float_ops_with_layer_names():
    findings = check_model(SmallNet().eval(), "tensorrt", (1, 16, 16))
    assert [(f.op, f.status) for f in findings] == [("HardSwish", "float")]
    assert "/dw/" in findings[0].layer  # the torch module path survives in the node name
    everything = check_model(SmallNet().eval(), "tflite", (1, 16, 16), include_int8=True)
    ops = {f.op: f.status for f in everything}
    assert ops["Conv"] == ops["Gemm"] == ops["HardSwish"] == "int8"


class Divides(torch.nn.Module):
    def forward(self, x):
        return x / (x.abs().amax(dim=(1, 2, 3), keepdim=True) + 1)


def test_float_only_op_on_tflite():
    findings = check_model(Divides(), "tflite", (1, 4, 4))
    assert ("Div", "float") in {(f.op, f.status) for f in findings}


def _onnx_with(op: str, tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], name="head/det")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [])])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.mark.parametrize("target", ["tensorrt", "tflite"])
def test_unsupported_op_is_one_line_naming_op_layer_target(target, tmp_path):
    with pytest.raises(UnsupportedOpError) as info:
        check_model(_onnx_with("Det", tmp_path), target)
    message = str(info.value)
    assert "\n" not in message and "Det" in message and "head/det" in message
    assert target in message


def test_onnxruntime_runs_every_standard_op(tmp_path):
    findings = check_model(_onnx_with("Det", tmp_path), "onnxruntime")
    assert [(f.op, f.status) for f in findings] == [("Det", "float")]


def test_bad_target_and_path(tmp_path):
    with pytest.raises(InvalidInputError):
        check_model(SmallNet(), "coreml", (1, 16, 16))
    with pytest.raises(InvalidInputError):
        check_model(tmp_path / "missing.onnx", "tensorrt")
