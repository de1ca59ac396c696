"""`edgekit prune`, `pack`, `unpack`, `inspect`: Deep Compression and the `.ekz` file;
`prune --prune channel:R` / `--sparsity 2:4` and `inspect FILE.onnx` (issue 24)."""

from __future__ import annotations

import argparse
import json
import sys

from edgekit.core.errors import EdgekitError, InvalidInputError
from edgekit.core.io import check_writable
from edgekit.pipeline.recipe import CompressRecipe

_RAW = argparse.RawDescriptionHelpFormatter
# prune fine-tunes as compress does (rate, epochs, distillation share): one measured setting
_COMPRESS = CompressRecipe()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prune", help="prune a checkpoint (unstructured, channels or 2:4) with retraining",
        formatter_class=_RAW,
        description="Unstructured (default): iterative magnitude pruning (threshold = quality x\n"
        "std per layer, or a global/local ratio via nncf.prune) with masks enforced while\n"
        "retraining; makes files smaller, not inference faster.\n"
        "--prune channel:R removes whole channels until R of the MACs are left (a\n"
        "thinner dense model: faster in every runtime), fine-tuned with distillation from\n"
        "the dense model. --sparsity 2:4 masks Conv/Gemm weights in TensorRT's 2:4 pattern\n"
        "(faster only in TensorRT on Ampere+/Orin GPUs). Both write DIR/pruned.safetensors\n"
        "and DIR/pruning.json. --sensitivity prunes one layer at a time without retraining.\n"
        "Scored on the data's test split, or, for a folder or .npz without one, on a\n"
        "held-out 20% (seeded as at training) that pruning never trains on.",
        epilog="examples:\n  edgekit prune runs/lenet --quality 2.5 --out runs/lenet-pruned\n"
        "  edgekit prune runs/lenet --sensitivity\n"
        "  edgekit prune runs/mnv2 --prune channel:0.5 --out runs/mnv2-c50\n"
        "  edgekit prune runs/mnv2-c50 --sparsity 2:4 --out runs/mnv2-c50-24")
    p.add_argument("checkpoint", help="checkpoint directory or .safetensors file")
    p.add_argument("--data", default="mnist5k", help="training/eval data (default: %(default)s)")
    p.add_argument("--mode", choices=("std", "global", "local"), default="std",
                   help="default: %(default)s")
    p.add_argument("--quality", type=float, default=2.0, help="std mode: threshold = quality x "
                   "std of the layer's weights (default: %(default)s)")
    p.add_argument("--ratio", type=float, default=0.9, help="global/local: fraction removed "
                   "(default: %(default)s)")
    p.add_argument("--steps", type=int, default=3, help="pruning rounds (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=_COMPRESS.prune_epochs,
                   help="retraining epochs per round (default, as compress: %(default)s)")
    p.add_argument("--lr", type=float, default=_COMPRESS.prune_lr,
                   help="fine-tuning rate (default, as compress: %(default)s)")
    p.add_argument("--sensitivity", action="store_true", help="only scan per-layer sensitivity")
    p.add_argument("--prune", metavar="channel:R", help="channel pruning keeping R of the "
                   "MACs (0 < R <= 1), spelled as in compress; --steps rounds of --epochs "
                   "fine-tuning epochs")
    p.add_argument("--structured", metavar="channel:R", help=argparse.SUPPRESS)  # old name
    p.add_argument("--sparsity", metavar="2:4", help="2:4 semi-structured sparsity for TensorRT "
                   "(after --prune when both are given); --epochs fine-tuning epochs")
    p.add_argument("--round-to", type=int, default=8, help="--prune: kept channel counts "
                   "are multiples of this (default: %(default)s)")
    p.add_argument("--importance", choices=("auto", "l2", "l1", "taylor", "bn_scale"),
                   default="auto", help="--prune: channel ranking; auto = taylor "
                   "(|weight x gradient| on labelled batches) when the data has labels, "
                   "else l2 (default: %(default)s)")
    p.add_argument("--scope", choices=("global", "local"), default="global",
                   help="--prune: rank channels across layers or per layer "
                   "(default: %(default)s)")
    p.add_argument("--distill", type=float, default=_COMPRESS.prune_distill,
                   help="--prune/--sparsity: share of the loss distilled from the dense model "
                   "(default, as compress: %(default)s)")
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

    i = subparsers.add_parser("inspect", help="per-layer table of an .ekz file, or 2:4 "
                              "conformance of an ONNX file",
                              description="FILE.ekz: per layer weights kept, bits per weight "
                              "before/after entropy coding, index bits, bytes, ratio (Deep "
                              "Compression Tables 2-5); --streams adds entropy and zstd/xz "
                              "comparisons. FILE.onnx: per Conv/Gemm/MatMul whether its weight "
                              "(int8 initializers of QDQ files included) holds TensorRT's 2:4 "
                              "pattern, and why not.")
    i.add_argument("file", help=".ekz or .onnx file")
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
    if args.structured:
        if args.prune:
            raise InvalidInputError("give --prune channel:R alone (--structured is its old name)")
        print("edgekit prune: --structured is deprecated; it is now --prune channel:R, as in "
              "compress", file=sys.stderr)
        args.prune = args.structured
    if args.prune or args.sparsity:
        return _run_structured(args)
    from edgekit.deep_compression.prune import PruneConfig, prune, sensitivity_scan
    from edgekit.training import TrainConfig, evaluate
    from edgekit.training.checkpoint import check_output_dir, load_checkpoint, save_checkpoint

    if not args.sensitivity and not args.out:
        raise InvalidInputError("--out is required unless --sensitivity is given")
    if args.out:
        check_output_dir(args.out)
    model, config = load_checkpoint(args.checkpoint)
    cfg = model.edgekit_config
    train_data, test = _splits(args.data, cfg, config)
    if args.sensitivity:
        scan = sensitivity_scan(model, test)
        for layer, rows in scan.items():
            print(layer)
            for r in rows:
                print(f"  quality {r['quality']:4.2f}  kept {r['kept']:6.1%}  "
                      f"accuracy {r['accuracy']:.4f}")
        _write_json(args.json, scan)
        return 0
    config = PruneConfig(mode=args.mode, quality=args.quality, ratio=args.ratio,
                         steps=args.steps, retrain_epochs=args.epochs)
    import torch

    size = int(cfg.get("input_size", 28))
    example = torch.zeros(1, int(cfg.get("in_channels", 1)), size, size)
    result = prune(model, train_data, config, train_config=TrainConfig(lr=args.lr,
                   progress=False), example_input=example, log=print)
    metrics = {"accuracy": evaluate(model, test)["accuracy"], "density": result.density,
               "scored_on": _scored_on(test, train_data)}
    save_checkpoint(model, args.out, metrics=metrics, extra={"pruning": vars(config)})
    print(f"accuracy {metrics['accuracy']:.4f}; wrote {args.out}")
    _write_json(args.json, metrics)
    return 0


