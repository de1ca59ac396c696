"""`edgekit train` / `edgekit eval` end to end on small subsets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgekit.calibration import load_dataset
from edgekit.cli import main
from edgekit.training.checkpoint import load_checkpoint


@pytest.mark.slow
def test_train_then_eval_reproduces_the_recorded_accuracy(tmp_path, capsys):
    out, report = tmp_path / "run", tmp_path / "train.json"
    rc = main(["train", "--model", "lenet300_100", "--data", "mnist5k", "--epochs", "2",
               "--train-limit", "600", "--lr", "3e-3", "--out", str(out), "--quiet",
               "--json", str(report)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and f"checkpoint: {out}" in printed
    config = json.loads((out / "config.json").read_text())
    accuracy = config["metrics"]["accuracy"]
    assert accuracy > 0.7  # 10 classes: chance is 0.1
    assert config["extra"]["train_samples"] == 600 and config["extra"]["eval_samples"] == 1000
    assert json.loads(report.read_text())["metrics"] == {"accuracy": accuracy}

    eval_json = tmp_path / "eval.json"
    assert main(["eval", str(out), "--json", str(eval_json)]) == 0
    assert "mnist5k[test] (1000 samples)" in capsys.readouterr().out
    assert json.loads(eval_json.read_text())["metrics"] == {"accuracy": accuracy}


def test_train_on_unsplit_numpy_data_holds_out_a_test_part(tmp_path, capsys):
    digits = load_dataset("mnist5k", split="test").subset(300)
    data = tmp_path / "digits.npz"
    np.savez(data, x=(digits.x[:, 0] * 255).round().astype(np.uint8), y=digits.y)
    out = tmp_path / "run"
    assert main(["train", "--model", "lenet300_100", "--data", str(data), "--epochs", "1",
                 "--out", str(out), "--quiet", "--seed", "5"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["extra"]["eval_samples"] == 60  # 20 % held out
    capsys.readouterr()
    assert main(["eval", str(out), "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["samples"] == 60 and result["metrics"] == config["metrics"]
    # --seed fixes the initial weights and the shuffling, so a rerun gives the same weights
    # (up to float rounding: MKL's kernels may round differently with memory alignment)
    assert main(["train", "--model", "lenet300_100", "--data", str(data), "--epochs", "1",
                 "--out", str(tmp_path / "again"), "--quiet", "--seed", "5"]) == 0
    first, second = (load_checkpoint(tmp_path / d)[0].state_dict() for d in ("run", "again"))
    for key, value in first.items():
        torch.testing.assert_close(second[key], value, rtol=1e-5, atol=1e-6)


def test_segmentation_training_weighs_classes_unless_told_not_to(tmp_path, capsys):
    common = ["train", "--model", "espnet", "--data", "mnist5k_seg", "--input-size", "32",
              "--epochs", "1", "--train-limit", "8", "--batch-size", "8", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "auto")]) == 0
    assert main([*common, "--out", str(tmp_path / "plain"), "--class-weights", "none"]) == 0
    capsys.readouterr()
    auto, plain = (json.loads((tmp_path / d / "config.json").read_text())["extra"]
                   for d in ("auto", "plain"))
    assert auto["train_config"]["class_weights"] == "auto"
    weights = auto["class_weights"]
    assert len(weights) == 11 and weights[0] < 2 < 20 < min(weights[1:])  # background first
    assert plain["train_config"]["class_weights"] is None and plain["class_weights"] is None


def _edgekit(*args):
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True,
                          text=True, timeout=120)


def test_bad_model_name_exits_2_with_one_line_and_no_output(tmp_path):
    out = tmp_path / "never"
    proc = _edgekit("train", "--model", "lenet6", "--data", "mnist5k", "--epochs", "1",
                    "--out", str(out))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "unknown model 'lenet6'" in proc.stderr
    assert "did you mean" in proc.stderr and not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_fails_in_one_line_before_training(tmp_path, capsys):
    assert main(["train", "--model", "lenet5", "--data", "mnist5k", "--epochs", "1",
                 "--out", "/proc/nope"]) == 2
    captured = capsys.readouterr()
    # no "training lenet5 on ..." log and no epoch progress: it failed before loading data
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("edgekit: error: /proc/nope: cannot create files in /proc")
    (tmp_path / "file").write_text("x")
    assert main(["train", "--model", "lenet5", "--out", str(tmp_path / "run"), "--json",
                 str(tmp_path / "file" / "m.json")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing"), "--json", "/proc/e.json"]) == 2
    assert "cannot create files in /proc" in capsys.readouterr().err  # before the checkpoint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_bad_data_and_checkpoint_paths_exit_2(tmp_path, capsys):
    assert main(["train", "--model", "lenet5", "--data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgekit: error:") and "checkpoint not found" in err
    assert err.count("\n") == 1
    assert main(["train", "--model", "lenet5", "--data", "mnist5k_seg", "--epochs", "1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "classification model but mnist5k_seg is segmentation" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
