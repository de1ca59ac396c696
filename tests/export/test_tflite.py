"""TFLite export round trips in the real LiteRT interpreter: float, int8, uint8/float32 I/O,
provenance metadata, op inspection, the vendor PTQ baseline, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgekit.core.errors import ExportError, FormatError, InvalidInputError  # noqa: E402
from edgekit.export.tflite import (  # noqa: E402
    export_tflite,
    float_compute_ops,
    inspect_tflite,
    read_tflite_provenance,
    run_tflite,
    vendor_ptq_tflite,
)
from edgekit.quantization import QuantConfig  # noqa: E402


class SmallNet(nn.Module):
    """Conv+BN, hardswish, residual add, mean, linear: the ops litert's own PTQ leaves in float."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, 2, 1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = x + F.hardswish(self.c2(x))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((64, 1, 16, 16), dtype=np.float32)


@pytest.fixture(scope="module")
def ptq_model(data):
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    cfg = QuantConfig(target="tflite", mode="ptq", epochs=0, calibration_size=32, batch_size=16)
    return quantize_for_tflite(SmallNet(), cfg, calib_data=data)


@pytest.fixture(scope="module")
def int8_file(ptq_model, data, tmp_path_factory):
    return export_tflite(ptq_model, tmp_path_factory.mktemp("t") / "m.tflite",
                         calibration=data[:8])


def test_float_export_round_trip(data, tmp_path):
    torch.manual_seed(0)
    model = SmallNet().eval()
    art = export_tflite(model, tmp_path / "f.tflite", calibration=data[:4])
    assert art.precision == "fp32" and art.format == "tflite"
    got = run_tflite(art.path, data[:16])
    with torch.no_grad():
        want = model(torch.from_numpy(data[:16])).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert all("float32" in op.input_dtypes + op.output_dtypes for op in inspect_tflite(art.path)
               if op.op_name in ("CONV_2D", "FULLY_CONNECTED"))


def test_int8_file_is_full_integer_and_matches_reference(int8_file, ptq_model, data):
    ops = inspect_tflite(int8_file.path)
    assert float_compute_ops(int8_file.path) == []
    assert {"QUANTIZE", "DEQUANTIZE"}.isdisjoint(op.op_name for op in ops)
    names = {op.op_name for op in ops}
    assert {"HARD_SWISH", "ADD", "MEAN", "FULLY_CONNECTED"} <= names
    got = run_tflite(int8_file.path, data)
    with torch.no_grad():
        want = ptq_model.model(torch.from_numpy(data)).numpy()
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.95
    assert int8_file.metadata["self_check"]["samples"] == 8


def test_provenance_is_embedded_and_hash_matches(int8_file):
    from edgekit.core.io import sha256_file

    prov = read_tflite_provenance(int8_file.path)
    assert prov["producer"] == "edgekit" and prov["precision"] == "int8"
    assert prov["quant_scheme"]["target"] == "tflite"
    assert prov["recipe"]["mode"] == "ptq"
    assert int8_file.sha256 == sha256_file(int8_file.path)


@pytest.mark.parametrize("io_dtype", ["uint8", "float32"])
def test_io_dtype_options(io_dtype, ptq_model, int8_file, data, tmp_path):
    from edgekit.export.litert_ops import open_interpreter

    art = export_tflite(ptq_model, tmp_path / f"{io_dtype}.tflite", calibration=data[:4],
                        io_dtype=io_dtype)
    interp = open_interpreter(art.path)
    assert interp.get_input_details()[0]["dtype"].__name__ == io_dtype
    assert interp.get_output_details()[0]["dtype"].__name__ == io_dtype
    edges = float_compute_ops(art.path)
    if io_dtype == "float32":  # only the two edge ops touch float, each with its reason
        assert [op for op, _ in edges] == ["QUANTIZE", "DEQUANTIZE"]
        assert all(reason.startswith("I/O edge") for _, reason in edges)
    else:
        assert edges == []
    got, ref = run_tflite(art.path, data), run_tflite(int8_file.path, data)
    scale = open_interpreter(int8_file.path).get_output_details()[0]["quantization"][0]
    assert np.abs(got - ref).max() <= 2 * scale + 1e-6


def test_vendor_ptq_leaves_float_islands_that_edgekit_removes(data, tmp_path, int8_file):
    torch.manual_seed(0)
    art = vendor_ptq_tflite(SmallNet(), tmp_path / "vendor.tflite", calibration=data[:16])
    floats = float_compute_ops(art.path)
    names = [op for op, _ in floats]
    assert "HARD_SWISH" in names and "DEQUANTIZE" in names
    assert any("float island" in reason for _, reason in floats)
    assert read_tflite_provenance(art.path)["recipe"].startswith("litert PT2E PTQ")
    assert float_compute_ops(int8_file.path) == []


def test_bad_input_is_a_typed_error_and_writes_nothing(data, tmp_path, int8_file):
    with pytest.raises(InvalidInputError):
        export_tflite("not a model", tmp_path / "x.tflite", input_shape=(1, 16, 16))
    with pytest.raises(InvalidInputError, match="float32 I/O"):
        export_tflite(SmallNet(), tmp_path / "x.tflite", calibration=data[:2], io_dtype="int8")
    with pytest.raises(InvalidInputError, match="io_dtype"):
        export_tflite(SmallNet(), tmp_path / "x.tflite", calibration=data[:2], io_dtype="int4")
    with pytest.raises(InvalidInputError, match="input_shape"):
        export_tflite(SmallNet(), tmp_path / "x.tflite")

    class Untraceable(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x.flatten(1)
            return -x.flatten(1)

    with pytest.raises(ExportError):
        export_tflite(Untraceable(), tmp_path / "u.tflite", input_shape=(1, 16, 16))
    assert list(tmp_path.iterdir()) == []  # nothing half-written

    with pytest.raises(InvalidInputError, match="shape"):
        run_tflite(int8_file.path, data[:, :, :8, :8])
    with pytest.raises(FormatError):
        run_tflite(tmp_path / "missing.tflite", data[:1])
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(FormatError):
        inspect_tflite(garbage)
    with pytest.raises(FormatError):
        read_tflite_provenance(garbage)
