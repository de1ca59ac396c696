"""Bring your own model, weights and data: `edgekit compress` on models from outside the zoo.

Part 1 (compress): writes a synthetic, seeded RGB image folder (``root/<class>/<i>.png``,
10 classes, 32 px: a red or a salmon square at one of five class-specific places, jittered,
plus a random distractor patch, on a noisy grey background; 93-96% held-out accuracy after
12 epochs), trains each model of
``benchmarks/byo_models.py`` in a plain PyTorch loop of its own (the folder read with
Pillow, no edgekit code; accuracy on its own 20% held out), saves
``torch.save(model.state_dict(), W)``, then runs the CLI in a subprocess per target:

    edgekit compress --model benchmarks/byo_models.py:<factory> --model-args '{"num_classes": 10}'
        --weights W --data DIR --target T --out OUT --qat-epochs 1 --bench-runs 20 --power none

and reads ``OUT/manifest.json``: parity (deployed file vs the trained int8 model, top-1
agreement), fp32 and deployed accuracy on compress's own 20% hold-out of the folder (a
random, stratified split: most of those images were in this script's training set), and
``int8_minus_fp32``. A failed run is a row with passed = false and its error text.

Part 2 (memory, ``--skip-rss`` skips it): peak RSS of calibration + one QAT epoch
(``edgekit.quantization.quantize``, tensorrt scheme, batch 16) of model 1 on a folder of N
and of 10×N 224-px JPEGs (quality 90) read lazily with ``load_dataset(folder,
preprocess=Preprocess(input_size=224))``, each in a fresh subprocess (its VmHWM).
N = 150 (1,500 for 10×N; ``--quick``: 30 / 300). ``rss_growth_10x`` = peak(10N) / peak(N).

    python benchmarks/byo.py --json docs/results/byo-2026-12-02.json [--out DIR] [--quick]
        [--targets jetson,raspberry-pi-5,x86-cpu] [--models mnv3_se,...] [--skip-rss]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS_FILE = HERE / "byo_models.py"
TARGETS = ("jetson", "raspberry-pi-5", "x86-cpu")
CLASSES = 10
# (per class, plain-PyTorch epochs, N for the RSS part) for full and --quick runs
SIZES = {"full": (200, 12, 150), "quick": (80, 8, 30)}
RSS_CALIBRATION = 30  # calibration samples: the same for both folder sizes (<= N)
PLACES = ((0.25, 0.25), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0.75, 0.75))
COLOURS = ((215, 60, 45), (215, 150, 135))  # red, salmon


# -- data ---------------------------------------------------------------------------------------

def draw(rng: np.random.Generator, label: int, size: int = 32) -> np.ndarray:
    """One H×W×3 uint8 image of class ``label``: its colour at its place, jittered."""
    img = rng.normal(rng.uniform(60, 170), 28, (size, size, 3))
    patch = int(rng.integers(size // 8, size // 5 + 1))  # distractor: any colour, anywhere
    py, px = rng.integers(0, size - patch, 2)
    img[py:py + patch, px:px + patch] = rng.uniform(0, 255, 3)
    cx, cy = PLACES[label % len(PLACES)]
    side = int(rng.integers(size * 7 // 32, size * 10 // 32 + 1))
    jitter = size // 8
    y0, x0 = (int(c * size - side / 2 + rng.integers(-jitter, jitter + 1)) for c in (cy, cx))
    y0, x0 = (min(max(v, 0), size - side) for v in (y0, x0))
    colour = np.array(COLOURS[label // len(PLACES)]) + rng.normal(0, 25, 3)
    img[y0:y0 + side, x0:x0 + side] = colour + rng.normal(0, 10, (side, side, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_folder(root: Path, per_class: int, *, seed: int, size: int = 32,
                 jpeg_size: int | None = None) -> int:
    """``root/<class>/<i>.png`` (or 224-px ``.jpg`` at quality 90 with ``jpeg_size``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in range(CLASSES):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        for label in range(CLASSES):
            image = Image.fromarray(draw(rng, label, size), "RGB")
            path = root / f"c{label}" / f"{i:05d}"
            if jpeg_size is None:
                image.save(path.with_suffix(".png"))
                continue
            big = np.asarray(image.resize((jpeg_size,) * 2, Image.BILINEAR), np.float32)
            big = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
            Image.fromarray(big, "RGB").save(path.with_suffix(".jpg"), quality=90)
    return per_class * CLASSES


def read_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole folder in memory with Pillow: x (N, 3, H, W) float32 in [0, 1], y int64."""
    from PIL import Image

    xs, ys = [], []
    for label, class_dir in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(class_dir.glob("*.png")):
            with Image.open(path) as im:
                xs.append(np.asarray(im.convert("RGB"), np.float32).transpose(2, 0, 1) / 255)
            ys.append(label)
    return np.stack(xs), np.array(ys, np.int64)


# -- plain-PyTorch training (no edgekit) --------------------------------------------------------

def train_plain(name: str, x: np.ndarray, y: np.ndarray, *, epochs: int,
                seed: int = 0) -> tuple[Any, float]:
    """Train ``name`` on 80% of (x, y) with Adam; (model, accuracy on the other 20%)."""
    import torch
    from byo_models import FACTORIES

    torch.manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(x))
    held = len(x) // 5
    test_idx, train_idx = order[:held], order[held:]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = FACTORIES[name](num_classes=CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * -(-len(train_idx) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=gen)]
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(xt[test_idx[i:i + 256]]).argmax(1)
                          for i in range(0, held, 256)])
    return model, float((pred == yt[test_idx]).float().mean())


# -- edgekit compress, one case -----------------------------------------------------------------

def edgekit_command() -> list[str]:
    script = Path(sys.executable).parent / "edgekit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edgekit"]


def compress_case(name: str, weights: Path, data: Path, target: str, out: Path, *,
                  qat_epochs: int, timeout: float) -> dict[str, Any]:
    """Run `edgekit compress` in a subprocess and read its manifest into one result row."""
    cmd = [*edgekit_command(), "compress", "--model", f"{MODELS_FILE}:{name}",
           "--model-args", json.dumps({"num_classes": CLASSES}), "--weights", str(weights),
           "--data", str(data), "--target", target, "--out", str(out),
           "--qat-epochs", str(qat_epochs), "--bench-runs", "20", "--power", "none"]
    if out.exists():
        cmd.append("--overwrite")
    row: dict[str, Any] = {"model": name, "target": target, "passed": False, "parity": None,
                           "fp32_acc": None, "deployed_acc": None, "drop_pp": None,
                           "error": None, "command": subprocess.list2cmdline(cmd)}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        row.update(seconds=time.perf_counter() - start, error=f"timed out after {timeout:.0f} s")
        return row
    row["seconds"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    (out.parent / f"{out.name}.log").write_text(proc.stdout + proc.stderr)
    manifest = out / "manifest.json"
    if manifest.is_file():
        row.update(_from_manifest(json.loads(manifest.read_text())))
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-6:]
        row.update(passed=False, error=f"exit {proc.returncode}: " + " | ".join(tail))
    elif not manifest.is_file():
        row["error"] = "exit 0 but no manifest.json"
    return row


def _from_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    metrics = manifest.get("metrics", {})
    parity = metrics.get("parity") or {}
    rows = metrics.get("accuracy_rows") or []
    fp32 = next((r["value"] for r in rows if r["model"].startswith("fp32")), None)
    deployed = next((r["value"] for r in rows if r["model"].startswith("deployed")), None)
    fake = next((r["value"] for r in rows if r["model"].startswith("int8 fake")), None)
    drop = None if fp32 is None or deployed is None else 100 * (fp32 - deployed)
    return {"passed": bool(parity.get("passed")), "parity": parity.get("agreement"),
            "fp32_acc": fp32, "deployed_acc": deployed, "int8_trained_acc": fake,
            "drop_pp": drop, "int8_minus_fp32": metrics.get("int8_minus_fp32"),
            "parity_detail": parity, "size_ratio": metrics.get("size_ratio")}


# -- peak RSS of calibration + one QAT epoch on a lazy folder -----------------------------------

RSS_SNIPPET = r"""
import json, sys, threading, time
import torch
sys.path.insert(0, sys.argv[3])
from byo_models import mnv3_se
from edgekit.calibration import Preprocess, load_dataset
from edgekit.quantization import QuantConfig, quantize

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

samples, done = [], threading.Event()
def sample():  # RSS over time: a plateau, or growth with the images seen?
    t0 = time.perf_counter()
    while not done.wait(0.25):
        samples.append((time.perf_counter() - t0, status("VmRSS")))

torch.manual_seed(0)
ds = load_dataset(sys.argv[1], preprocess=Preprocess(input_size=224))
model = mnv3_se(num_classes=ds.num_classes)
before = status("VmHWM")
t0 = time.perf_counter()
threading.Thread(target=sample, daemon=True).start()
config = QuantConfig(target="tensorrt", epochs=1, calibration_size=int(sys.argv[2]),
                     batch_size=16)
quantize(model, config, train_data=ds)
done.set()
seconds = time.perf_counter() - t0
tenths = [max((r for t, r in samples if t <= seconds * k / 10), default=None)
          for k in range(1, 11)]
print(json.dumps({"images": len(ds), "peak_mb": status("VmHWM"), "peak_before_mb": before,
                  "seconds": seconds, "peak_by_tenth_of_run_mb": tenths}))
"""


def measure_rss(folder: Path, *, timeout: float) -> dict[str, Any]:
    """Calibration + one QAT epoch over ``folder`` in a fresh interpreter; its peak RSS."""
    cmd = [sys.executable, "-c", RSS_SNIPPET, str(folder), str(RSS_CALIBRATION), str(HERE)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "wall_s": timeout}
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-6:])
        return {"error": f"exit {proc.returncode}: {tail}",
                "wall_s": time.perf_counter() - start}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "wall_s": time.perf_counter() - start}


def rss_part(work: Path, n: int, *, timeout: float) -> dict[str, Any]:
    runs = {}
    for count in (n, 10 * n):
        folder = work / f"jpeg224-{count}"
        if not folder.is_dir():
            write_folder(folder, count // CLASSES, seed=1, jpeg_size=224)
        runs[count] = measure_rss(folder, timeout=timeout)
        print(f"rss: {count} images: {json.dumps(runs[count])}", flush=True)
    small, big = runs[n], runs[10 * n]
    metrics: dict[str, Any] = {"rss_n_images": n, "rss_10n_images": 10 * n}
    if "peak_mb" in small and "peak_mb" in big:
        metrics.update(rss_peak_n_mb=small["peak_mb"], rss_peak_10n_mb=big["peak_mb"],
                       rss_growth_10x=big["peak_mb"] / small["peak_mb"],
                       rss_qat_seconds_10n=big["seconds"])
    return {"metrics": metrics, "runs": {str(k): v for k, v in runs.items()}}


# -- provenance, table, main --------------------------------------------------------------------

def provenance(argv: list[str] | None) -> dict[str, Any]:
    import torch
    from _provenance import run_info  # benchmarks/, on sys.path when run as a script

    versions = {}
    for dist in ("edgekit", "numpy", "pillow", "onnx", "onnxruntime", "nncf", "ai-edge-litert",
                 "tensorrt"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return {**run_info("byo", argv, torch_threads=torch.get_num_threads()),
            "cpu": platform.processor() or platform.machine(), "versions": versions}


def print_table(rows: list[dict[str, Any]]) -> None:
    def f(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = ("model", "target", "passed", "parity", "fp32", "deployed", "drop pp", "s", "error")
    lines = [header] + [
        (r["model"], r["target"], "yes" if r["passed"] else "NO", f(r["parity"], ".4f"),
         f(r["fp32_acc"], ".4f"), f(r["deployed_acc"], ".4f"), f(r["drop_pp"], "+.2f"),
         f(r.get("seconds"), ".0f"), (r["error"] or "")[:60]) for r in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def run_cases(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict[str, float]]:
    per_class, epochs, _ = SIZES["quick" if args.quick else "full"]
    data = work / "images"
    if not data.is_dir():
        print(f"writing {write_folder(data, per_class, seed=0)} PNGs to {data}", flush=True)
    x, y = read_folder(data)
    rows, torch_acc = [], {}
    for name in filter(None, args.models.split(",")):
        t0 = time.perf_counter()
        model, torch_acc[name] = train_plain(name, x, y, epochs=epochs)
        weights = work / f"{name}.pt"
        import torch

        torch.save(model.state_dict(), weights)
        print(f"{name}: plain PyTorch, {epochs} epochs, held-out accuracy "
              f"{torch_acc[name]:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for target in filter(None, args.targets.split(",")):
            row = compress_case(name, weights, data, target, work / f"{name}-{target}",
                                qat_epochs=args.qat_epochs, timeout=args.timeout)
            row["torch_holdout_acc"] = torch_acc[name]
            rows.append(row)
            print(f"{name} on {target}: passed={row['passed']} parity={row['parity']} "
                  f"drop={row['drop_pp']} ({row['seconds']:.0f} s) {row['error'] or ''}",
                  flush=True)
    return rows, torch_acc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` + rows) here")
    p.add_argument("--out", help="work folder (default: a new temporary folder)")
    p.add_argument("--quick", action="store_true", help="smoke run: fewer images and epochs")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--models", default="mnv3_se,shuffle_cat,seq_dropout")
    p.add_argument("--skip-rss", action="store_true", help="skip the peak-RSS part")
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads here and OMP_NUM_THREADS of the subprocesses")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the subprocesses
    work = Path(args.out or tempfile.mkdtemp(prefix="edgekit-byo-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", flush=True)
    started = time.perf_counter()
    rows, torch_acc = run_cases(args, work)
    ok = [r for r in rows if r["parity"] is not None]
    drops = [r["drop_pp"] for r in rows if r["drop_pp"] is not None]
    metrics: dict[str, Any] = {
        "byo_cases": len(rows), "byo_passed": sum(r["passed"] for r in rows),
        "byo_parity_min": min((r["parity"] for r in ok), default=None),
        "byo_int8_drop_pp_max": max(drops, default=None),
        **{f"torch_holdout_acc_{k}": v for k, v in torch_acc.items()}}
    rss: dict[str, Any] = {}
    if not args.skip_rss:
        rss = rss_part(work, SIZES["quick" if args.quick else "full"][2], timeout=args.timeout)
        metrics.update(rss["metrics"])
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    print()
    print_table(rows)
    print(json.dumps(metrics, indent=2))
    if args.json:
        from edgekit.core.io import atomic_write_json

        atomic_write_json(args.json, {**provenance(argv), "metrics": metrics, "rows": rows,
                                      "rss_runs": rss.get("runs", {}), "quick": args.quick})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
