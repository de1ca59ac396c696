"""Layer records read from real .onnx and .tflite files (onnxruntime's profiler, LiteRT)."""

import pytest

from edgekit.bench.layers import layer_records, summary
from edgekit.core.errors import InvalidInputError

CONV_MACS = 8 * 16 * 16 * 3 * 3 * 3  # the tiny net: 3->8 3x3 conv on 16x16, then 8->4 linear
FC_MACS = 8 * 4


def test_onnx_records_count_the_tiny_nets_macs_and_bytes(onnx_model):
    records = layer_records(onnx_model)
    kinds = [r.kind for r in records]
    assert kinds.count("conv") == 1 and kinds.count("matmul") == 1
    conv = next(r for r in records if r.kind == "conv")
    assert conv.macs == CONV_MACS and conv.weight_bytes == 8 * 3 * 3 * 3 * 4
    assert conv.activation_bytes == (3 + 8) * 16 * 16 * 4  # input read, output written
    assert summary(records)["macs"] == CONV_MACS + FC_MACS
    assert {r.precision for r in records} == {"fp32"}
    assert "Relu" not in {r.op for r in records}  # fused into the conv on the devices


def test_tflite_records_match_the_onnx_ones(tflite_model, int8_tflite_model):
    fp32 = layer_records(tflite_model)
    assert summary(fp32)["macs"] == CONV_MACS + FC_MACS
    assert {r.precision for r in fp32} == {"fp32"}
    int8 = layer_records(int8_tflite_model)
    assert summary(int8)["macs"] == CONV_MACS + FC_MACS
    conv = next(r for r in int8 if r.kind == "conv")
    assert conv.precision == "int8" and conv.weight_bytes == 8 * 3 * 3 * 3


def test_other_files_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no such model file"):
        layer_records(tmp_path / "missing.onnx")
    (tmp_path / "m.engine").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match=r"\.onnx or \.tflite"):
        layer_records(tmp_path / "m.engine")
