"""The whole pipeline's wall time: from nothing, on a busy machine, after a kill, on two ranks.

Every run is the CLI in a subprocess, as a user types it (`edgekit compress --target jetson`
with nothing else, the README's demo), into a fresh folder:

1. ``default_pipeline_s``: the default pipeline on this machine as it is (run it idle).
2. ``loaded_over_idle``: the same with one competing CPU-bound process (a Python busy
   loop) for its whole duration, divided by (1). Two busy processes on a 2-core machine
   share it fairly at 2.0.
3. ``resume_after_qat_kill_s``: the same command killed with SIGKILL once the first QAT
   epoch is checkpointed, then run again with ``--resume``: the second run's wall time.
   ``resume_same_file``: whether its deployed file is byte-identical to (1)'s.
   ``--repeat N`` runs (1) and (3) N times in turn (default, kill + resume, default, ...):
   the box's speed drifts by a quarter within minutes, so each resume is divided by the
   default run next to it and the median of those ratios is ``resume_over_default``;
   ``default_pipeline_s`` and ``resume_after_qat_kill_s`` are medians too.
4. ``ddp2_vs_single_acc_pp``: the same command under ``--nproc 2`` (two gloo processes,
   the same global batch and epochs) minus (1), in deployed accuracy (pp) on the 1,000
   test digits, with a paired bootstrap 95% interval from the two runs' predictions
   (``edgekit.training.compare.paired_difference``); ``ddp2_quantizer_scales_identical``
   from the run's manifest (every rank's weights and scales hashed after QAT).

    python benchmarks/pipeline.py --json docs/results/pipeline-DATE.json [--out DIR]
        [--only default,loaded,resume,ddp] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

COMMAND = [sys.executable, "-m", "edgekit", "compress", "--target", "jetson"]
PARTS = ("default", "loaded", "resume", "ddp")


def compress(out: Path, *extra: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([*COMMAND, "--out", str(out), *extra], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"compress failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - started, done


def busy_loop() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def killed_then_resumed(out: Path) -> tuple[float, float]:
    """(seconds to the kill, seconds of the resumed run)."""
    checkpoint = out.with_name(f".{out.name}.partial") / "checkpoints" / "quantize.pt"
    started = time.perf_counter()
    first = subprocess.Popen([*COMMAND, "--out", str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    while not checkpoint.exists() and first.poll() is None:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    to_kill = time.perf_counter() - started
    seconds, _ = compress(out, "--resume")
    return to_kill, seconds


def deployed_predictions(run: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(predictions, labels, accuracy) of a run's deployed file on the test split, in the
    kernels its verification used."""
    from edgekit.calibration import load_dataset
    from edgekit.calibration.forms import inputs_array
    from edgekit.runtime.parity import REFERENCE_KERNELS, run_deployed

    test = load_dataset("mnist5k", split="test")
    out, _, _ = run_deployed(run / "bundle" / "model_int8.onnx", inputs_array(test),
                             runtime="onnxruntime", kernels=REFERENCE_KERNELS)
    pred = out.argmax(1)
    return pred, test.y, float((pred == test.y).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--out", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--repeat", type=int, default=1,
                        help="default + kill/resume pairs, run in turn (medians reported)")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    load_before = os.getloadavg()  # (1, 5, 15 min): other work on the machine
    root = Path(args.out or tempfile.mkdtemp(prefix="edgekit-pipeline-"))
    metrics: dict[str, Any] = {}
    rows = []

    default = root / "default"
    seconds, _ = compress(default)
    metrics["default_pipeline_s"] = round(seconds, 1)
    rows.append(("default pipeline (idle)", seconds))
    if "loaded" in parts:
        busy = busy_loop()
        try:
            loaded, _ = compress(root / "loaded")
        finally:
            busy.kill()
        metrics["loaded_pipeline_s"] = round(loaded, 1)
        metrics["loaded_over_idle"] = round(loaded / seconds, 2)
        rows.append(("with one competing busy process", loaded))
    if "resume" in parts:
        defaults, resumes, kills, same = [seconds], [], [], []
        for i in range(args.repeat):
            if i:
                defaults.append(compress(root / f"default{i + 1}")[0])
            run = root / ("resumed" if i == 0 else f"resumed{i + 1}")
            to_kill, resumed = killed_then_resumed(run)
            kills.append(to_kill)
            resumes.append(resumed)
            same.append((run / "bundle/model_int8.onnx").read_bytes()
                        == (default / "bundle/model_int8.onnx").read_bytes())
        ratios = [r / d for r, d in zip(resumes, defaults, strict=True)]
        metrics["default_pipeline_s"] = round(statistics.median(defaults), 1)
        metrics["killed_after_s"] = round(statistics.median(kills), 1)
        metrics["resume_after_qat_kill_s"] = round(statistics.median(resumes), 1)
        metrics["resume_over_default"] = round(statistics.median(ratios), 3)
        metrics["resume_same_file"] = all(same)
        if args.repeat > 1:
            metrics["default_runs_s"] = [round(d, 1) for d in defaults]
            metrics["resume_runs_s"] = [round(r, 1) for r in resumes]
            metrics["resume_over_default_runs"] = [round(r, 3) for r in ratios]
        for i, (d, k, r) in enumerate(zip(defaults, kills, resumes, strict=True)):
            if i:
                rows.append((f"default pipeline, repeat {i + 1}", d))
            rows.append(("killed after the first QAT epoch", k))
            rows.append(("the --resume run", r))
    if "ddp" in parts:
        from edgekit.training.compare import paired_difference

        ddp_seconds, _ = compress(root / "ddp2", "--nproc", "2")
        manifest = json.loads((root / "ddp2/manifest.json").read_text())
        metrics["ddp2_pipeline_s"] = round(ddp_seconds, 1)
        metrics["ddp2_quantizer_scales_identical"] = \
            manifest["metrics"]["distributed"]["int8_state_identical"]
        ddp_pred, labels, ddp_acc = deployed_predictions(root / "ddp2")
        one_pred, _, one_acc = deployed_predictions(default)
        diff = paired_difference(ddp_pred, one_pred, labels, task="classification",
                                 num_classes=10)
        metrics["ddp2_acc"], metrics["single_acc"] = ddp_acc, one_acc
        metrics["ddp2_vs_single_acc_pp"] = round(100 * diff.difference, 2)
        metrics["ddp2_vs_single_ci95_pp"] = [round(100 * diff.low, 2), round(100 * diff.high, 2)]
        rows.append(("two processes (--nproc 2)", ddp_seconds))

    print(f"{'run':40} {'wall s':>8}")
    for name, value in rows:
        print(f"{name:40} {value:8.1f}")
    for key, value in metrics.items():
        print(f"{key} = {value}")
    if args.json:
        import torch
        from _provenance import run_info  # benchmarks/, on sys.path when run as a script

        record = {**run_info("pipeline", argv, torch_threads=torch.get_num_threads()),
                  "load_before": load_before,
                  "metrics": metrics}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
