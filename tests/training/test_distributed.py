"""Training on two processes with torchrun (gloo on CPU): `edgekit train`, QAT in `compress`,
and the launches that must fail with a message rather than hang."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgekit.training import distributed

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node=2"]


def _run(argv: list[str], cwd, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_one_process_shards_nothing():
    order = np.arange(10)
    mine, batch = distributed.shard(order, 4)
    assert mine is order and batch == 4 and distributed.world() == (0, 1)
    assert distributed.from_main(lambda: 7) == 7


@pytest.mark.slow
def test_edgekit_train_on_two_processes(tmp_path):
    out = tmp_path / "ckpt"
    done = _run([sys.executable, "-m", "edgekit", "train", "--model", "lenet5", "--epochs", "2",
                 "--train-limit", "800", "--out", str(out), "--nproc", "2"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes (DDP)" in done.stderr
    assert done.stderr.count("epoch 2/2") == 1  # rank 0 alone prints
    config = json.loads((out / "config.json").read_text())
    assert config["metrics"]["accuracy"] > 0.5  # it learned (10 classes: chance is 0.1)


@pytest.mark.slow
def test_compress_qat_on_two_processes_keeps_every_rank_identical(tmp_path):
    out = tmp_path / "run"
    done = _run([*TORCHRUN, "-m", "edgekit", "compress", "--model", "lenet300_100",
                 "--target", "jetson", "--epochs", "1", "--qat-epochs", "2", "--train-limit",
                 "800", "--bench-runs", "5", "--power", "none", "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "manifest.json").read_text())["metrics"]
    assert metrics["distributed"] == {"processes": 2, "int8_state_identical": True}
    assert metrics["parity"]["passed"] and metrics["bundle_check"]["passed"]
    assert "Trained on 2 processes" in (out / "report.md").read_text()


@pytest.mark.slow
def test_ranks_that_disagree_on_the_command_stop_with_a_message(tmp_path):
    script = tmp_path / "odd.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        from edgekit.cli import main
        argv = ["train", "--model", "lenet5", "--epochs", "1", "--train-limit", "200",
                "--out", {str(tmp_path / "x")!r}]
        if os.environ["RANK"] == "1":
            argv += ["--seed", "1"]
        sys.exit(main(argv))
    """))
    done = _run([*TORCHRUN, str(script)], tmp_path, timeout=300)
    assert done.returncode != 0
    assert "disagree on the command line" in done.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_rank_that_dies_ends_the_launch(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text(textwrap.dedent("""
        import os
        from edgekit.training import distributed
        distributed.init_from_env()
        if os.environ["RANK"] == "1":
            os._exit(3)
        distributed.barrier()  # rank 0 would wait here for rank 1 forever
    """))
    done = _run([*TORCHRUN, str(script)], tmp_path, timeout=300)
    assert done.returncode != 0
