"""Model zoo: size at 224 px against the papers, and a short mnist5k training per family.

Part 1 (counting): parameters and MACs (torch FlopCounterMode, FLOPs / 2) of every
ImageNet-size variant at 224 px / 1000 classes next to the paper's figure and the relative
difference. Part 2 (training, skipped with ``--no-train``): the small-input variant of one
model per classification family (1 x 28 x 28, 10 classes, ``ModelSpec.small_defaults``)
trained for ``--epochs`` on the mnist5k train split (4,000 digits, or a stratified
``--train-limit`` subset) and evaluated on its 1,000 test digits, with batch-norm
statistics re-estimated on the training data first (the running-average figure too);
ESPNet and ESPNetv2 for ``--seg-epochs`` on the 64 px mnist5k_seg canvases (mIoU; ENet
class weights, ``TrainConfig.class_weights``'s default for segmentation). Nothing here is
asserted; figures are printed and written with ``--json PATH`` (flat ``metrics``).

    python benchmarks/zoo.py --json results/zoo.json [--epochs 2] [--seg-epochs 15]
        [--train-limit N]
"""

from __future__ import annotations

import argparse
import sys
import time

CLASSIFICATION = ["lenet300_100", "lenet5", "mobilenet_v1", "mobilenet_v2",
                  "mobilenet_v3_small", "shufflenet_v1", "shufflenet_v2_x0_5",
                  "squeezenet1_1", "espnet_cls", "espnetv2_cls"]
SEGMENTATION = ["espnet", "espnetv2"]
# Adam learning rates; 1e-3 unless listed. SqueezeNet has no batch norm: at 1e-3 its final
# ReLU died (10% accuracy) in a trial. The segmentation nets barely moved in 40 steps at
# 1e-3; at 1e-2 (class-weighted loss) they reach test mIoU ~0.6 (ESPNet) and ~0.4
# (ESPNetv2) in 15 epochs (benchmarks/quantization.py's split), ~0.2 in 6.
LR = {"squeezenet1_1": 3e-4, "espnet": 1e-2, "espnetv2": 1e-2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the results (flat metrics) to this path")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seg-epochs", type=int, default=15,
                        help="epochs of the segmentation nets (default: %(default)s)")
    parser.add_argument("--train-limit", type=int, help="train on a stratified subset")
    parser.add_argument("--no-train", action="store_true", help="counting part only")
    parser.add_argument("--no-count", action="store_true", help="training part only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", help="restrict the training part to these")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    if not args.no_count:
        count_sizes(metrics)
    if not args.no_train:
        train_small_variants(args, metrics)
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        from _provenance import run_info  # benchmarks/, on sys.path when run as a script

        from edgekit.core.io import atomic_write_json

        atomic_write_json(args.json, {
            **run_info("zoo", argv, torch_threads=args.threads),
            "epochs": args.epochs,
            "seg_epochs": args.seg_epochs,
            "train_limit": args.train_limit,
            "metrics": metrics,
        })
    return 0


def count_sizes(metrics: dict[str, float]) -> None:
    from edgekit.models import count_macs, count_params, create_model, get_model_spec, list_models

    print("## Sizes at 224 px, 1000 classes (MACs = FlopCounterMode FLOPs / 2)")
    header = ("model", "args", "params", "paper", "diff", "MACs", "paper", "diff")
    rows = [header]
    for name in list_models():
        spec = get_model_spec(name)
        if spec.input_size < 224:  # LeNet and the low-bit nets are MNIST-sized
            continue
        variants = [dict(spec.paper_args)] if not spec.paper_args else [{}, spec.paper_args]
        for extra in variants:
            key = name + "".join(f"_{k}{v}" for k, v in extra.items())
            model = create_model(name, **extra)
            params, macs = count_params(model), count_macs(model)
            metrics[f"{key}_params"] = params
            metrics[f"{key}_macs"] = macs
            paper = (spec.paper or {}) if extra == spec.paper_args else {}
            cells = [key, ",".join(f"{k}={v}" for k, v in extra.items()) or "-"]
            for value, field in ((params, "params"), (macs, "macs")):
                ref = paper.get(field)
                cells += [f"{value / 1e6:.3f}M", f"{ref / 1e6:.3f}M" if ref else "-"]
                if ref:
                    diff = value / ref - 1
                    metrics[f"{key}_{field}_paper"] = ref
                    metrics[f"{key}_{field}_rel_diff"] = round(diff, 4)
                    cells.append(f"{diff:+.1%}")
                else:
                    cells.append("-")
            rows.append(tuple(cells))
    _print(rows)


