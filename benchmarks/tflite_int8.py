"""TFLite int8: QAT parity in LiteRT, float ops left, and int8 speed vs fp32 and vs litert PTQ.

Part 1, per zoo family (small-input variants, mnist5k; ESPNet on mnist5k_seg): train fp32
briefly, QAT for TFLite (``quantize_for_tflite``), export the full-integer file, run it in
the LiteRT interpreter on the test split and compare with the trained fake-quant torch
model (top-1 / pixel agreement); count float ops in edgekit's file and in litert's own
PT2E PTQ file of the same model.

Part 2, MobileNetV2-224 (3×224×224, 1000 classes, untrained weights, calibrated on crops
of scikit-learn's photos): median latency in LiteRT (XNNPACK, 1 and 2 threads) of the
fp32 file, edgekit's int8 file and litert's PTQ file, all measured in one run.

    python benchmarks/tflite_int8.py --json results/tflite_int8.json [--models lenet5,...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_MODELS = ("lenet5", "mobilenet_v3_small", "shufflenet_v2_x1_0", "squeezenet1_1",
                  "espnet")
SEGMENTATION = {"espnet", "espnetv2"}


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def family_row(name: str, out: Path, *, epochs: int, qat_epochs: int, train_n: int,
               test_n: int) -> dict:
    import torch

    from edgekit.calibration import load_dataset
    from edgekit.core.errors import ExportError
    from edgekit.export.litert_ops import float_compute_ops, inspect_tflite, op_counts
    from edgekit.export.tflite import export_tflite, run_tflite, vendor_ptq_tflite
    from edgekit.models import create_model
    from edgekit.quantization import QuantConfig
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite
    from edgekit.training import TrainConfig, train

    seg = name in SEGMENTATION
    data = "mnist5k_seg" if seg else "mnist5k"
    size = 32 if seg else 28
    train_ds = load_dataset(data, split="train", input_size=size if seg else None)
    test_ds = load_dataset(data, split="test", input_size=size if seg else None)
    train_ds = train_ds.subset(min(train_n, len(train_ds)), seed=0)
    test_ds = test_ds.subset(min(test_n, len(test_ds)), seed=0)
    torch.manual_seed(0)
    model = create_model(name, num_classes=train_ds.num_classes, in_channels=1, input_size=size)
    t0 = time.perf_counter()
    train(model, train_ds, TrainConfig(epochs=epochs, lr=2e-3, batch_size=64, progress=False))
    cfg = QuantConfig(target="tflite", mode="qat", epochs=qat_epochs, lr=1e-4,
                      calibration_size=256, batch_size=64, seed=0)
    qm = quantize_for_tflite(model, cfg, train_data=train_ds)
    calib = train_ds.subset(64, seed=1).x
    art = export_tflite(qm, out / f"{name}_int8.tflite", calibration=calib)
    try:  # litert's own PTQ cannot convert every family (e.g. ESPNet: PAD scale constraint)
        vendor = vendor_ptq_tflite(model, out / f"{name}_vendor_ptq.tflite", calibration=calib)
    except ExportError as exc:
        vendor, vendor_error = None, str(exc)
    else:
        vendor_error = None
    x, y = test_ds.x, test_ds.y
    got = run_tflite(art.path, x)
    got_builtin = run_tflite(art.path, x, xnnpack=False)
    with torch.no_grad():
        fake = qm.model(torch.from_numpy(x)).numpy()
        fp32 = model.eval()(torch.from_numpy(x)).numpy()
    vend = run_tflite(vendor.path, x) if vendor else None
    from edgekit.export.litert_ops import open_interpreter

    step = float(open_interpreter(art.path).get_output_details()[0]["quantization"][0])
    ours_floats = float_compute_ops(art.path)
    vendor_floats = float_compute_ops(vendor.path) if vendor else []
    vendor_counts = op_counts(vendor.path) if vendor else {}
    requantize = sum(1 for op in inspect_tflite(art.path)
                     if op.op_name == "QUANTIZE" and not op.runs_in_float)
    return {
        "model": name,
        "task": "segmentation" if seg else "classification",
        "parity_tflite_vs_fakequant": _agreement(got, fake),
        "parity_builtin_kernels_vs_fakequant": _agreement(got_builtin, fake),
        "max_logit_error_steps": float(np.abs(got - fake).max() / step),
        "mean_logit_error_steps": float(np.abs(got - fake).mean() / step),
        "acc_fp32": float(np.mean(fp32.argmax(1) == y)),
        "acc_fakequant": float(np.mean(fake.argmax(1) == y)),
        "acc_tflite_int8": float(np.mean(got.argmax(1) == y)),
        "acc_vendor_ptq": float(np.mean(vend.argmax(1) == y)) if vend is not None else None,
        "vendor_error": vendor_error,
        "float_ops": len(ours_floats),
        "float_ops_detail": ours_floats,
        "int8_requantize_ops": requantize,
        "vendor_float_ops": len(vendor_floats),
        "vendor_quantize_ops": vendor_counts.get("QUANTIZE", 0),
        "vendor_dequantize_ops": vendor_counts.get("DEQUANTIZE", 0),
        "seconds": time.perf_counter() - t0,
    }


def _interleaved_medians(files: dict[str, Path], x: np.ndarray, threads: int,
                         repeats: int) -> dict[str, float]:
    """Median ms per file; one invocation of each file per round, so load spikes from other
    processes on the shared CPU hit all files alike."""
    from edgekit.runtime.base import quantize_input
    from edgekit.runtime.litert import LiteRTRunner

    runners = {}
    for label, path in files.items():
        runner = LiteRTRunner(path, threads=threads)
        runner.load()
        (spec,) = runner.input_specs()
        runner.set_inputs([quantize_input(x, spec)])
        for _ in range(3):
            runner.run()
        runners[label] = runner
    times: dict[str, list[float]] = {label: [] for label in files}
    for _ in range(repeats):
        for label, runner in runners.items():
            t = time.perf_counter()
            runner.run()
            times[label].append(time.perf_counter() - t)
    return {label: float(np.median(v) * 1e3) for label, v in times.items()}


def speed_rows(out: Path, repeats: int, *, reuse: bool = False) -> dict:
    import torch

    from edgekit.calibration import calibration_crops
    from edgekit.export.litert_ops import op_counts
    from edgekit.export.tflite import export_tflite, vendor_ptq_tflite
    from edgekit.models import create_model
    from edgekit.quantization import QuantConfig
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=1000, in_channels=3, input_size=224).eval()
    calib = calibration_crops(32, size=224, channels=3, seed=0)
    cfg = QuantConfig(target="tflite", mode="ptq", epochs=0, calibration_size=32,
                      batch_size=8, seed=0)
    files = {"fp32": out / "mbv2_224_fp32.tflite", "edgekit_int8": out / "mbv2_224_int8.tflite",
             "vendor_ptq": out / "mbv2_224_vendor.tflite"}
    if not (reuse and all(p.is_file() for p in files.values())):
        qm = quantize_for_tflite(model, cfg, calib_data=calib)
        export_tflite(model, files["fp32"], calibration=calib[:2])
        export_tflite(qm, files["edgekit_int8"], calibration=calib[:2])
        vendor_ptq_tflite(model, files["vendor_ptq"], calibration=calib[:8])
    x = calib[:1]
    res: dict = {}
    for threads in (1, 2):
        for label, ms in _interleaved_medians(files, x, threads, repeats).items():
            res[f"mbv2_224_{label}_ms_t{threads}"] = ms
        fp32 = res[f"mbv2_224_fp32_ms_t{threads}"]
        ours = res[f"mbv2_224_edgekit_int8_ms_t{threads}"]
        vend = res[f"mbv2_224_vendor_ptq_ms_t{threads}"]
        res[f"tflite_int8_vs_fp32_t{threads}"] = fp32 / ours
        res[f"tflite_vendor_vs_fp32_t{threads}"] = fp32 / vend
        res[f"tflite_int8_vs_vendor_t{threads}"] = vend / ours
    for label, path in files.items():
        counts = op_counts(path)
        res[f"mbv2_224_{label}_quantize_ops"] = counts.get("QUANTIZE", 0)
        res[f"mbv2_224_{label}_dequantize_ops"] = counts.get("DEQUANTIZE", 0)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` + per-model rows) here")
    p.add_argument("--out", help="directory for the .tflite files (default: a temp dir)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--epochs", type=int, default=4, help="fp32 training epochs")
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--train-n", type=int, default=3000)
    p.add_argument("--test-n", type=int, default=500)
    p.add_argument("--repeats", type=int, default=50, help="timed invocations per file")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--reuse-files", action="store_true",
                   help="time the MobileNetV2-224 files already in --out instead of converting")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="edgekit-tflite-"))
    rows = []
    for name in [m for m in args.models.split(",") if m]:
        row = family_row(name, out, epochs=args.epochs, qat_epochs=args.qat_epochs,
                         train_n=args.train_n, test_n=args.test_n)
        rows.append(row)
        print(f"{name:20s} parity {row['parity_tflite_vs_fakequant']:.4f} "
              f"(max err {row['max_logit_error_steps']:.2f} steps)  "
              f"acc fp32 {row['acc_fp32']:.4f} int8 {row['acc_tflite_int8']:.4f} "
              f"vendor {row['acc_vendor_ptq'] or float('nan'):.4f}  float ops {row['float_ops']} "
              f"(vendor {row['vendor_float_ops']})  {row['seconds']:.0f}s", flush=True)
    metrics: dict = {}
    if rows:
        metrics.update({
            "parity_min_tflite": min(r["parity_tflite_vs_fakequant"] for r in rows),
            "tflite_float_ops_total": sum(r["float_ops"] for r in rows),
            "vendor_float_ops_total": sum(r["vendor_float_ops"] for r in rows),
            "int8_acc_drop_pp_max": max(100 * (r["acc_fp32"] - r["acc_tflite_int8"])
                                        for r in rows),
            "qat_minus_vendor_ptq_pp_min": min(
                (100 * (r["acc_tflite_int8"] - r["acc_vendor_ptq"]) for r in rows
                 if r["acc_vendor_ptq"] is not None), default=float("nan")),
        })
    if not args.skip_speed:
        metrics.update(speed_rows(out, args.repeats, reuse=args.reuse_files))
        for threads in (1, 2):
            print(f"MobileNetV2-224, {threads} thread(s): fp32 "
                  f"{metrics[f'mbv2_224_fp32_ms_t{threads}']:.1f} ms, edgekit int8 "
                  f"{metrics[f'mbv2_224_edgekit_int8_ms_t{threads}']:.1f} ms, vendor PTQ "
                  f"{metrics[f'mbv2_224_vendor_ptq_ms_t{threads}']:.1f} ms; int8 vs fp32 "
                  f"{metrics[f'tflite_int8_vs_fp32_t{threads}']:.2f}x, vs vendor "
                  f"{metrics[f'tflite_int8_vs_vendor_t{threads}']:.2f}x", flush=True)
    for key, value in metrics.items():
        print(f"{key:40s} {value:.4g}" if isinstance(value, float) else f"{key:40s} {value}")
    if args.json:
        from _provenance import run_info  # benchmarks/, on sys.path when run as a script

        from edgekit.core.io import atomic_write_json

        atomic_write_json(args.json, {**run_info("tflite_int8", None), "out_dir": str(out),
                                      "metrics": metrics, "models": rows})
    print(json.dumps({"out_dir": str(out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
