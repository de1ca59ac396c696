"""The `edgekit` command: argument parsing only; every command calls the Python API.

Each command group lives in its own module with a ``register(subparsers)`` function that
adds its parser and sets ``func`` to a handler taking the parsed namespace. Handlers
import heavy back-ends lazily, so `edgekit bench` on a board never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from edgekit.core.errors import EdgekitError
from edgekit.core.threads import quiet_openmp_env

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES: list[str] = [
    "edgekit.cli.compress",
    "edgekit.cli.models",
    "edgekit.cli.train",
    "edgekit.cli.bench",
    "edgekit.cli.deepcomp",
    "edgekit.cli.export",
    "edgekit.cli.verify",
    "edgekit.cli.deploy",
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
    quiet_openmp_env()  # before any command module or torch loads OpenMP, which reads it once
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for --nproc's relaunch
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # SIGTERM (a pre-empted node, `kill`) ends the command as Ctrl-C does: clean-up runs and
    # an unfinished compress run is kept for --resume
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
