"""`edgekit compress`: the one-command pipeline (flags map onto `edgekit.compress(...)`)."""

from __future__ import annotations

import argparse
import json

from edgekit.cli.launch import add_nproc_argument, launch, wants_launch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compress",
        help="train or load a model, int8 QAT for a target, export, verify, benchmark, report",
        description="Compress a model for a target device in one command: train it (or load "
        "--weights), quantize it with the target runtime's int8 scheme (QAT), export the file "
        "the target runs (TensorRT-ready ONNX + trtexec plan for Jetson, TFLite for ARM), run "
        "that file in its real runtime to prove it matches the trained model, benchmark it on "
        "this host, estimate it on the target, and write report.md + manifest.json. --prune "
        "and --sparsity add structured pruning before QAT. With no "
        "options it compresses the embedded default (MobileNetV2 on mnist5k) for a Jetson Orin "
        "Nano.",
    )
    p.add_argument("--target", default="jetson",
                   help="device profile or alias (see `edgekit devices`; default: jetson)")
    p.add_argument("--model", help="a zoo name (see `edgekit models`; default mobilenet_v2), or "
                   "your own model as path/to/file.py:factory or package.module:factory, a "
                   "callable returning a torch.nn.Module. NOTE: this imports and runs that "
                   "code, as python would")
    p.add_argument("--model-args", type=_json_object, metavar="JSON",
                   help='keyword arguments for the model or factory, e.g. \'{"num_classes": 7}\'')
    p.add_argument("--output-key", help="for a model whose forward returns a tuple or a dict:"
                   " the classification output to deploy (a tuple index or a dict key; "
                   "default: the first element, or the key 'logits' or 'out')")
    p.add_argument("--data", help="mnist5k (default), mnist5k_seg, an image folder "
                   "(root/<class>/<image>, or root/train + root/test), x.npy (+ y.npy) or .npz; "
                   "read lazily, batch by batch")
    p.add_argument("--weights", help="start from these weights instead of training: an edgekit "
                   "checkpoint, a .safetensors file or a PyTorch state dict (.pt/.pth, loaded "
                   "with torch.load(weights_only=True), never unpickled otherwise)")
    pre = p.add_argument_group("preprocessing (applied alike in training, calibration, QAT and "
                               "verification; recorded in the manifest and the deployed files)")
    pre.add_argument("--preprocess", metavar="PRESET", help="preprocessing in one word: "
                     "imagenet = 224 px centre crop of a 256 px resize, RGB, ImageNet's mean "
                     "and std; the flags below override its parts")
    pre.add_argument("--input-size", type=int, help="square input side in pixels (needed when "
                     "the images differ in size)")
    pre.add_argument("--resize", choices=["centre-crop", "letterbox"],
                     help="how an image becomes square: centre crop (default) or letterbox")
    pre.add_argument("--crop-fraction", type=float, help="centre crop: the square's side as a "
                     "share of the short side (default 1; imagenet's 0.875 = 224/256)")
    pre.add_argument("--mean", type=_floats, help="per-channel mean subtracted after scaling "
                     "to [0, 1], e.g. 0.485,0.456,0.406")
    pre.add_argument("--std", type=_floats, help="per-channel std divided by, e.g. "
                     "0.229,0.224,0.225")
    pre.add_argument("--channel-order", choices=["RGB", "BGR"], help="RGB (default) or BGR")
    p.add_argument("--recipe", help="TOML file with CompressRecipe keys (flags override it)")
    p.add_argument("--epochs", type=int, help="fp32 training epochs (default 5; 0 when "
                   "--weights is given: QAT still fine-tunes on --data)")
    p.add_argument("--train-limit", type=int, help="train on the first N samples only")
    p.add_argument("--qat-epochs", type=int, help="QAT fine-tuning epochs; 0 = PTQ (default 2)")
    p.add_argument("--precision", choices=["int8", "fp16", "fp32"],
                   help="deployed precision (default: the best the target runs: int8, else "
                   "fp16 on TensorRT, else fp32); fp16 is a TensorRT engine built from the "
                   "float ONNX, without QAT")
    plan = p.add_argument_group("precision plan (int8 on TensorRT and onnxruntime targets)")
    plan.add_argument("--max-drop", type=float, metavar="PP", help="the most the int8 model "
                      "may lose on the validation split, in percentage points of the task's "
                      "metric: layers timed slower in int8 than float stay float, then the "
                      "most harmful layers per MAC revert to float until the drop is within "
                      "PP (e.g. 0.5)")
    plan.add_argument("--keep-float", type=_names, metavar="LAYER,...", help="module paths "
                      "whose weights stay float (a plan by hand), e.g. features.1,classifier.3")
    prune = p.add_argument_group("structured pruning (after fp32 training, before QAT; "
                                 "fine-tuned with distillation from the dense model)")
    prune.add_argument("--prune", metavar="channel:R", help="remove whole channels until a "
                       "share R of the MACs is left (channel:0.5 keeps half): a thinner dense "
                       "model, faster in every runtime")
    prune.add_argument("--sparsity", metavar="2:4", help="2:4 semi-structured weights, kept "
                       "through int8 QAT; only for targets whose TensorRT runs them faster "
                       "(Jetson Orin, Ampere and newer GPUs)")
    prune.add_argument("--prune-epochs", type=int, help="fine-tuning epochs after each of "
                       "them (default 2)")
    p.add_argument("--bench-runs", type=int, help="timed runs per file (default 200)")
    p.add_argument("--threads", type=int, help="threads for training, QAT and the benchmark's "
                   "runtime (default: training uses the CPUs this process may use, the "
                   "benchmark 1)")
    p.add_argument("--power", dest="bench_power", help="power sampler for the benchmark: "
                   "auto (default), none, or a name as in `edgekit bench --power`")
    p.add_argument("--seed", type=int, help="seed for data order, init and inputs (0)")
    p.add_argument("--out", help="output directory (default: the first free "
                   "runs/compress-<profile>[-N], so no earlier run is replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out (or "
                   "start an unfinished run again)")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run of "
                   "--out (default: the first unfinished runs/compress-<profile>[-N]): "
                   "finished fp32 training and QAT epochs whose inputs did not change are "
                   "reused, the rest runs again")
    add_nproc_argument(p)
    p.add_argument("--verbose", action="store_true", help="also show what other libraries "
                   "print (torch, nncf, torchao and converter warnings and logs); by default "
                   "it goes to third_party.log in the run folder")
    p.set_defaults(func=run)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"num_classes\": 7}'")
    return value


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated module paths, got {text!r}")
    return names


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from None


