"""`compress --prune channel:R` and `--sparsity 2:4`: the pruning stage of the pipeline, on
each runtime's target, a zoo model and a module that is not in the zoo."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import edgekit
from edgekit.cli import main
from edgekit.core.errors import InvalidInputError
from edgekit.pipeline import measure
from edgekit.pruning import check_24_onnx, pattern_ok

QUICK = {"epochs": 1, "qat_epochs": 1, "prune_epochs": 1, "train_limit": 600,
         "bench_runs": 5, "bench_power": "none"}


class TwoBranchNet(nn.Module):
    """Not in the zoo: a residual add and a concatenation the pruner must keep consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(32, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.head = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([self.a(x) + x, self.b(x)], 1)
        return self.head(x.mean((2, 3)))


@pytest.mark.slow
def test_channel_and_24_on_a_jetson_reach_the_trtexec_line_and_resume(tmp_path, monkeypatch):
    out, messages = tmp_path / "run", []

    def bench_fails(*args, **kwargs):
        raise RuntimeError("the benchmark broke")

    options = {**QUICK, "prune": "channel:0.5", "sparsity": "2:4"}
    with monkeypatch.context() as patch:  # a run stopped after pruning and export
        patch.setattr(measure, "bench", bench_fails)
        with pytest.raises(RuntimeError, match="benchmark broke"):
            edgekit.compress("mobilenet_v2", "agx-orin", out=out, log=messages.append,
                             **options)
    assert (tmp_path / ".run.partial" / "stages" / "prune.json").is_file()

    messages.clear()
    # the AGX Orin: sparse tensor cores and published points of its own, so the report
    # estimates it (a target without points, like the Orin Nano, gets no figure there)
    result = edgekit.compress("mobilenet_v2", "agx-orin", out=out, log=messages.append,
                              resume=True, **options)
    assert "[2/6] pruned model: reused from the unfinished run (stage record matches)" \
        in messages
    pruning = result.metrics["pruning"]
    assert pruning["pruned"]["macs"] <= 0.56 * pruning["dense"]["macs"]
    assert pruning["pruned"]["params"] < pruning["dense"]["params"]
    assert 0 < pruning["sparsity"]["sparse_mac_share"] <= 1
    assert result.verification.passed
    # the deployed int8 initializers still hold 2:4, and TensorRT is told to use it
    rows = check_24_onnx(result.deployed)
    assert pattern_ok(rows) and pruning["sparsity"]["file"]["pattern_ok"]
    plan = json.loads((result.bundle / "tensorrt_build.json").read_text())
    assert "--sparsity=enable" in plan["trtexec"] and plan["sparse_layers"]
    report = (out / "report.md").read_text()
    assert "## Pruning (channel:0.5 + 2:4): dense vs pruned" in report
    assert "| dense (trained) |" in report and "| pruned |" in report
    assert "jetson-agx-orin fp32 ms (estimated)" in report
    est = result.metrics["pruning"]["target_estimates"]
    assert est["fp32"]["kind"] == est["fp32_dense"]["kind"] == "estimated"
    assert est["fp32"]["latency_ms"] < est["fp32_dense"]["latency_ms"]  # fewer MACs, same kernels
    dense_file = out / "dense" / "model_fp32.onnx"
    assert dense_file.stat().st_size > result.artifacts["fp32"].stat().st_size


@pytest.mark.slow
@pytest.mark.parametrize(("model", "target", "suffix"), [
    ("mobilenet_v3_small", "raspberry-pi-5", ".tflite"),  # LiteRT
    (TwoBranchNet(), "x86-cpu", ".onnx"),  # onnxruntime, a module not in the zoo
])
def test_channel_pruning_on_each_runtime(model, target, suffix, tmp_path):
    result = edgekit.compress(model, target, out=tmp_path / "run", log=lambda _: None,
                              prune="channel:0.5", prune_distill=0.9, **QUICK)
    pruning = result.metrics["pruning"]
    assert pruning["pruned"]["macs"] <= 0.56 * pruning["dense"]["macs"]
    assert pruning["channel"]["config"]["distill"] == 0.9  # the recipe's weight was used
    assert result.deployed.suffix == suffix and result.verification.passed
    assert result.metrics["bundle_check"]["passed"]
    assert (tmp_path / "run" / "dense" / f"model_fp32{suffix}").is_file()
    assert "dense vs pruned" in (tmp_path / "run" / "report.md").read_text()


def test_24_on_a_target_that_cannot_run_it_fails_before_any_work(tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="2:4 sparsity pays only on TensorRT"):
        edgekit.compress("lenet5", "raspberry-pi-5", out=tmp_path / "run", sparsity="2:4")
    assert not any(tmp_path.iterdir())
    code = main(["compress", "--target", "x86-cpu", "--sparsity", "2:4",
                 "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "2:4 sparsity pays only" in err[0]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("prune", "channel:1.5", "channel:R needs"),
    ("prune", "filters:0.5", "channel:R"),
    ("sparsity", "1:4", "2:4"),
    ("prune_epochs", -1, "prune_epochs"),
    ("prune_distill", 1.5, "prune_distill"),
])
def test_bad_pruning_options_are_one_line_errors(field, value, message, tmp_path):
    with pytest.raises(InvalidInputError, match=message):
        edgekit.compress("lenet5", "jetson", out=tmp_path / "run", **{field: value})
    assert not any(tmp_path.iterdir())


def test_report_labels_a_segmenters_deployed_pixel_accuracy():
    # the deployed file is scored by (pixel) accuracy; under the mIoU column it is labelled
    # (a real espnetv2 --prune run showed 0.9762 as its "miou int8 deployed")
    from edgekit.pipeline.prune_report import report_lines

    size = {"params": 10, "macs": 100}
    manifest = {
        "recipe": {"prune": "channel:0.5"}, "target": {"profile": "x86-cpu"},
        "artifacts": {"int8": {"bytes": 2_000_000}, "fp32": {"bytes": 3_000_000}},
        "metrics": {
            "accuracy_rows": [
                {"model": "fp32 (trained)", "metric": "miou", "value": 0.104},
                {"model": "deployed model_int8.onnx", "metric": "accuracy", "value": 0.9762}],
            "latency_rows": [], "device_estimates": {"rows": []},
            "fp32_dense": {"miou": 0.096},
            "pruning": {"dense": size, "pruned": {"params": 3, "macs": 46},
                        "pruned_fp32": {"miou": 0.104}}}}
    pruned_row = next(line for line in report_lines(manifest) if line.startswith("| pruned"))
    assert "| 0.9762 (accuracy) |" in pruned_row
    manifest["metrics"]["accuracy_rows"][1]["metric"] = "miou"
    pruned_row = next(line for line in report_lines(manifest) if line.startswith("| pruned"))
    assert "| 0.9762 |" in pruned_row
