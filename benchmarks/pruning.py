"""Channel pruning to 50% of the MACs and 2:4 sparsity: accuracy, size, verified int8 files,
and the latency of pruned vs dense models measured in one run.

Part ``accuracy`` (per family, small-input variant on mnist5k; ESPNetv2 on mnist5k_seg, mIoU):
train the dense model as benchmarks/quantization.py does (same data, seed, epochs, lr),
then give it ``--ft-epochs`` more epochs (the dense baseline) and give the same epochs to
  * the channel-pruned copy (``keep_macs=0.5``, ``--steps`` prune rounds, fine-tuned with
    distillation from the dense model, ``edgekit.pruning.prune_and_finetune``),
  * a 2:4-sparse copy (masks enforced every step, ``sparse_finetune``).
The pruned model is QAT'ed for TensorRT (QDQ ONNX) and for TFLite, the 2:4 model for
TensorRT with its masks enforced through QAT; each int8 file is verified against its
trained torch model (``edgekit.export.verify``) and the 2:4 file is checked for the
pattern on its int8 initializers (``check_24_onnx``).

Part ``speed``: the same families at 224 px (3 channels, 10 classes; untrained, seeded
weights: latency does not depend on them), pruned with the same engine to 50% of the MACs,
exported dense and pruned as fp32 and int8 (PTQ on photo crops) ONNX and TFLite, each file
timed by ``edgekit bench`` in a process of its own, all in one run (one thread).
``--part files`` builds the files only, ``--part speed`` times them (``--reuse-files``), so
the timing can run alone on the machine (an exclusive lock) and the building may not.

    python benchmarks/pruning.py --json docs/results/pruning.json --out /tmp/pruning
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path
from typing import Any

from _provenance import cpu_flags
from quantization import FAMILY_LR, _median_ms, data_splits, train_fp32

FAMILIES = ("mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "squeezenet1_1",
            "espnetv2")
# the accuracy part's model where it is not the family's small default: ESPNetv2 at the
# width the 224-px speed part times (1.0); at the small default (0.5) its decoder, whose
# width does not scale, holds 40% of the MACs and the pruner stops at 52.5% of them
MODEL_ARGS: dict[str, dict[str, Any]] = {"espnetv2": {"width_mult": 1.0}}
SPEED_KEYS = ("ort_fp32", "ort_int8", "tflite_fp32", "tflite_int8")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    p.add_argument("--out", required=True, help="directory for the model files")
    p.add_argument("--part", choices=("all", "accuracy", "files", "speed"), default="all")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--keep-macs", type=float, default=0.5)
    p.add_argument("--train-samples", type=int, default=4000)
    p.add_argument("--test-samples", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=6, help="dense fp32 epochs")
    p.add_argument("--seg-epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--ft-epochs", type=int, default=8, help="extra epochs, each model alike")
    p.add_argument("--ft-lr", type=float, default=3e-3)
    p.add_argument("--importance", default="auto", help="channel ranking (ChannelPruneConfig"
                   ".importance; auto = taylor on the labelled training digits)")
    p.add_argument("--steps", type=int, default=2, help="prune rounds (ft-epochs split)")
    p.add_argument("--distill", type=float, default=0.5, help="weight of the distillation "
                   "term in the pruned model's fine-tuning (ChannelPruneConfig.distill)")
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--speed-runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runtimes", default="ort,tflite", help="speed part: ort and/or tflite")
    p.add_argument("--reuse-files", action="store_true")
    p.add_argument("--quick", action="store_true", help="2,000 training digits, 3 dense "
                   "epochs (8 for ESPNetv2), 2 extra epochs, 1 prune round")
    return p


def main() -> int:
    args = _parser().parse_args()
    if args.quick:
        args.train_samples, args.epochs, args.seg_epochs = 2000, 3, 8
        args.ft_epochs, args.steps = 2, 1
    import torch
    from _provenance import run_info

    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.families.split(",") if n]
    result = _load(args.json)  # parts run separately add to one file
    result.update({**run_info("pruning", None, torch_threads=2), "cpu_flags": cpu_flags(),
                   "budget": {k: getattr(args, k) for k in (
                       "keep_macs", "train_samples", "test_samples", "epochs", "seg_epochs",
                       "lr", "ft_epochs", "ft_lr", "importance", "steps", "distill", "qat_epochs",
                       "speed_runs", "threads", "quick")}})
    result.setdefault("families", {})
    if args.part in ("all", "accuracy"):
        for name in names:
            t0 = time.perf_counter()
            try:
                row = _accuracy(name, args, out)
            except Exception as exc:  # one family's failure is a result too
                row = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            result["families"].setdefault(name, {}).update(row)
            print(name, {k: v for k, v in row.items() if not isinstance(v, dict)}, flush=True)
            _save(args.json, result)
    if args.part in ("all", "files", "speed"):
        for name in names:
            row = result["families"].setdefault(name, {})
            try:
                files, info = _speed_files(name, out, args)
                row["speed_224"] = info
                if args.part != "files":
                    # one runtime's part may run alone: keep the other's figures
                    row.setdefault("latency_ms", {}).update({f"{variant}.{key}": round(
                        _median_ms(path, args.threads, args.speed_runs), 3)
                        for (variant, key), path in files.items()})
            except Exception as exc:
                row["speed_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            print(name, row.get("latency_ms", row.get("speed_error", "files built")),
                  flush=True)
            _save(args.json, result)
    _save(args.json, result)
    for key, value in result["metrics"].items():
        print(f"{key:<40} {value}")
    return 0


def _accuracy(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import torch

    from edgekit.models import count_macs, count_params, get_model_spec
    from edgekit.pruning import ChannelPruneConfig, prune_and_finetune, sparse_finetune
    from edgekit.training import TrainConfig, evaluate, train

    seg = get_model_spec(name).task == "segmentation"
    metric = "miou" if seg else "accuracy"
    train_ds, val_ds, test_ds = data_splits(name, args.train_samples, args.test_samples)
    lr = FAMILY_LR.get(name, args.lr)
    dense, fit = train_fp32(name, train_ds, val_ds, epochs=args.seg_epochs if seg
                            else args.epochs, lr=lr, **MODEL_ARGS.get(name, {}))
    ft_lr = min(args.ft_lr, lr)
    ft = TrainConfig(epochs=args.ft_epochs, lr=ft_lr, batch_size=64, progress=False)
    row: dict[str, Any] = {"task": "segmentation" if seg else "classification",
                           "metric": metric, "dense_trained": evaluate(dense, test_ds)[metric],
                           "dense_epochs": fit.epochs_run, "lr": lr, "ft_lr": ft_lr}
    baseline = copy.deepcopy(dense)
    torch.manual_seed(1)
    train(baseline, train_ds, ft, val_data=val_ds)
    row["dense"] = evaluate(baseline, test_ds)[metric]
    pruned = copy.deepcopy(dense)
    torch.manual_seed(1)
    config = ChannelPruneConfig(keep_macs=args.keep_macs, steps=args.steps,
                                importance=args.importance, distill=args.distill,
                                epochs_per_step=max(1, args.ft_epochs // args.steps))
    result = prune_and_finetune(pruned, train_ds, config, train_config=ft, val_data=val_ds,
                                teacher=dense)
    row["pruned"] = evaluate(pruned, test_ds)[metric]
    row["drop_pp"] = round(100 * (row["dense"] - row["pruned"]), 2)
    row["drop_pp_ci95"] = _paired_drop_ci(baseline, pruned, test_ds)
    row["importance"] = result.steps[-1]["importance"]
    row["distill"] = args.distill
    size = get_model_spec(name).small_input_size
    row["small"] = {"macs_dense": count_macs(dense), "macs_pruned": count_macs(pruned),
                    "params_dense": count_params(dense), "params_pruned": count_params(pruned),
                    "input_size": size, "model_args": MODEL_ARGS.get(name, {}),
                    "excluded": len(result.excluded),
                    "excluded_reasons": sorted(set(result.excluded.values()))}
    sparse = copy.deepcopy(dense)
    torch.manual_seed(1)
    s24 = sparse_finetune(sparse, train_ds, train_config=ft, val_data=val_ds, teacher=dense)
    row["sparse24"] = {metric: evaluate(sparse, test_ds)[metric],
                       "mac_share": s24.sparse_mac_share, "layers": len(s24.masks),
                       "dense_layers": len(s24.dense)}
    row["sparse24"]["drop_pp"] = round(100 * (row["dense"] - row["sparse24"][metric]), 2)
    row["sparse24"]["drop_pp_ci95"] = _paired_drop_ci(baseline, sparse, test_ds)
    row["int8"] = _int8_files(name, out, pruned, sparse, s24, train_ds, val_ds, test_ds, args)
    return row


def _paired_drop_ci(dense: Any, pruned: Any, test_ds: Any) -> list[float]:
    """95% paired-bootstrap interval of dense minus pruned (pp) on the same test samples."""
    from edgekit.training import predicted_classes
    from edgekit.training.compare import paired_difference

    diff = paired_difference(predicted_classes(dense, test_ds), predicted_classes(pruned, test_ds),
                             test_ds.y, task=test_ds.task, num_classes=test_ds.num_classes)
    return [round(100 * diff.low, 2), round(100 * diff.high, 2)]


def _int8_files(name: str, out: Path, pruned: Any, sparse: Any, s24: Any, train_ds: Any,
                val_ds: Any, test_ds: Any, args: argparse.Namespace) -> dict[str, Any]:
    """QAT'ed int8 files of the pruned (TensorRT, TFLite) and 2:4 (TensorRT) models,
    each verified against its trained torch model; the 2:4 file checked for the pattern."""
    from edgekit.export.onnx import export_onnx
    from edgekit.export.tflite import export_tflite
    from edgekit.export.verify import verify
    from edgekit.pruning import check_24_onnx, mask_enforcer, pattern_ok
    from edgekit.quantization import QuantConfig, quantize

    qcfg = dict(epochs=args.qat_epochs, lr=1e-4, calibration_size=256, batch_size=64,
                progress=False)
    info: dict[str, Any] = {}
    jobs = {"pruned_tensorrt": (pruned, "tensorrt", None),
            "pruned_tflite": (pruned, "tflite", None),
            "sparse24_tensorrt": (sparse, "tensorrt", mask_enforcer(s24))}
    for key, (model, target, hook) in jobs.items():
        qm = quantize(model, QuantConfig(target=target, **qcfg), train_data=train_ds,
                      val_data=val_ds, after_step=hook)
        if target == "tflite":
            path = export_tflite(qm, out / f"{name}.{key}.int8.tflite",
                                 calibration=train_ds.subset(64, seed=2).x).path
        else:
            path = export_onnx(qm, out / f"{name}.{key}.int8.onnx").path
        report = verify(path, qm, test_ds, threshold=0.0)
        info[key] = {"file": path.name, "agreement": report.agreement}
        if key.startswith("sparse24"):
            rows = check_24_onnx(path)
            info[key]["pattern_ok"] = pattern_ok(rows)
            info[key]["eligible_layers"] = sum(r.eligible for r in rows)
            info[key]["claimed_layers"] = len(s24.masks)
    return info


def _speed_files(name: str, out: Path, args: argparse.Namespace
                 ) -> tuple[dict[tuple[str, str], Path], dict[str, Any]]:
    """Dense and pruned 224-px files (fp32/int8, ONNX/TFLite) and their sizes."""
    import torch

    from edgekit.calibration import calibration_crops
    from edgekit.export.onnx import export_onnx
    from edgekit.export.tflite import export_tflite
    from edgekit.models import count_macs, count_params, create_model
    from edgekit.pruning import ChannelPruneConfig, prune_channels
    from edgekit.quantization import QuantConfig, quantize

    calib = calibration_crops(32, size=224, channels=3)
    torch.manual_seed(0)
    dense = create_model(name, num_classes=10, in_channels=3, input_size=224).eval()
    pruned = copy.deepcopy(dense)
    result = prune_channels(pruned, ChannelPruneConfig(keep_macs=args.keep_macs))
    info = {"macs_dense": count_macs(dense), "macs_pruned": count_macs(pruned),
            "params_dense": count_params(dense), "params_pruned": count_params(pruned),
            "macs_ratio": result.macs_ratio, "excluded": len(result.excluded)}
    ptq = dict(mode="ptq", calibration_size=32, batch_size=8, progress=False)
    files: dict[tuple[str, str], Path] = {}
    for variant, model in (("dense", dense), ("pruned", pruned)):
        stem = out / f"{name}-224.{variant}"
        makers = {
            "ort_fp32": lambda p, m=model: export_onnx(m, p, input_shape=(3, 224, 224)).path,
            "ort_int8": lambda p, m=model: export_onnx(quantize(m, QuantConfig(
                target="onnxruntime", **ptq), calib_data=calib), p).path,
            "tflite_fp32": lambda p, m=model: export_tflite(m, p, calibration=calib).path,
            "tflite_int8": lambda p, m=model: export_tflite(quantize(m, QuantConfig(
                target="tflite", **ptq), calib_data=calib), p, calibration=calib).path,
        }
        wanted = {r.strip() for r in args.runtimes.split(",")}
        for key, make in makers.items():
            if key.split("_")[0] not in wanted:
                continue
            suffix = ".onnx" if key.startswith("ort") else ".tflite"
            path = Path(f"{stem}.{key}{suffix}")
            files[(variant, key)] = path if args.reuse_files and path.is_file() else make(path)
    return files, info


def metrics(families: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The flat metrics: speedups (medians over families), the worst accuracy drop, 2:4."""
    out: dict[str, Any] = {}
    for runtime in ("ort", "tflite"):
        for precision in ("fp32", "int8"):
            key = f"{runtime}_{precision}"
            ratios = [r["latency_ms"][f"dense.{key}"] / r["latency_ms"][f"pruned.{key}"]
                      for r in families.values()
                      if f"pruned.{key}" in r.get("latency_ms", {})]
            if ratios:
                key = f"channel50_speedup_{runtime}" + ("" if precision == "fp32" else "_int8")
                out[key] = round(statistics.median(ratios), 3)
    cls = [r for r in families.values() if r.get("task") == "classification" and "drop_pp" in r]
    if cls:
        worst = max(cls, key=lambda r: r["drop_pp"])
        out["channel50_acc_drop_pp"] = worst["drop_pp"]
        if "drop_pp_ci95" in worst:  # paired bootstrap over the test samples
            out["channel50_acc_drop_pp_low"], out["channel50_acc_drop_pp_high"] = \
                worst["drop_pp_ci95"]
    seg = [r for r in families.values() if r.get("task") == "segmentation" and "drop_pp" in r]
    if seg:
        out["channel50_miou_drop_pp"] = max(r["drop_pp"] for r in seg)
    rows = [r for r in families.values() if "sparse24" in r]
    if rows:
        out["sparse24_mac_share_median"] = round(statistics.median(
            r["sparse24"]["mac_share"] for r in rows), 4)
        out["sparse24_acc_drop_pp"] = max(r["sparse24"]["drop_pp"] for r in rows
                                          if r["task"] == "classification") if cls else None
        # a family with no layer that qualifies (ESPNetv2: grouped, depthwise or too few
        # channels) has nothing to check: listed, not counted as a failure
        claimed = {n: r for n, r in families.items() if "sparse24" in r and r["sparse24"]["layers"]}
        out["sparse24_pattern_ok"] = bool(claimed) and all(
            r["int8"]["sparse24_tensorrt"]["pattern_ok"] for r in claimed.values())
        out["sparse24_no_layer_qualifies"] = ",".join(
            sorted(n for n, r in families.items() if "sparse24" in r and n not in claimed))
    agreements = [f["agreement"] for r in families.values() for k, f in r.get("int8", {}).items()
                  if k.startswith("pruned")]
    if agreements:
        out["pruned_int8_verify_min_agreement"] = min(agreements)
        out["pruned_int8_verify_ok"] = min(agreements) >= 0.995
    for name, r in families.items():
        for key in ("dense", "pruned", "drop_pp"):
            if key in r:
                out[f"{name}.{key}"] = r[key]
        if "latency_ms" in r:
            for k, v in r["latency_ms"].items():
                out[f"{name}.{k}_ms"] = v
    return out


def _load(path: str | None) -> dict[str, Any]:
    import json

    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else {}


def _save(path: str | None, result: dict[str, Any]) -> None:
    result["metrics"] = metrics(result["families"])
    if path:
        from edgekit.core.io import atomic_write_json

        atomic_write_json(path, result)


if __name__ == "__main__":
    raise SystemExit(main())
