"""`edgekit prune`, `pack`, `unpack`, `inspect`: Deep Compression and the `.ekz` file."""

from __future__ import annotations

import argparse
import json

from edgekit.core.errors import InvalidInputError
from edgekit.core.io import check_writable

_RAW = argparse.RawDescriptionHelpFormatter


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prune", help="magnitude-prune a checkpoint with retraining, or scan sensitivity",
        formatter_class=_RAW,
        description="Iterative magnitude pruning (threshold = quality x std per layer, or a\n"
        "global/local ratio via nncf.prune) with masks enforced while retraining.\n"
        "--sensitivity prunes one layer at a time without retraining and prints accuracy.",
        epilog="examples:\n  edgekit prune runs/lenet --quality 2.5 --out runs/lenet-pruned\n"
        "  edgekit prune runs/lenet --sensitivity")
    p.add_argument("checkpoint", help="checkpoint directory or .safetensors file")
    p.add_argument("--data", default="mnist5k", help="training/eval data (default: %(default)s)")
    p.add_argument("--mode", choices=("std", "global", "local"), default="std",
                   help="default: %(default)s")
    p.add_argument("--quality", type=float, default=2.0, help="std mode: threshold = quality x "
                   "std of the layer's weights (default: %(default)s)")
    p.add_argument("--ratio", type=float, default=0.9, help="global/local: fraction removed "
                   "(default: %(default)s)")
    p.add_argument("--steps", type=int, default=3, help="pruning rounds (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=2, help="retraining epochs per round "
                   "(default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="default: %(default)s")
    p.add_argument("--sensitivity", action="store_true", help="only scan per-layer sensitivity")
    p.add_argument("--out", help="checkpoint directory to write (required unless --sensitivity)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    p.set_defaults(func=run_prune)

    k = subparsers.add_parser(
        "pack", help="weight-share a (pruned) checkpoint and write a compressed .ekz file",
        formatter_class=_RAW,
        description="Cluster each Conv/Linear weight tensor with 1-D k-means (zeros stay zero),\n"
        "optionally fine-tune the centroids, then store the relative-index sparse form,\n"
        "codebooks and Huffman (or rANS) coded streams in an .ekz file (docs/ekz-format.md).",
        epilog="example:\n  edgekit pack runs/lenet-pruned --finetune-epochs 2 --out lenet.ekz")
    k.add_argument("checkpoint", help="checkpoint directory or .safetensors file")
    k.add_argument("--out", required=True, help=".ekz file to write")
    k.add_argument("--conv-bits", type=int, default=8, help="default: %(default)s")
    k.add_argument("--fc-bits", type=int, default=5, help="default: %(default)s")
    k.add_argument("--init", choices=("linear", "density", "forgy"), default="linear",
                   help="k-means initialisation (default: %(default)s)")
    k.add_argument("--codec", choices=("huffman", "rans", "auto"), default="huffman",
                   help="entropy coder; auto keeps the smaller per tensor (default: %(default)s)")
    k.add_argument("--small-dtype", choices=("f4", "f2"), default="f4",
                   help="storage of biases and other small tensors (default: %(default)s)")
    k.add_argument("--finetune-epochs", type=int, default=0, help="centroid fine-tuning on "
                   "--data (default: %(default)s)")
    k.add_argument("--data", default="mnist5k", help="fine-tuning data (default: %(default)s)")
    k.add_argument("--lr", type=float, default=2e-4, help="default: %(default)s")
    k.set_defaults(func=run_pack)

    u = subparsers.add_parser(
        "unpack", help="decode an .ekz file into ONNX, safetensors or a checkpoint",
        formatter_class=_RAW,
        description="Rebuild the architecture from the config stored in the file, load the\n"
        "decoded weights and write a runnable ONNX (opset 17), a float .tflite, a\n"
        ".safetensors file, or an edgekit checkpoint directory.",
        epilog="example:\n  edgekit unpack lenet.ekz --to onnx --out lenet.onnx")
    u.add_argument("file", help=".ekz file")
    u.add_argument("--to", choices=("onnx", "tflite", "safetensors", "checkpoint"),
                   required=True)
    u.add_argument("--out", required=True, help="output path")
    u.set_defaults(func=run_unpack)

    i = subparsers.add_parser("inspect", help="print the per-layer table of an .ekz file",
                              description="Per layer: weights kept, bits per weight before/after "
                              "entropy coding, index bits, bytes, ratio (Deep Compression "
                              "Tables 2-5); --streams adds entropy and zstd/xz comparisons.")
    i.add_argument("file", help=".ekz file")
    i.add_argument("--streams", action="store_true", help="also compare coded streams with "
                   "their entropy, zstd -19 and xz -9")
    i.add_argument("--json", metavar="PATH", help="also write the table as JSON")
    i.set_defaults(func=run_inspect)


def _write_json(path: str | None, obj: object) -> None:
    if path:
        from edgekit.core.io import atomic_write_json

        atomic_write_json(path, obj)


def run_prune(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="dir")  # outputs first: pruning retrains for minutes
    check_writable(args.json)
    from edgekit.calibration import load_dataset
    from edgekit.deep_compression.prune import PruneConfig, prune, sensitivity_scan
    from edgekit.training import TrainConfig, evaluate
    from edgekit.training.checkpoint import check_output_dir, load_checkpoint, save_checkpoint

    if not args.sensitivity and not args.out:
        raise InvalidInputError("--out is required unless --sensitivity is given")
    if args.out:
        check_output_dir(args.out)
    model, _ = load_checkpoint(args.checkpoint)
    cfg = model.edgekit_config
    kw = {"input_size": cfg.get("input_size"), "channels": cfg.get("in_channels")}
    test = load_dataset(args.data, split="test", **kw)
    if args.sensitivity:
        scan = sensitivity_scan(model, test)
        for layer, rows in scan.items():
            print(layer)
            for r in rows:
                print(f"  quality {r['quality']:4.2f}  kept {r['kept']:6.1%}  "
                      f"accuracy {r['accuracy']:.4f}")
        _write_json(args.json, scan)
        return 0
    train_data = load_dataset(args.data, split="train", **kw)
    config = PruneConfig(mode=args.mode, quality=args.quality, ratio=args.ratio,
                         steps=args.steps, retrain_epochs=args.epochs)
    import torch

    size = int(cfg.get("input_size", 28))
    example = torch.zeros(1, int(cfg.get("in_channels", 1)), size, size)
    result = prune(model, train_data, config, train_config=TrainConfig(lr=args.lr,
                   progress=False), example_input=example, log=print)
    metrics = {"accuracy": evaluate(model, test)["accuracy"], "density": result.density}
    save_checkpoint(model, args.out, metrics=metrics, extra={"pruning": vars(config)})
    print(f"accuracy {metrics['accuracy']:.4f}; wrote {args.out}")
    _write_json(args.json, metrics)
    return 0


def run_pack(args: argparse.Namespace) -> int:
    check_writable(args.out)
    from edgekit.deep_compression.ekz import load_ekz
    from edgekit.deep_compression.ekz.pack import pack_model
    from edgekit.deep_compression.ekz.report import format_table
    from edgekit.deep_compression.share import ShareConfig, finetune_shared, share_weights
    from edgekit.training.checkpoint import load_checkpoint

    config = ShareConfig(conv_bits=args.conv_bits, fc_bits=args.fc_bits, init=args.init)
    model, _ = load_checkpoint(args.checkpoint)
    shared = share_weights(model, config)
    if args.finetune_epochs:
        from edgekit.calibration import load_dataset
        from edgekit.training import TrainConfig

        cfg = model.edgekit_config
        data = load_dataset(args.data, split="train", input_size=cfg.get("input_size"),
                            channels=cfg.get("in_channels"))
        shared = finetune_shared(model, shared, data, epochs=args.finetune_epochs,
                                 train_config=TrainConfig(lr=args.lr, progress=False))
    path = pack_model(model, args.out, shared=shared, codec=args.codec,
                      small_dtype=args.small_dtype)
    print(format_table(load_ekz(path)))
    return 0


def run_unpack(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="dir" if args.to == "checkpoint" else "file")
    from edgekit.deep_compression.ekz import load_ekz
    from edgekit.export.ekz import ekz_model, ekz_to_onnx, ekz_to_safetensors

    ekz = load_ekz(args.file)
    if args.to == "onnx":
        ekz_to_onnx(ekz, args.out)
    elif args.to == "tflite":
        from edgekit.export.ekz import ekz_to_tflite

        ekz_to_tflite(ekz, args.out)
    elif args.to == "safetensors":
        ekz_to_safetensors(ekz, args.out)
    else:
        from edgekit.training.checkpoint import save_checkpoint

        save_checkpoint(ekz_model(ekz), args.out, extra={"unpacked_from": str(args.file)})
    print(f"wrote {args.out}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    check_writable(args.json)
    from edgekit.deep_compression.ekz import load_ekz
    from edgekit.deep_compression.ekz.report import (
        file_summary,
        format_table,
        layer_table,
        stream_stats,
    )

    ekz = load_ekz(args.file)
    print(f"{args.file}: model {json.dumps(ekz.model_config)}")
    print(format_table(ekz))
    report = {"layers": layer_table(ekz), "summary": file_summary(ekz)}
    if args.streams:
        stats = stream_stats(ekz)
        report["streams"] = stats
        print(f"streams: coded {stats['coded_bytes']:.0f} B + tables {stats['table_bytes']:.0f} B"
              f"; coded/entropy {stats['bits_over_entropy']:.4f}; zstd-19 "
              f"{stats['zstd19_bytes']:.0f} B; xz-9 {stats['xz9_bytes']:.0f} B")
    _write_json(args.json, report)
    return 0
