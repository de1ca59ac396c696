"""`edgekit verify`: run a deployed file in its runtime and compare it with the trained model.

Two references: ``--expected reference.npz`` (from a compress bundle; numpy + the runtime
only, so it runs on the board) or ``--reference CHECKPOINT`` (needs torch, workstation).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.runtime.parity import PARITY_THRESHOLD


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser(
        "verify", help="run a deployed file in its runtime and compare with the trained model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a deployed .onnx/.tflite/.engine file in its runtime and compare its "
        "outputs with the trained model's: top-1 (pixel) agreement, error in output\n"
        "quantization steps, accuracy. Exit 0 when it passes, 1 when it does not (the report\n"
        "is still printed and written), 2 on bad input.",
        epilog="examples:\n"
        "  on the board (no torch):  edgekit verify model_int8.tflite --expected reference.npz\n"
        "  on the workstation:       edgekit verify model.onnx --reference runs/lenet5")
    ref = v.add_mutually_exclusive_group(required=True)
    ref.add_argument("--expected", metavar="REFERENCE.npz", help="the bundle's reference.npz: "
                     "inputs and the trained model's outputs (needs numpy + the runtime only)")
    ref.add_argument("--reference", metavar="CHECKPOINT",
                     help="the checkpoint the file was exported from (needs torch)")
    v.add_argument("artifact", help=".onnx / .tflite / .engine file")
    v.add_argument("--runtime", help="onnxruntime, litert or tensorrt (default: from the suffix)")
    v.add_argument("--kernels", choices=("reference", "optimized"),
                   help="onnxruntime kernels (default: reference ones for a TensorRT-bound "
                   "file, TensorRT's arithmetic; optimized otherwise)")
    v.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    v.add_argument("--threshold", type=float, default=PARITY_THRESHOLD,
                   help="least agreement that passes (default: %(default)s)")
    v.add_argument("--data", help="with --reference: data set (default: the checkpoint's)")
    v.add_argument("--limit", type=int, metavar="N",
                   help="with --reference: a stratified N-sample subset of the test split")
    v.add_argument("--json", metavar="PATH", help="write the report as JSON ('-' = stdout)")
    v.add_argument("--allow-modified", action="store_true",
                   help="with --expected: verify a file whose SHA-256 differs from the one "
                   "the reference lists (refused otherwise), reported as a different file")
    v.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    if args.json and args.json != "-":
        from edgekit.core.io import check_writable

        check_writable(args.json)
    if args.expected:
        if args.data or args.limit:
            raise InvalidInputError("--data and --limit go with --reference, not --expected")
        from edgekit.bench.expected import ModifiedFileError, verify_expected

        kernels = {"reference": "reference (chosen with --kernels)",
                   "optimized": "optimized"}.get(args.kernels or "")
        try:
            report = verify_expected(args.artifact, args.expected, runtime=args.runtime,
                                     threshold=args.threshold, onnx_kernels_override=kernels,
                                     threads=args.threads, allow_modified=args.allow_modified)
        except ModifiedFileError as exc:  # a failed verification, recorded as such: exit 1
            _emit({"artifact": args.artifact, "passed": False, "error": str(exc),
                   "identity": exc.identity}, args.json)
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    else:
        if args.allow_modified:
            raise InvalidInputError("--allow-modified goes with --expected")
        report = _verify_checkpoint(args)
    _emit(report.to_dict(), args.json)
    print(report.summary(), file=sys.stderr if args.json == "-" else sys.stdout)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0 if report.passed else 1


def _verify_checkpoint(args: argparse.Namespace) -> Any:
    from edgekit.cli.export import load_checkpoint_splits
    from edgekit.core.errors import VerificationError
    from edgekit.export.verify import VerifyReport, load_report, verify

    if args.kernels:
        raise InvalidInputError("--kernels goes with --expected")
    model, _, test_ds = load_checkpoint_splits(args.reference, args.data, args.limit)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "verify.json"
        try:
            return verify(args.artifact, model, test_ds, runtime=args.runtime,
                          threshold=args.threshold, report_path=path, threads=args.threads)
        except VerificationError:
            return VerifyReport(**load_report(path))


def _emit(report: dict[str, Any], json_path: str | None) -> None:
    if json_path == "-":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif json_path:
        from edgekit.core.io import atomic_write_json

        atomic_write_json(json_path, report)
