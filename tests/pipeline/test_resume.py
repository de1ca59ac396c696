"""Unfinished compress runs: kept after real work, resumed with --resume, refused otherwise."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import edgekit
from edgekit.cli import main
from edgekit.core.errors import DataError, InvalidInputError
from edgekit.pipeline import measure

ARGS = ["--epochs", "1", "--qat-epochs", "3", "--train-limit", "2400", "--bench-runs", "5",
        "--power", "none"]
QUICK = {"epochs": 1, "qat_epochs": 2, "train_limit": 400, "bench_runs": 5,
         "bench_power": "none"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compress(model: str, target: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgekit", "compress", "--model", model,
                             "--target", target, *ARGS, "--out", str(out), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "target", "deployed"), [
    ("lenet300_100", "jetson", "model_int8.onnx"),  # nncf QAT
    ("lenet5", "raspberry-pi-5", "model_int8.tflite"),  # PT2E QAT
])
def test_a_run_killed_during_qat_resumes_to_the_same_file(model, target, deployed, tmp_path):
    out = tmp_path / "run"
    checkpoint = tmp_path / ".run.partial" / "checkpoints" / "quantize.pt"
    first = _compress(model, target, out)
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)  # no clean-up at all: a power cut
    first.communicate()
    import torch

    assert torch.load(checkpoint, weights_only=True)["epoch"] < 3  # killed mid-QAT
    assert not out.exists()  # nothing appears until every stage succeeded
    partial = tmp_path / ".run.partial"  # what the resume reuses besides the checkpoint:
    record = json.loads((partial / "stages" / "train.json").read_text())
    assert (partial / record["array"]).is_file()  # fp32 test outputs
    assert json.loads((partial / "stages" / "preflight.json").read_text())["done"]

    resumed = _compress(model, target, out, "--resume")
    _, log = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log[-2000:]
    assert f"fp32 {model}: reused from the unfinished run" in log
    assert "training fp32" not in log  # fp32 training was skipped
    assert "resuming after epoch" in log and "(reused: fp32 training, QAT epochs)" in log
    assert not (tmp_path / ".run.partial").exists()
    assert not (out / "checkpoints").exists()

    whole = _compress(model, target, tmp_path / "whole")
    _, log = whole.communicate(timeout=600)
    assert whole.returncode == 0, log[-2000:]
    for name in (deployed, deployed.replace("int8", "fp32")):
        assert _sha(out / "bundle" / name) == _sha(tmp_path / "whole" / "bundle" / name)


@pytest.mark.slow
def test_a_changed_field_reruns_exactly_the_stages_after_it(tmp_path, monkeypatch):
    out, messages = tmp_path / "run", []

    def bench_fails(*args, **kwargs):
        raise RuntimeError("the benchmark broke")

    with monkeypatch.context() as patch:
        patch.setattr(measure, "bench", bench_fails)
        with pytest.raises(RuntimeError, match="benchmark broke"):
            edgekit.compress("lenet300_100", "jetson", out=out, log=messages.append, **QUICK)
    partial = tmp_path / ".run.partial"
    assert any("unfinished run kept in" in m and "--resume" in m for m in messages)
    assert (partial / "stages" / "train.json").is_file()
    deployed = partial / "bundle" / "model_int8.onnx"
    exported = _sha(deployed)

    messages.clear()  # the same recipe: everything up to the benchmark is reused
    with monkeypatch.context() as patch:
        patch.setattr(measure, "bench", bench_fails)
        patch.setattr(measure, "verify", bench_fails)  # would fail the run if called
        with pytest.raises(RuntimeError, match="benchmark broke"):
            edgekit.compress("lenet300_100", "jetson", out=out, log=messages.append,
                             resume=True, **QUICK)
    for stage in ("export", "verify"):
        assert f"{stage}: reused from the unfinished run (stage record matches)" in messages
    assert _sha(deployed) == exported

    messages.clear()  # a changed file is exported again: the same bytes, verified before
    deployed.write_bytes(deployed.read_bytes() + b"\0")
    with monkeypatch.context() as patch:
        patch.setattr(measure, "bench", bench_fails)
        patch.setattr(measure, "verify", bench_fails)
        with pytest.raises(RuntimeError, match="benchmark broke"):
            edgekit.compress("lenet300_100", "jetson", out=out, log=messages.append,
                             resume=True, **QUICK)
    assert not any(m.startswith("export: reused") for m in messages)
    assert "verify: reused from the unfinished run (stage record matches)" in messages
    assert _sha(deployed) == exported

    messages.clear()  # QAT changed: fp32 training reused, QAT from its start
    edgekit.compress("lenet300_100", "jetson", out=out, log=messages.append, resume=True,
                     **{**QUICK, "qat_lr": 5e-5})
    assert any("reused from the unfinished run" in m for m in messages)
    assert not any("resuming after epoch" in m for m in messages)
    assert messages[-1].startswith("done") and "reused: fp32 training)" in messages[-1]
    manifest = json.loads((out / "manifest.json").read_text())  # the records say so too
    assert manifest["resumed"] == {"reused": ["fp32 training"]}
    assert "**Resumed** from an unfinished run (`--resume`); reused: fp32 training." in (
        out / "report.md").read_text()


def test_without_resume_an_unfinished_run_is_named_and_kept(tmp_path, capsys):
    partial = tmp_path / ".run.partial"
    (partial / "stages").mkdir(parents=True)
    (partial / "stages" / "train.json").write_text("{}")
    record = {"format": "edgekit-compress-partial", "model": "lenet5",
              "target": "jetson-orin-nano", "stage": "int8 quantization"}
    (partial / "run.json").write_text(json.dumps(record))
    out = tmp_path / "run"
    assert main(["compress", "--model", "lenet5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "int8 quantization" in err and err.count("\n") == 1
    assert (partial / "stages" / "train.json").is_file()  # nothing lost

    with pytest.raises(InvalidInputError, match="unfinished run of lenet5 for jetson-orin-nano"):
        edgekit.compress("lenet300_100", "jetson", out=out, resume=True)
    with pytest.raises(InvalidInputError, match="unfinished run of lenet5 for jetson-orin-nano, "
                                                "not of lenet5 for raspberry-pi-5"):
        edgekit.compress("lenet5", "raspberry-pi-5", out=out, resume=True)
    (partial / "run.json").write_text("not json")
    with pytest.raises(InvalidInputError, match="holds no edgekit compress run"):
        edgekit.compress("lenet5", "jetson", out=out, resume=True)


def test_resume_with_nothing_to_resume_is_one_line(tmp_path, capsys):
    assert main(["compress", "--model", "lenet5", "--resume", "--out",
                 str(tmp_path / "never")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_bad_input_leaves_no_unfinished_run(tmp_path):
    with pytest.raises(DataError):
        edgekit.compress("lenet5", "jetson", out=tmp_path / "run", data=str(tmp_path / "none"))
    assert not any(tmp_path.iterdir())