def train_small_variants(args: argparse.Namespace, metrics: dict[str, float]) -> None:
    import torch

    from edgekit.calibration import load_dataset
    from edgekit.models import count_macs, count_params, create_model, get_model_spec
    from edgekit.training import TrainConfig, evaluate, train

    data = {}
    for set_name in ("mnist5k", "mnist5k_seg"):
        tr = load_dataset(set_name, split="train")
        if args.train_limit:
            tr = tr.subset(args.train_limit)
        data[set_name] = (tr, load_dataset(set_name, split="test"))
    print(f"\n## mnist5k small variants, {args.epochs} epochs ({args.seg_epochs} for "
          f"segmentation), "
          f"{len(data['mnist5k'][0])} training digits / {len(data['mnist5k_seg'][0])} canvases")
    rows = [("model", "input", "variant args", "params", "MACs", "s/epoch", "test metric",
             "(running BN)")]
    for name in CLASSIFICATION + SEGMENTATION:
        if args.models and name not in args.models:
            continue
        set_name = "mnist5k_seg" if name in SEGMENTATION else "mnist5k"
        train_data, test_data = data[set_name]
        c, size, _ = train_data.input_shape
        torch.manual_seed(0)  # same initial weights whatever ran before
        model = create_model(name, num_classes=train_data.num_classes, in_channels=c,
                             input_size=size)
        extra = {k: v for k, v in model.edgekit_config.items()
                 if k in get_model_spec(name).variant_defaults}
        params, macs = count_params(model), count_macs(model)
        epochs = args.seg_epochs if name in SEGMENTATION else args.epochs
        cfg = TrainConfig(epochs=epochs, batch_size=64, lr=LR.get(name, 1e-3), seed=0,
                          progress=False)
        result = train(model, train_data, cfg)
        metric = "miou" if set_name == "mnist5k_seg" else "accuracy"
        running = evaluate(model, test_data)[metric]
        _recalibrate_bn(model, train_data)
        scores = evaluate(model, test_data)
        per_epoch = result.seconds / result.epochs_run
        metrics[f"{name}_small_params"] = params
        metrics[f"{name}_small_macs"] = macs
        metrics[f"{name}_{set_name}_{metric}"] = round(scores[metric], 4)
        metrics[f"{name}_{set_name}_{metric}_running_bn"] = round(running, 4)
        metrics[f"{name}_train_seconds_per_epoch"] = round(per_epoch, 1)
        rows.append((name, f"{c}x{size}x{size}", ",".join(f"{k}={v}" for k, v in extra.items())
                     or "-", f"{params / 1e6:.3f}M", f"{macs / 1e6:.2f}M", f"{per_epoch:.1f}",
                     f"{metric} {scores[metric]:.4f}", f"{running:.4f}"))
        print("  ".join(rows[-1]), flush=True)
    print()
    _print(rows)


def _recalibrate_bn(model, data, batch_size: int = 256) -> None:
    """Replace BN running statistics by exact averages over the training data.

    After only a few dozen steps the running averages (momentum 0.1) still mix statistics
    of earlier weights, and eval-mode outputs of the deeper nets collapse; the table shows
    the test metric with both.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            model(torch.from_numpy(data.x[start:start + batch_size]))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    model.eval()


def _print(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
