"""2:4 masks survive int8 QAT for TensorRT: the int8 initializers of the exported QDQ file
still hold the pattern (checked on the file), and a pruned model exports and verifies."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")
pytest.importorskip("onnxruntime")

from edgekit.export.onnx import export_onnx  # noqa: E402
from edgekit.pruning import (  # noqa: E402
    ChannelPruneConfig,
    check_24_onnx,
    mask_enforcer,
    pattern_ok,
    prune_channels,
    sparsify_24,
)
from edgekit.quantization import QuantConfig, quantize  # noqa: E402
from tests.helpers import block_data, small_model  # noqa: E402

pytestmark = pytest.mark.slow


def test_masks_survive_qat_into_the_int8_file(tmp_path):
    torch.manual_seed(0)
    model = small_model("mobilenet_v2").eval()
    prune_channels(model, ChannelPruneConfig(keep_macs=0.7))  # both stages, as compress runs
    result = sparsify_24(model)
    data = block_data(128, size=28)
    config = QuantConfig(target="tensorrt", epochs=1, lr=1e-2, calibration_size=64,
                         batch_size=32, progress=False, distill=0.0)
    enforce, calls = mask_enforcer(result), []

    def hook(qat_model):
        calls.append(1)
        enforce(qat_model)

    qm = quantize(model, config, train_data=data, after_step=hook)
    assert len(calls) == 1 + 128 // 32  # once at the calibrated start, then every step
    path = export_onnx(qm, tmp_path / "m.int8.onnx").path
    rows = check_24_onnx(path)
    eligible = [r for r in rows if r.eligible]
    assert len(eligible) == len(result.masks)
    assert all(r.int8 for r in rows)
    assert pattern_ok(rows), [r.reason for r in eligible if not r.conforms]


def test_pruned_model_exports_and_verifies(tmp_path):
    from edgekit.export.verify import verify

    torch.manual_seed(0)
    model = small_model("shufflenet_v2_x0_5").eval()
    prune_channels(model, ChannelPruneConfig(keep_macs=0.6))
    data = block_data(64, size=28)
    path = export_onnx(model, tmp_path / "p.onnx", input_shape=(1, 28, 28)).path
    report = verify(path, model, data)
    assert report.agreement == 1.0


def test_check_reports_24_conformance_of_a_tensorrt_file(tmp_path, capsys):
    from edgekit.cli import main

    torch.manual_seed(0)
    model = small_model("mobilenet_v2").eval()
    sparsify_24(model)
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, 28, 28)).path
    assert main(["check", "--target", "tensorrt", str(path), "--json",
                 str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "2:4 sparsity" in out and "pattern_ok=True" in out and "depthwise" in out
    rows = json.loads((tmp_path / "c.json").read_text())["sparsity_24"]
    assert any(r["eligible"] and r["conforms"] for r in rows)
    assert any(not r["eligible"] for r in rows)
