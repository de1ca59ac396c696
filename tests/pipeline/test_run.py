"""`edgekit compress` end to end: real training, nncf QAT, export, onnxruntime/LiteRT verify."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import edgekit
from edgekit.cli import main
from edgekit.core.errors import InvalidInputError, UnknownNameError
from edgekit.pipeline.recipe import CompressRecipe

QUICK = {"epochs": 1, "qat_epochs": 1, "train_limit": 400, "bench_runs": 10}


@pytest.mark.slow
def test_compress_for_jetson_writes_verified_smaller_int8_onnx(tmp_path):
    out = tmp_path / "jetson"
    # power chosen explicitly: the same on hosts with and without a sensor
    result = edgekit.compress("lenet300_100", "jetson", out=out, log=lambda _: None,
                              bench_power="none", **QUICK)

    assert result.runtime == "tensorrt" and result.out_dir == out
    names = sorted(p.name for p in out.iterdir())
    for expected in ("manifest.json", "report.md", "verify.json", "bench_int8.json", "bundle"):
        assert expected in names
    bundle = sorted(p.name for p in (out / "bundle").iterdir())
    for expected in ("build_engine.sh", "model_fp32.onnx", "model_int8.onnx", "reference.npz",
                     "tensorrt_build.json", "bundle.json", "DEVICE.md"):
        assert expected in bundle
    assert result.bundle == out / "bundle" and result.deployed.parent == result.bundle
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["model"] == "lenet300_100"
    assert manifest["target"] == {"profile": "jetson-orin-nano", "runtime": "tensorrt"}
    assert manifest["artifacts"]["int8"]["sha256"] == result.manifest["artifacts"]["int8"]["sha256"]
    verify = json.loads((out / "verify.json").read_text())
    assert verify["runtime"] == "onnxruntime" and verify["agreement"] >= 0.995
    # checked with TensorRT's arithmetic (unfused Q/DQ), not ORT's fused x86 int8 kernels
    assert verify["kernels"].startswith("reference") and verify["artifact"] == "model_int8.onnx"
    # weights stored as int8: the deployed file is much smaller than fp32
    assert result.metrics["size_ratio"] > 3.0
    assert "trtexec" in (out / "bundle" / "build_engine.sh").read_text()
    assert result.metrics["power"].endswith("unavailable (disabled (--power none))")
    assert result.metrics["bundle_check"]["passed"]
    assert manifest["recipe"]["bench_power"] == "none"
    assert json.loads((out / "bench_int8.json").read_text())["config"]["power"] == "none"
    report = (out / "report.md").read_text()
    assert "measured" in report and "estimated" in report
    # the engine is neither timed here nor estimated (the Orin Nano has no points of its
    # own): the table says so, and onnxruntime's timing of its ONNX is a note (issue 39)
    latency = report[report.index("## Latency"):report.index("\nPower ")]
    assert "not timed here (no TensorRT" in latency and "| measured |" not in latency
    assert "onnxruntime on this host ran the ONNX files TensorRT builds its engine from" in (
        report[report.index("## Notes"):])
    change = result.metrics["int8_minus_fp32"]  # paired over the same test samples
    rows = {row["model"]: row["value"] for row in result.metrics["accuracy_rows"]}
    assert change["difference"] == pytest.approx(
        rows["int8 fake-quant (trained)"] - rows["fp32 (trained)"])
    assert change["low"] <= change["difference"] <= change["high"]
    assert "int8 (trained) minus fp32" in report and "test noise" in report
    # QAT keeps the first of its candidates (calibrated start, then each epoch) that
    # validates best, and the report says which
    qat = result.metrics["qat_validation"]
    candidates = [qat["start"], *qat["epochs"]]
    assert len(qat["epochs"]) == QUICK["qat_epochs"]
    assert qat["kept_epoch"] == candidates.index(max(candidates))
    assert f"QAT on the validation set (accuracy): calibrated start {qat['start']:.4f}" in report


@pytest.mark.slow
def test_same_command_deploys_the_same_files_in_every_process(tmp_path):
    import torch

    # torch seeds its global generator differently in every process (torch 2.13): two
    # different seeds here stand in for two runs of `edgekit compress`
    deployed = []
    for run in (1, 2):
        torch.manual_seed(run)
        result = edgekit.compress("lenet300_100", "jetson", out=tmp_path / str(run),
                                  log=lambda _: None, **QUICK)
        deployed.append({k: result.manifest["artifacts"][k]["sha256"] for k in ("fp32", "int8")})
    assert deployed[0] == deployed[1]


@pytest.mark.slow
def test_compress_for_arm_writes_verified_int8_tflite(tmp_path):
    out = tmp_path / "rpi"
    result = edgekit.compress("lenet5", "rpi", out=out, log=lambda _: None, **QUICK)
    assert result.runtime == "tflite"
    verify = json.loads((out / "verify.json").read_text())
    assert verify["runtime"] == "litert" and verify["agreement"] >= 0.995
    int8, fp32 = (out / "bundle" / f"model_{p}.tflite" for p in ("int8", "fp32"))
    assert int8.stat().st_size < fp32.stat().st_size


def test_bad_target_fails_before_any_output(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(UnknownNameError, match="did you mean"):
        edgekit.compress("lenet5", "jetsn", out=out)
    assert not out.exists()


def test_non_empty_out_dir_is_not_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(InvalidInputError, match="not empty"):
        edgekit.compress("lenet5", "jetson", out=tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_unknown_power_sampler_fails_before_any_output(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(UnknownNameError, match="did you mean: nvml"):
        edgekit.compress("lenet5", "jetson", out=out, bench_power="nvmll")
    assert not out.exists()
    assert CompressRecipe(bench_power="tegrastats").bench_power == "tegrastats"


def test_recipe_rejects_unknown_keys_and_bad_values(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('[compress]\nmodel = "lenet5"\nqat_epoch = 2\n')
    with pytest.raises(InvalidInputError, match="did you mean qat_epochs"):
        CompressRecipe.from_toml(toml)
    with pytest.raises(InvalidInputError, match="precision"):
        CompressRecipe(precision="int4")
    toml.write_text('[compress]\nmodel = "lenet5"\nqat_epochs = 2\n')
    assert CompressRecipe.from_toml(toml).replace(epochs=5).qat_epochs == 2


def test_replace_clears_an_optional_field_and_refuses_to_clear_a_required_one(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('[compress]\nmodel = "lenet5"\nprune = "channel:0.5"\nepochs = 3\n')
    recipe = CompressRecipe.from_toml(toml)
    cleared = recipe.replace(prune=None, epochs=None)
    assert cleared.prune is None and cleared.epochs is None and recipe.prune == "channel:0.5"
    assert cleared.model == "lenet5"
    with pytest.raises(InvalidInputError, match="data takes str"):
        recipe.replace(data=None)


def test_cli_flags_not_given_leave_the_recipes_values(tmp_path, capsys):
    # sparsity comes from the TOML alone; a flag left out must not clear it (the recipe's
    # 2:4 on a CPU target is refused before any work, which shows it survived)
    toml = tmp_path / "r.toml"
    toml.write_text('[compress]\nmodel = "lenet5"\nsparsity = "2:4"\n')
    code = main(["compress", "--target", "x86-cpu", "--recipe", str(toml),
                 "--out", str(tmp_path / "run")])
    assert code == 2 and "2:4 sparsity pays only" in capsys.readouterr().err


@pytest.mark.parametrize(("line", "message"), [
    ('prune_distill = "high"', "prune_distill takes float"),
    ("epochs = 2.5", "epochs takes int or None"),
    ("qat_epochs = true", "qat_epochs takes int"),
    ('mean = [0.5, "x"]', "mean takes list[float] or None"),
    ("model_args = 3", "model_args takes dict"),
])
def test_recipe_values_of_the_wrong_kind_are_one_line_errors(line, message, tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text(f"[compress]\n{line}\n")
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        CompressRecipe.from_toml(toml)
    out = tmp_path / "never"
    code = main(["compress", "--recipe", str(toml), "--out", str(out)])
    assert code == 2 and not out.exists()
    # what the API and TOML legitimately give: ints for floats, a Path for a file, tuples
    recipe = CompressRecipe(lr=1, weights=tmp_path / "w.pt", mean=(0.5,), std=[1])
    assert recipe.lr == 1 and recipe.mean == (0.5,)


def test_cli_unknown_model_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "x"
    proc = subprocess.run([sys.executable, "-m", "edgekit", "compress", "--model", "mobilenet_v9",
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "did you mean" in proc.stderr
    assert not out.exists()
