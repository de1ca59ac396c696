"""Where and how a benchmark ran: the header every benchmarks/*.py JSON starts with."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from typing import Any


def run_info(benchmark: str, argv: list[str] | None, *, torch_threads: int) -> dict[str, Any]:
    """Name, the command line as run, machine, Python and torch versions."""
    import torch

    args = sys.argv[1:] if argv is None else argv
    return {
        "benchmark": benchmark,
        "command": shlex.join(["python", f"benchmarks/{benchmark}.py", *args]),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
                   f"torch threads={torch_threads}",
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
