"""export(): capability table, option validation before work, verification at the end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.core.errors import InvalidInputError, UnknownNameError, VerificationError
from edgekit.export import FORMATS, Artifact, export, list_formats


def test_capability_table_is_data():
    rows = {row["name"]: row for row in list_formats()}
    assert set(rows) >= {"onnx", "tflite", "engine"}
    assert rows["onnx"]["suffix"] == ".onnx" and "int8" in rows["onnx"]["precisions"]
    assert rows["tflite"]["options"]["io_dtype"]["choices"] == ["int8", "uint8", "float32"]
    json.dumps(rows)  # plain data all the way down


@pytest.mark.parametrize("fmt, options, message", [
    ("onnx", {"opset": 9}, "must be one of"),
    ("onnx", {"opsett": 17}, "did you mean opset"),
    ("onnx", {"dynamic_batch": "yes"}, "must be bool"),
    ("tflite", {"io_dtype": "int4"}, "must be one of"),
    ("engine", {"max_batch": True}, "must be int"),
])
def test_bad_options_fail_before_any_work(fmt, options, message, tmp_path):
    with pytest.raises(InvalidInputError, match=message):
        export(object(), fmt, tmp_path / "never", **options)  # object(): nothing could run
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_suggests():
    with pytest.raises(UnknownNameError, match="did you mean: onnx"):
        FORMATS.get("onx")


@pytest.mark.slow
def test_export_verifies_in_onnxruntime(quantized_net, tmp_path):
    from tests.helpers import block_data

    data = block_data(200, seed=5)
    artifact = export(quantized_net, "onnx", tmp_path / "q.onnx", data=data)
    assert isinstance(artifact, Artifact) and artifact.precision == "int8"
    report = artifact.verify_report
    assert report.runtime == "onnxruntime" and report.samples == 200
    assert report.agreement >= 0.995 and report.passed
    assert report.deployed_accuracy is not None
    assert abs(report.deployed_accuracy - report.reference_accuracy) <= 0.005
    assert report.max_error_steps < 4  # ties may round one int8 step apart
    saved = json.loads((tmp_path / "q.onnx.verify.json").read_text())
    assert saved["agreement"] == report.agreement
    json.dumps(artifact.to_dict())


@pytest.mark.slow
def test_mismatch_raises_with_numbers_and_still_writes_report(trained_net, tmp_path):
    import torch

    from edgekit.export.verify import verify
    from tests.helpers import SmallNet, block_data

    path = export(trained_net, "onnx", tmp_path / "f.onnx", input_shape=(1, 16, 16)).path
    torch.manual_seed(1)
    other = SmallNet().eval()  # untrained: a different model than the file holds
    with pytest.raises(VerificationError, match=r"agreement 0\.\d+"):
        verify(path, other, block_data(64), report_path=tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is False and report["agreement"] < 0.995


def test_verify_rejects_missing_file(tmp_path):
    from edgekit.export.verify import verify

    with pytest.raises(InvalidInputError, match="no artifact"):
        verify(tmp_path / "x.onnx", None, np.zeros((1, 1, 4, 4), np.float32))
