"""QAT learning rate: held-out accuracy of edgekit's int8 models after QAT at each rate.

The data are those of benchmarks/quantization.py: 4,000 mnist5k training digits, 10% of
them held out as the validation set that picks QAT's best epoch. The 3,600 digits left are
split again here: 2,880 train the fp32 model and QAT, and 720 are held out to score them.
The quantization benchmark's 1,000 test digits are not read, so a default rate chosen from
this table is not tuned on the figures that benchmark reports.

For each family, the fp32 model is trained as in that benchmark (its ``train_fp32``: 6
epochs, Adam with a cosine schedule at the benchmark's rate for the family, initial weights
seeded 0). Classification families only: the table scores accuracy. Then, for each target and rate,
``edgekit.compress.qat.quantize`` runs with 2 QAT epochs and the validation set. The
calibrated start is a candidate for the best epoch. Each run records the validation
accuracy of the start and of each epoch, the epoch kept, and the held-out accuracy of the
returned model.

    python benchmarks/qat_lr.py --json results/qat_lr.json [--families ...] [--lrs 1e-3,1e-4]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from quantization import FAMILY_LR  # benchmarks/, on sys.path when run as a script

FAMILIES = ("shufflenet_v2_x1_0", "mobilenet_v2", "shufflenet_v1", "mobilenet_v3_small",
            "mobilenet_v1")
TARGETS = ("tensorrt", "onnxruntime", "tflite")
FP32_LR = 3e-3  # benchmarks/quantization.py's --lr default (FAMILY_LR where it differs)
FP32_EPOCHS = 6  # and its --epochs default


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated classification zoo names (default: %(default)s)")
    p.add_argument("--targets", default=",".join(TARGETS), help="default: %(default)s")
    p.add_argument("--lrs", default="1e-3,1e-4", type=_rates,
                   help="comma-separated QAT learning rates (default: %(default)s)")
    p.add_argument("--qat-epochs", type=int, default=2)
    args = p.parse_args(argv)
    lrs, targets, names = args.lrs, args.targets.split(","), args.families.split(",")

    import torch
    from _provenance import run_info

    from edgekit.compress.quant_scheme import SCHEMES
    from edgekit.errors import EdgekitError
    from edgekit.models import get_model_spec

    try:
        for name in names:
            if get_model_spec(name).task != "classification":
                p.error(f"{name} is a {get_model_spec(name).task} model; this table scores "
                        "accuracy (benchmarks/quantization.py covers the segmentation nets)")
    except EdgekitError as exc:  # an unknown zoo name
        p.error(str(exc))
    if unknown := [t for t in targets if t not in SCHEMES]:
        p.error(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(SCHEMES)}")

    info = run_info("qat_lr", argv, torch_threads=torch.get_num_threads())
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in names:
        runs += _family(name, targets, lrs, args.qat_epochs)
    metrics = _metrics(runs, lrs)
    _print_table(runs, metrics)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        from edgekit._io import atomic_write_json

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


def _family(name: str, targets: list[str], lrs: list[float], qat_epochs: int
            ) -> list[dict[str, Any]]:
    from quantization import data_splits, train_fp32

    from edgekit.compress.qat import QuantConfig, quantize
    from edgekit.training import evaluate

    train_all, val_ds, _ = data_splits(name)  # the test set is never scored here
    train_ds, held_out = train_all.split(0.2, seed=5)
    fp32_lr = FAMILY_LR.get(name, FP32_LR)
    model, _ = train_fp32(name, train_ds, val_ds, epochs=FP32_EPOCHS, lr=fp32_lr)
    fp32 = evaluate(model, held_out)["accuracy"]
    runs = []
    for target in targets:
        for lr in lrs:
            t0 = time.perf_counter()
            qm = quantize(model, QuantConfig(target=target, epochs=qat_epochs,
                                             lr=min(lr, fp32_lr), calibration_size=256,
                                             batch_size=64),
                          train_data=train_ds, val_data=val_ds)
            fit = qm.history
            runs.append({"family": name, "target": target, "lr": lr, "fp32": fp32,
                         "int8": evaluate(qm.model, held_out)["accuracy"],
                         "val_start": fit.start_metric,
                         "val_epochs": [h["val_accuracy"] for h in fit.history],
                         "kept_epoch": fit.best_epoch,
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(_row(runs[-1]), file=sys.stderr, flush=True)  # progress
    return runs


def _metrics(runs: list[dict[str, Any]], lrs: list[float]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for lr in lrs:
        mine = [r for r in runs if r["lr"] == lr]
        if not mine:
            continue
        tag = f"lr{lr:.0e}"
        drop = [100 * (r["int8"] - r["fp32"]) for r in mine]
        dip = [100 * (r["val_epochs"][0] - r["val_start"]) for r in mine]
        metrics[f"int8_minus_fp32_pp_mean_{tag}"] = round(sum(drop) / len(drop), 3)
        metrics[f"int8_minus_fp32_pp_min_{tag}"] = round(min(drop), 2)
        metrics[f"val_epoch1_minus_start_pp_mean_{tag}"] = round(sum(dip) / len(dip), 3)
        metrics[f"kept_start_runs_{tag}"] = sum(r["kept_epoch"] == 0 for r in mine)
        metrics[f"runs_{tag}"] = len(mine)
    return metrics


def _row(r: dict[str, Any]) -> str:
    epochs = " ".join(f"{v:.4f}" for v in r["val_epochs"])
    return (f"| {r['family']} | {r['target']} | {r['lr']:g} | {r['val_start']:.4f} | {epochs} | "
            f"{r['kept_epoch']} | {r['fp32']:.4f} | {r['int8']:.4f} | "
            f"{100 * (r['int8'] - r['fp32']):+.1f} |")


def _print_table(runs: list[dict[str, Any]], metrics: dict[str, float]) -> None:
    print("| family | target | QAT lr | val start | val per epoch | kept epoch | held-out fp32 "
          "| held-out int8 | int8 - fp32 (pp) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in runs:
        print(_row(r))
    for key, value in metrics.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    raise SystemExit(main())
