"""The `edgekit` command: argument parsing only; every command calls the Python API.

Each command group lives in its own module with a ``register(subparsers)`` function that
adds its parser and sets ``func`` to a handler taking the parsed namespace. Handlers
import heavy back-ends lazily, so `edgekit bench` on a board never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from edgekit.core.errors import EdgekitError

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES: list[str] = [
    "edgekit.cli.compress",
    "edgekit.cli.models",
    "edgekit.cli.train",
    "edgekit.cli.bench",
    "edgekit.cli.deepcomp",
    "edgekit.cli.export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Compress light-weight CNNs, export them to TensorRT/TFLite, "
        "and measure latency and power on edge devices.",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from edgekit import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, not in the interpreter's exit
        return code
    except EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout piped into a reader that stopped (`| head`)
        # Python's own recipe: point stdout at devnull so the flush at exit cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
