"""`edgekit check | quantize | export`: pre-flight, int8 QAT and export (verified on the way)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.core.io import check_writable

TARGET_FORMAT = {"tensorrt": "engine", "onnxruntime": "onnx", "tflite": "tflite"}


def runtime_target(name: str) -> str:
    """A runtime name, or a device profile or alias (jetson, rpi, ...) naming its runtime."""
    if name in TARGET_FORMAT:
        return name
    from edgekit.devices.profiles import get_profile

    return get_profile(name).runtime


def int8_target(name: str) -> str:
    """``runtime_target`` for int8 work: a device whose profile has no int8 is refused."""
    if name not in TARGET_FORMAT:
        from edgekit.devices.profiles import get_profile

        profile = get_profile(name)
        if "int8" not in profile.precisions:
            raise InvalidInputError(
                f"{profile.name} has no int8 ({', '.join(profile.precisions)} only): int8 "
                "files cannot run there")
    return runtime_target(name)


def register(subparsers: argparse._SubParsersAction) -> None:
    from edgekit.quantization.types import DEFAULT_DISTILL
    from edgekit.runtime.parity import PARITY_THRESHOLD

    c = subparsers.add_parser(
        "check", help="list the ops a target runs in float or cannot run (before training)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edgekit check --target tensorrt mobilenet_v3_small --input-size 224"
        "\n  edgekit check --target tflite model.onnx"
        "\n  edgekit check --target tensorrt model_int8.onnx   # also: 2:4 conformance per layer")
    c.add_argument("model", help="registered model name (e.g. mobilenet_v2), an .onnx file, "
                   "or your factory as path/to/file.py:factory (this imports and runs it)")
    c.add_argument("--model-args", type=json.loads, default={}, metavar="JSON",
                   help="keyword arguments for the factory")
    c.add_argument("--target", required=True,
                   help="tensorrt, onnxruntime, tflite, or a device (jetson, rpi, ...: "
                   "`edgekit devices`), which names its runtime")
    c.add_argument("--input-size", type=int, help="square input side (default: the model's)")
    c.add_argument("--in-channels", type=int, help="default: the model's")
    c.add_argument("--num-classes", type=int, help="default: the model's")
    c.add_argument("--all", action="store_true", help="also list the ops that run in int8")
    c.add_argument("--json", metavar="PATH", help="also write the findings as JSON")
    c.set_defaults(func=run_check)

    q = subparsers.add_parser(
        "quantize", help="int8 QAT (or PTQ) for a target, export, and verify the file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Quantize a trained checkpoint with the target's int8 scheme (nncf),\n"
        "fine-tune it (QAT), write the deployable file and verify it in its real runtime against\n"
        "the trained fake-quant model. tensorrt: QDQ ONNX + trtexec line + build config;\n"
        "onnxruntime: QDQ ONNX with uint8 activations and 7-bit weights, which onnxruntime's\n"
        "fused CPU kernels run exactly (verified with them); tflite: full-integer .tflite.",
        epilog="example:\n  edgekit quantize runs/lenet --target tensorrt --out runs/lenet.onnx")
    q.add_argument("checkpoint", help="checkpoint directory or .safetensors (edgekit train)")
    q.add_argument("--target", required=True,
                   help="tensorrt, onnxruntime, tflite, or a device with int8 (jetson, rpi, "
                   "...), which names its runtime")
    q.add_argument("--out", required=True, help="file to write (.onnx / .tflite / .engine)")
    q.add_argument("--mode", choices=("qat", "ptq"), default="qat", help="default: %(default)s")
    q.add_argument("--epochs", type=int, default=2, help="QAT epochs (default: %(default)s)")
    q.add_argument("--lr", type=float, default=1e-4, help="default: %(default)s")
    q.add_argument("--distill", type=float, default=DEFAULT_DISTILL, metavar="W",
                   help="share of the QAT loss that is distillation from the fp32 checkpoint; "
                   "0 trains on the labels alone (default: %(default)s)")
    q.add_argument("--calibration-size", type=int, default=300, help="default: %(default)s")
    q.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    q.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    q.add_argument("--threshold", type=float, default=PARITY_THRESHOLD,
                   help="minimum top-1 agreement of the deployed file with the trained model "
                   "(default: %(default)s)")
    _data_args(q)
    q.set_defaults(func=run_quantize)

    e = subparsers.add_parser("export", help="export a float checkpoint (onnx, tflite, engine; "
                              "lce: a binary net with Larq Compute Engine's 1-bit ops)")
    e.add_argument("checkpoint", help="checkpoint directory or .safetensors")
    e.add_argument("--format", required=True, choices=("onnx", "tflite", "engine", "lce"))
    e.add_argument("--out", required=True, help="file to write")
    e.add_argument("--opset", type=int, help="ONNX opset (13-21, default 17)")
    _data_args(e)
    e.set_defaults(func=run_export)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="data set (default: the one the checkpoint was trained on)")
    p.add_argument("--limit", type=int, metavar="N", help="verify on a stratified N-sample "
                   "subset of the test split")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")


def run_check(args: argparse.Namespace) -> int:
    args.target = runtime_target(args.target)
    check_writable(args.json)
    from edgekit.export.check import check_model

    if args.model.endswith(".onnx"):
        model, shape = args.model, None
    elif ":" in args.model:  # the user's factory, as `edgekit compress --model` takes it
        from edgekit.models.user import build_user_model

        if not args.input_size:
            raise InvalidInputError("--input-size is needed for a model outside the zoo")
        model = build_user_model(args.model, args.model_args).eval()
        shape = (args.in_channels or 3, args.input_size, args.input_size)
    else:
        from edgekit.models import create_model, get_model_spec

        spec = get_model_spec(args.model)
        size = args.input_size or spec.input_size
        channels = args.in_channels or spec.in_channels
        model = create_model(args.model, num_classes=args.num_classes, in_channels=channels,
                             input_size=size).eval()
        shape = (channels, size, size)
    findings = check_model(model, args.target, shape, include_int8=args.all)
    for f in findings:
        print(f"{f.status:<11} {f.op:<20} {f.layer}  ({f.reason})")
    floats = sum(f.status == "float" for f in findings)
    print(f"{args.model}: {floats} op(s) run in float on {args.target}, none unsupported")
    result = {"model": args.model, "target": args.target,
              "findings": [f.to_dict() for f in findings]}
    if shape is None and args.target == "tensorrt":  # a file: can its weights run 2:4 sparse?
        from edgekit.pruning import check_24_onnx, format_conformance

        rows = check_24_onnx(args.model)
        print("\n2:4 sparsity (TensorRT's sparse tensor cores, Ampere+ and Orin):")
        print(format_conformance(rows))
        result["sparsity_24"] = [row.to_dict() for row in rows]
    if args.json:
        _write_json(args.json, result)
    return 0


def load_checkpoint_splits(checkpoint: str, data: str | None, limit: int | None
                           ) -> tuple[Any, Any, Any]:
    """(model, train split, test split) of a checkpoint and the data it was trained on."""
    from edgekit.calibration import load_splits
    from edgekit.training.checkpoint import load_checkpoint

    model, config = load_checkpoint(checkpoint)
    data = data or (config.get("extra") or {}).get("data")
    if not data:
        raise InvalidInputError(f"{checkpoint} does not record its data; pass --data")
    model_cfg = config["model"]
    train_ds, test_ds = load_splits(data, input_size=model_cfg.get("input_size"),
                                    channels=model_cfg.get("in_channels"))
    if limit is not None:
        test_ds = test_ds.subset(limit, seed=0)
    return model, train_ds, test_ds


def run_quantize(args: argparse.Namespace) -> int:
    args.target = int8_target(args.target)
    from edgekit.export import export
    from edgekit.quantization import QuantConfig, quantize

    _check_suffix(args.out, TARGET_FORMAT[args.target])
    check_writable(args.out)  # before QAT, not after
    check_writable(args.json)
    cfg = QuantConfig(target=args.target, mode=args.mode, epochs=args.epochs, lr=args.lr,
                      calibration_size=args.calibration_size, batch_size=args.batch_size,
                      seed=args.seed, distill=args.distill)
    model, train_ds, test_ds = load_checkpoint_splits(args.checkpoint, args.data, args.limit)
    qm = quantize(model, cfg, train_data=train_ds, val_data=None)
    fmt = TARGET_FORMAT[args.target]
    options: dict[str, Any] = {"metadata": {"checkpoint": str(args.checkpoint)}}
    if fmt == "tflite":
        options = {"calibration": train_ds.subset(args.calibration_size, seed=args.seed).x}
    artifact = export(qm, fmt, args.out, data=test_ds, threshold=args.threshold, **options)
    print(f"wrote {artifact.path} ({artifact.format}, {artifact.precision}); "
          f"{artifact.verify_report.summary()}")
    engine = artifact.metadata.get("engine")
    if engine and not engine.get("built"):
        print(f"TensorRT engine not built here ({engine['reason']}):\n  {engine['trtexec']}")
    if args.json:
        _write_json(args.json, artifact.to_dict())
    return 0


def run_export(args: argparse.Namespace) -> int:
    from edgekit.export import export

    _check_suffix(args.out, args.format)
    check_writable(args.out)
    check_writable(args.json)
    model, train_ds, test_ds = load_checkpoint_splits(args.checkpoint, args.data, args.limit)
    shape = tuple(test_ds.input_shape)
    options: dict[str, Any] = {"input_shape": shape}
    if args.format == "onnx" and args.opset:
        options["opset"] = args.opset
    if args.format == "tflite":
        options["calibration"] = train_ds.subset(64, seed=0).x
    artifact = export(model, args.format, args.out, data=test_ds, **options)
    print(f"wrote {artifact.path} ({artifact.format}, {artifact.precision}); "
          f"{artifact.verify_report.summary()}")
    if args.json:
        _write_json(args.json, artifact.to_dict())
    return 0


def _check_suffix(out: str, fmt: str) -> None:
    want = {"onnx": ".onnx", "tflite": ".tflite", "engine": ".engine", "lce": ".tflite"}[fmt]
    if Path(out).suffix != want:
        raise InvalidInputError(f"--out for {fmt} must end in {want}, got {out}")


def _write_json(path: str, obj: Any) -> None:
    from edgekit.core.io import atomic_write_json

    atomic_write_json(path, json.loads(json.dumps(obj, default=str)))