def run(args: argparse.Namespace) -> int:
    if wants_launch(args):
        return launch(args)
    from edgekit.pipeline.run import compress

    flags = dict(
        weights=args.weights, model_args=args.model_args, output_key=args.output_key,
        preprocess=args.preprocess, input_size=args.input_size, resize=args.resize,
        crop_fraction=args.crop_fraction, mean=args.mean, std=args.std,
        channel_order=args.channel_order, epochs=args.epochs, train_limit=args.train_limit,
        qat_epochs=args.qat_epochs, precision=args.precision, bench_runs=args.bench_runs,
        threads=args.threads, bench_threads=args.threads, bench_power=args.bench_power,
        seed=args.seed, prune=args.prune, sparsity=args.sparsity,
        prune_epochs=args.prune_epochs, sync_batchnorm=args.sync_batchnorm,
        max_drop=args.max_drop, keep_float=args.keep_float,
    )
    # a flag not given is None: it leaves the recipe's value (None there would clear it)
    result = compress(
        args.model, args.target, recipe=args.recipe, out=args.out, overwrite=args.overwrite,
        data=args.data, third_party_log=not args.verbose, resume=args.resume,
        **{k: v for k, v in flags.items() if v is not None},
    )
    if result is not None:  # None: a torchrun rank other than 0
        print((result.out_dir / "report.md").read_text())
    return 0
