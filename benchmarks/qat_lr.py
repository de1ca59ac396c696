"""QAT learning rate: held-out accuracy of edgekit's int8 models after QAT at each rate.

The data are those of benchmarks/quantization.py: 4,000 mnist5k training digits, 10% of
them held out as the validation set that picks QAT's best epoch. The 3,600 digits left are
split again here: 2,880 train the fp32 model and QAT, and 720 are held out to score them.
The quantization benchmark's 1,000 test digits are not read, so a default rate chosen from
this table is not tuned on the figures that benchmark reports.

For each family, the fp32 model is trained as in that benchmark (6 epochs, Adam 3e-3 with a
cosine schedule, initial weights seeded 0). Then, for each target and rate,
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

FAMILIES = ("shufflenet_v2_x1_0", "mobilenet_v2", "shufflenet_v1", "mobilenet_v3_small",
            "mobilenet_v1")
TARGETS = ("tensorrt", "onnxruntime", "tflite")
FP32_LR = 3e-3  # benchmarks/quantization.py's default; QAT uses the smaller of it and the rate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated zoo names (default: %(default)s)")
    p.add_argument("--targets", default=",".join(TARGETS), help="default: %(default)s")
    p.add_argument("--lrs", default="1e-3,1e-4", help="QAT learning rates (default: %(default)s)")
    p.add_argument("--qat-epochs", type=int, default=2)
    args = p.parse_args(argv)
    lrs = [float(v) for v in args.lrs.split(",")]
    targets = args.targets.split(",")

    import torch
    from _provenance import run_info  # benchmarks/, on sys.path when run as a script

    info = run_info("qat_lr", argv, torch_threads=torch.get_num_threads())
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in args.families.split(","):
        runs += _family(name, targets, lrs, args.qat_epochs)
    metrics = _metrics(runs, lrs)
    _print_table(runs, metrics)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        from edgekit._io import atomic_write_json

        atomic_write_json(args.json, {**info, "runs": runs, "metrics": metrics})
    return 0


def _family(name: str, targets: list[str], lrs: list[float], qat_epochs: int
            ) -> list[dict[str, Any]]:
    import torch

    from edgekit.calibration import load_splits
    from edgekit.compress.qat import QuantConfig, quantize
    from edgekit.models import create_model, get_model_spec
    from edgekit.training import TrainConfig, evaluate, train

    size = get_model_spec(name).small_input_size
    train_all, _ = load_splits("mnist5k", input_size=size, channels=1)
    train_all, val_ds = train_all.subset(4000, seed=0).split(0.1, seed=0)
    train_ds, held_out = train_all.split(0.2, seed=5)
    torch.manual_seed(0)
    model = create_model(name, num_classes=train_ds.num_classes, in_channels=1, input_size=size)
    train(model, train_ds, TrainConfig(epochs=6, lr=FP32_LR, batch_size=64, progress=False),
          val_data=val_ds)
    model.eval()
    fp32 = evaluate(model, held_out)["accuracy"]
    runs = []
    for target in targets:
        for lr in lrs:
            t0 = time.perf_counter()
            qm = quantize(model, QuantConfig(target=target, epochs=qat_epochs,
                                             lr=min(lr, FP32_LR), calibration_size=256,
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
