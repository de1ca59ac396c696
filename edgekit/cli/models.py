"""`edgekit models`: list the model zoo with parameters and MACs at a chosen input size."""

from __future__ import annotations

import argparse

from edgekit.core.errors import EdgekitError, InvalidInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "models", help="list registered models with parameters and MACs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print name, family, task, parameter count and multiply-accumulates\n"
        "(torch FlopCounterMode, FLOPs / 2) of every model matching PATTERN, built with\n"
        "the given size, channels and classes (default: each model's own defaults).",
        epilog="examples:\n  edgekit models '*mobile*'\n"
        "  edgekit models --input-size 28 --in-channels 1 --num-classes 10")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style name pattern (default: all models)")
    p.add_argument("--input-size", type=int, help="square input side in pixels")
    p.add_argument("--in-channels", type=int, help="input channels")
    p.add_argument("--num-classes", type=int, help="output classes")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from edgekit.models import (
        count_macs,
        count_params,
        create_model,
        get_model_spec,
        list_models,
    )
    from edgekit.models.registry import MODELS

    names = list_models(args.pattern)
    if not names:
        if not any(ch in args.pattern for ch in "*?["):
            MODELS.get(args.pattern)  # raises UnknownNameError with close names
        raise InvalidInputError(f"no registered model matches {args.pattern!r}")
    rows = [("name", "family", "task", "input", "params", "MACs")]
    for name in names:
        spec = get_model_spec(name)
        size = args.input_size or spec.input_size
        channels = args.in_channels or spec.in_channels
        shape = f"{channels}x{size}x{size}"
        try:
            model = create_model(name, num_classes=args.num_classes, in_channels=args.in_channels,
                                 input_size=args.input_size)
            params, macs = _human(count_params(model)), _human(count_macs(model))
        except EdgekitError as exc:  # e.g. a size this model cannot take: say so in its row
            params, macs = "-", f"n/a: {exc}"
        rows.append((name, spec.family, spec.task, shape, params, macs))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)
