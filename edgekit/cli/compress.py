"""`edgekit compress`: the one-command pipeline (flags map onto `edgekit.compress(...)`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress",
        help="train or load a model, int8 QAT for a target, export, verify, benchmark, report",
        description="Compress a model for a target device in one command: train it (or load "
        "--weights), quantize it with the target runtime's int8 scheme (QAT), export the file "
        "the target runs (TensorRT-ready ONNX + trtexec plan for Jetson, TFLite for ARM), run "
        "that file in its real runtime to prove it matches the trained model, benchmark it on "
        "this host, estimate it on the target, and write report.md + manifest.json. With no "
        "options it compresses the embedded default (MobileNetV2 on mnist5k) for a Jetson Orin "
        "Nano.",
    )
    p.add_argument("--target", default="jetson",
                   help="device profile or alias (see `edgekit devices`; default: jetson)")
    p.add_argument("--model", help="zoo model name (see `edgekit models`; default mobilenet_v2)")
    p.add_argument("--data", help="mnist5k (default), mnist5k_seg, an image folder or x.npy")
    p.add_argument("--weights", help="start from this checkpoint instead of training")
    p.add_argument("--recipe", help="TOML file with CompressRecipe keys (flags override it)")
    p.add_argument("--epochs", type=int, help="fp32 training epochs (default 5)")
    p.add_argument("--train-limit", type=int, help="train on the first N samples only")
    p.add_argument("--qat-epochs", type=int, help="QAT fine-tuning epochs; 0 = PTQ (default 2)")
    p.add_argument("--precision", choices=["int8", "fp32"], help="deployed precision (int8)")
    p.add_argument("--bench-runs", type=int, help="timed runs per file (default 200)")
    p.add_argument("--threads", dest="bench_threads", type=int, help="runtime threads (1)")
    p.add_argument("--power", dest="bench_power", help="power sampler for the benchmark: "
                   "auto (default), none, or a name as in `edgekit bench --power`")
    p.add_argument("--seed", type=int, help="seed for data order, init and inputs (0)")
    p.add_argument("--out", help="output directory (default: the first free "
                   "runs/compress-<profile>[-N], so no earlier run is replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekit.pipeline.run import compress

    result = compress(
        args.model, args.target, recipe=args.recipe, out=args.out, overwrite=args.overwrite,
        data=args.data, weights=args.weights, epochs=args.epochs, train_limit=args.train_limit,
        qat_epochs=args.qat_epochs, precision=args.precision, bench_runs=args.bench_runs,
        bench_threads=args.bench_threads, bench_power=args.bench_power, seed=args.seed,
    )
    print((result.out_dir / "report.md").read_text())
    return 0