PRUNED_FILE = "pruned.safetensors"


def _scored_on(test, train) -> dict:
    return {"data": test.name, "samples": len(test), "train_samples": len(train)}


def _splits(data: str, model_cfg: dict, checkpoint: dict | None):
    """(train, test): the data's own test split, or for a folder or .npz without one a
    stratified held-out 20%, seeded as ``edgekit train`` seeded it (so the part it trained
    on is not scored); pruning fine-tunes on the train part only."""
    from edgekit.calibration import load_splits

    extra = (checkpoint or {}).get("extra") or {}
    return load_splits(data, input_size=model_cfg.get("input_size"),
                       channels=model_cfg.get("in_channels"), seed=int(extra.get("seed", 0)))


def _run_structured(args: argparse.Namespace) -> int:
    """--prune channel:R and/or --sparsity 2:4 on a zoo checkpoint or a pruned folder."""
    from edgekit.pruning import ChannelPruneConfig, SparsityConfig

    if args.sensitivity:
        raise InvalidInputError("--sensitivity scans unstructured pruning; drop --prune/"
                                "--sparsity")
    if not args.out:
        raise InvalidInputError("--out is required with --prune/--sparsity")
    if args.epochs < 0 or args.steps < 1:
        raise InvalidInputError("need --epochs >= 0 and --steps >= 1")
    channel = ChannelPruneConfig.parse(
        args.prune, round_to=args.round_to, importance=args.importance, scope=args.scope,
        steps=args.steps, epochs_per_step=args.epochs, distill=args.distill) \
        if args.prune else None
    sparsity = SparsityConfig.parse(args.sparsity) if args.sparsity else None
    import copy

    from edgekit.pruning import prune_and_finetune, save_pruned, sparse_finetune
    from edgekit.training import TrainConfig, evaluate

    model, checkpoint = _load_prunable(args.checkpoint)
    train_data, test = _splits(args.data, model.edgekit_config, checkpoint)
    metric = "accuracy" if test.task == "classification" else "miou"
    report: dict = {"scored_on": _scored_on(test, train_data),
                    "dense": {metric: evaluate(model, test)[metric]}}
    dense = copy.deepcopy(model).eval()
    train_cfg = TrainConfig(epochs=max(1, args.epochs), lr=args.lr, progress=False)
    if channel is not None:
        result = prune_and_finetune(model, train_data, channel, train_config=train_cfg,
                                    teacher=dense)
        print(result.summary())
        report["channel"] = result.to_dict()
    if sparsity is not None:
        sparse = sparse_finetune(model, train_data, sparsity, teacher=dense,
                                 distill=args.distill, train_config=train_cfg) \
            if args.epochs > 0 else _sparsify_only(model, sparsity)
        print(f"2:4: {len(sparse.masks)} layers sparse, {len(sparse.dense)} dense; "
              f"{sparse.sparse_mac_share:.1%} of Conv/Gemm MACs in 2:4 layers")
        report["sparsity"] = sparse.to_dict()
    report["pruned"] = {metric: evaluate(model, test)[metric]}
    from edgekit.core.io import atomic_write_json

    out = save_pruned(model, _out_dir(args.out) / PRUNED_FILE, metrics=report["pruned"])
    atomic_write_json(out.parent / "pruning.json", report)
    print(f"{metric} {report['dense'][metric]:.4f} dense -> {report['pruned'][metric]:.4f}; "
          f"wrote {out}")
    _write_json(args.json, report)
    return 0


