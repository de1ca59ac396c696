"""QAT recipe on held-out digits: the learning rate, and nncf's fast bias correction.

The data are those of benchmarks/quantization.py: 4,000 mnist5k training digits, 10% of
them held out as the validation set that picks QAT's best epoch. The 3,600 digits left are
split again here: 2,880 train the fp32 model and QAT, and 720 are held out to score them.
The quantization benchmark's 1,000 test digits are not read, so a default chosen from
this table is not tuned on the figures that benchmark reports.

For each family, the fp32 model is trained as in that benchmark (its ``train_fp32``: 6
epochs, Adam with a cosine schedule at the benchmark's rate for the family, initial weights
seeded 0). Classification families only: the table scores accuracy. Then, for each target
and bias-correction setting (TensorRT and onnxruntime only: the TFLite path quantizes with
PT2E, which has no bias correction), ``edgekit.quantization.quantize`` runs

* once as PTQ (the calibrated start QAT begins from), scored on the held-out digits;
* once per QAT rate, with 2 QAT epochs and the validation set. The calibrated start is a
  candidate for the best epoch. Each run records the validation accuracy of the start and
  of each epoch, the epoch kept, and the held-out accuracy of the returned model.

Every row also gives the held-out KL divergence of the int8 model's softmax from the fp32
model's (mean over digits, nats): it sees a shift of the whole output that accuracy on 720
digits is too coarse to show.

    python benchmarks/qat_recipe.py --json results/qat_recipe.json [--families ...]
        [--lrs 1e-3,1e-4] [--bias-correction off,on]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from quantization import FAMILY_LR  # benchmarks/, on sys.path when run as a script

FAMILIES = ("shufflenet_v2_x1_0", "mobilenet_v2", "shufflenet_v1", "mobilenet_v3_small",
            "mobilenet_v1")
TARGETS = ("tensorrt", "onnxruntime", "tflite")
FP32_LR = 3e-3  # benchmarks/quantization.py's --lr default (FAMILY_LR where it differs)
FP32_EPOCHS = 6  # and its --epochs default
SETTINGS = {"off": False, "on": True}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated classification zoo names (default: %(default)s)")
    p.add_argument("--targets", default=",".join(TARGETS), help="default: %(default)s")
    p.add_argument("--lrs", default="1e-4", type=_rates,
                   help="comma-separated QAT learning rates (default: %(default)s)")
    p.add_argument("--bias-correction", default="off", type=_settings,
                   help="comma-separated nncf fast bias correction settings, off and/or on "
                        "(TensorRT and onnxruntime targets; default: %(default)s)")
    p.add_argument("--qat-epochs", type=int, default=2)
    args = p.parse_args(argv)
    targets, names = args.targets.split(","), args.families.split(",")

    import torch
    from _provenance import run_info

    from edgekit.core.errors import EdgekitError
    from edgekit.models import get_model_spec
    from edgekit.quantization.qdq.scheme import SCHEMES

    try:
        for name in names:
            if get_model_spec(name).task != "classification":
                p.error(f"{name} is a {get_model_spec(name).task} model; this table scores "
                        "accuracy (benchmarks/quantization.py covers the segmentation nets)")
    except EdgekitError as exc:  # an unknown zoo name
        p.error(str(exc))
    if unknown := [t for t in targets if t not in SCHEMES]:
        p.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(SCHEMES)}")

    info = run_info("qat_recipe", argv, torch_threads=torch.get_num_threads())
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in names:
        runs += _family(name, targets, args.lrs, args.bias_correction, args.qat_epochs)
    metrics = _metrics(runs)
    _print_table(runs, metrics)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        from edgekit.core.io import atomic_write_json

        atomic_write_json(args.json, {**info, "runs": runs, "metrics": metrics})
    return 0


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {text!r}") from None
    if not all(r > 0 for r in rates):
        raise argparse.ArgumentTypeError(f"learning rates must be > 0: {text!r}")
    return rates


def _settings(text: str) -> list[str]:
    values = text.split(",")
    if not values or any(v not in SETTINGS for v in values) or len(set(values)) < len(values):
        raise argparse.ArgumentTypeError(f"expected off, on or off,on, not {text!r}")
    return values


def _family(name: str, targets: list[str], lrs: list[float], settings: list[str],
            qat_epochs: int) -> list[dict[str, Any]]:
    from quantization import data_splits, train_fp32

    from edgekit.quantization import QuantConfig, quantize
    from edgekit.training import predict

    train_all, val_ds, _ = data_splits(name)  # the test set is never scored here
    train_ds, held_out = train_all.split(0.2, seed=5)
    fp32_lr = FAMILY_LR.get(name, FP32_LR)
    model, _ = train_fp32(name, train_ds, val_ds, epochs=FP32_EPOCHS, lr=fp32_lr)
    fp32_logits = predict(model, held_out.x)
    fp32 = float((fp32_logits.argmax(1) == held_out.y).mean())
    runs = []
    for target in targets:
        for setting in settings if target != "tflite" else [None]:
            extra = {} if setting is None else {"bias_correction": SETTINGS[setting]}
            for lr in [None, *lrs]:  # None: PTQ, the calibrated start
                t0 = time.perf_counter()
                mode = dict(mode="ptq") if lr is None else dict(epochs=qat_epochs,
                                                                lr=min(lr, fp32_lr))
                qm = quantize(model, QuantConfig(target=target, calibration_size=256,
                                                 batch_size=64, **mode, **extra),
                              train_data=train_ds, val_data=val_ds)
                logits = predict(qm.model, held_out.x)
                run = {"family": name, "target": target, "bias_correction": setting,
                       "mode": "ptq" if lr is None else "qat", "lr": lr, "fp32": fp32,
                       "int8": float((logits.argmax(1) == held_out.y).mean()),
                       "kl_from_fp32": round(_kl(fp32_logits, logits), 7)}
                if lr is not None:
                    fit = qm.history
                    run.update(val_start=fit.start_metric, kept_epoch=fit.best_epoch,
                               val_epochs=[h["val_accuracy"] for h in fit.history])
                run["seconds"] = round(time.perf_counter() - t0, 1)
                runs.append(run)
                print(_row(run), file=sys.stderr, flush=True)  # progress
    return runs


def _kl(reference: np.ndarray, logits: np.ndarray) -> float:
    """Mean KL(softmax(reference) || softmax(logits)) over the rows, in nats."""
    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z.astype(np.float64) - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    ref, out = log_softmax(reference), log_softmax(logits)
    return float((np.exp(ref) * (ref - out)).sum(1).mean())


def _tag(run: dict[str, Any]) -> str:
    tag = "ptq" if run["mode"] == "ptq" else f"lr{run['lr']:.0e}"
    return tag if run["bias_correction"] is None else f"{tag}_bc{run['bias_correction']}"


def _metrics(runs: list[dict[str, Any]]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for tag in dict.fromkeys(_tag(r) for r in runs):
        mine = [r for r in runs if _tag(r) == tag]
        drop = [100 * (r["int8"] - r["fp32"]) for r in mine]
        metrics[f"int8_minus_fp32_pp_mean_{tag}"] = round(sum(drop) / len(drop), 3)
        metrics[f"int8_minus_fp32_pp_min_{tag}"] = round(min(drop), 2)
        metrics[f"kl_from_fp32_mean_{tag}"] = round(
            sum(r["kl_from_fp32"] for r in mine) / len(mine), 6)
        if mine[0]["mode"] == "qat":
            dip = [100 * (r["val_epochs"][0] - r["val_start"]) for r in mine]
            metrics[f"val_epoch1_minus_start_pp_mean_{tag}"] = round(sum(dip) / len(dip), 3)
            metrics[f"kept_start_runs_{tag}"] = sum(r["kept_epoch"] == 0 for r in mine)
        metrics[f"runs_{tag}"] = len(mine)
    # paired PTQ: the same family and target with bias correction on and off (QAT's KL
    # depends mostly on which epoch it keeps)
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for r in runs:
        if r["mode"] == "ptq" and r["bias_correction"] is not None:
            pairs.setdefault((r["family"], r["target"]), {})[r["bias_correction"]] = (
                r["kl_from_fp32"])
    ratios = [p["on"] / max(p["off"], 1e-12) for p in pairs.values() if len(p) == 2]
    if ratios:
        metrics["ptq_kl_ratio_bc_on_over_off_min"] = round(min(ratios), 3)
        metrics["ptq_kl_ratio_bc_on_over_off_median"] = round(float(np.median(ratios)), 3)
        metrics["ptq_bc_pairs"] = len(ratios)
    return metrics


def _row(r: dict[str, Any]) -> str:
    if r["mode"] == "qat":
        mode, start, kept = f"QAT {r['lr']:g}", f"{r['val_start']:.4f}", r["kept_epoch"]
        epochs = " ".join(f"{v:.4f}" for v in r["val_epochs"])
    else:
        mode, start, kept, epochs = "PTQ", "-", "-", "-"
    return (f"| {r['family']} | {r['target']} | {r['bias_correction'] or '-'} | {mode} | "
            f"{start} | {epochs} | {kept} | {r['fp32']:.4f} | {r['int8']:.4f} | "
            f"{100 * (r['int8'] - r['fp32']):+.1f} | {r['kl_from_fp32']:.5f} |")


def _print_table(runs: list[dict[str, Any]], metrics: dict[str, float]) -> None:
    print("| family | target | bias correction | mode | val start | val per epoch | kept epoch "
          "| held-out fp32 | held-out int8 | int8 - fp32 (pp) | KL from fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(_row(r))
    for key, value in metrics.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    raise SystemExit(main())
