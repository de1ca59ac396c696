"""Is compress's memory bounded by the batch? Peak RSS at 400 and at 4,000 crops.

The same compress (EfficientNet-Lite0 from the registry, its ImageNet weights, ``epochs=0,
qat_epochs=0``, target jetson) runs on an unlabelled folder of 400 and of 4,000 crops of
the photographs that ship inside packages (``_photos.py``), each in a fresh subprocess;
the peak resident set of each child (``ru_maxrss`` from ``os.wait4``) is recorded, and
``rss_ratio_4000_vs_400`` is the 4,000-crop peak over the 400-crop one (issue 37: ≤ 1.2).
To keep it quick on a small CPU the run is cut down where the data size does not matter:
``calibration_size`` 100, ``ptq_rounding="nearest"``, 5 benchmark runs, no fp32 baseline.

    python benchmarks/pretrained_memory.py --json docs/results/pretrained-memory-DATE.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _photos import write_crops
from _provenance import run_info

SIZES = (400, 4000)
NET = "efficientnet_lite0"
TARGET = "jetson"
QUICK = {"calibration_size": 100, "ptq_rounding": "nearest", "bench_runs": 5,
         "bench_power": "none", "fp32_baseline": False}


def child(folder: Path, out: Path) -> int:
    """One compress on ``folder``; prints a JSON line of what it gave."""
    from pretrained import PREPROCESS, pretrained

    import edgekit

    started = time.time()
    result = edgekit.compress(pretrained(NET), TARGET, data=folder, epochs=0, qat_epochs=0,
                              out=out, overwrite=True, **QUICK, **PREPROCESS)
    print(json.dumps({"seconds": round(time.time() - started, 1),
                      "verify_passed": bool(result.verification.passed),
                      "verify_samples": result.verification.samples}), flush=True)
    return 0


def measure(folder: Path, out: Path, log: Path) -> dict:
    """Run ``child`` in a fresh interpreter; its peak RSS (MiB) and what it printed."""
    command = [sys.executable, __file__, "--child", str(folder), "--out", str(out)]
    with open(log, "w") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    lines = log.read_text().splitlines()
    if process.returncode != 0:
        raise SystemExit(f"compress on {folder} failed (exit {process.returncode}); "
                         f"see {log}")
    return {**json.loads(lines[-1]), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/pretrained-memory"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.out)
    info = run_info("pretrained_memory", argv)
    rows = {}
    for n in SIZES:
        folder = args.work / f"crops-{n}"
        if not folder.is_dir() or len(list(folder.glob("*.png"))) != n:
            write_crops(folder, n)
        rows[n] = measure(folder, args.work / f"run-{n}", args.work / f"run-{n}.log")
        print(json.dumps({"crops": n, **rows[n]}), flush=True)
    print("\n| crops | peak RSS (MiB) | verified on | seconds |\n| ---: | ---: | ---: | ---: |")
    for n, r in rows.items():
        print(f"| {n} | {r['peak_rss_mib']} | {r['verify_samples']} | {r['seconds']} |")
    small, large = (rows[n]["peak_rss_mib"] for n in SIZES)
    metrics = {"peak_rss_mib_400": small, "peak_rss_mib_4000": large,
               "rss_ratio_4000_vs_400": round(large / small, 3),
               "verify_passed_all": all(r["verify_passed"] for r in rows.values()),
               **{f"quick_{k}": v for k, v in QUICK.items()}}
    print(json.dumps(metrics, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"run": info, "metrics": metrics,
                                         "rows": {str(n): r for n, r in rows.items()}},
                                        indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