def _sparsify_only(model, config):
    from edgekit.pruning import sparsify_24

    return sparsify_24(model, config)


def _out_dir(path: str):
    from pathlib import Path

    out = Path(path)
    if out.is_dir() and any(out.iterdir()) and not (out / "pruning.json").is_file():
        raise InvalidInputError(f"{out}: directory is not empty and holds no pruned model; "
                                "refusing to write into it")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _load_prunable(path: str):
    """(model, checkpoint config or None): a zoo checkpoint, or what ``prune --prune``
    wrote."""
    from pathlib import Path

    from edgekit.pruning import load_pruned
    from edgekit.training.checkpoint import load_checkpoint

    source = Path(path)
    pruned = source / PRUNED_FILE if source.is_dir() else source
    if pruned.is_file() and pruned.suffix == ".safetensors":
        from edgekit.pruning import read_pruned_header

        try:
            read_pruned_header(pruned)
        except EdgekitError:
            pass
        else:
            return load_pruned(pruned), None
    return load_checkpoint(path)


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
    if str(args.file).lower().endswith(".onnx"):
        from edgekit.pruning.check24 import check_24_onnx, format_conformance, pattern_ok

        if args.streams:
            raise InvalidInputError("--streams is for .ekz files")
        rows = check_24_onnx(args.file)
        print(f"{args.file}: 2:4 sparsity (TensorRT's pattern) per Conv/Gemm/MatMul")
        print(format_conformance(rows))
        _write_json(args.json, {"layers": [r.to_dict() for r in rows],
                                "pattern_ok": pattern_ok(rows)})
        return 0
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
