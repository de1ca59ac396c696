"""Where and how a benchmark ran: the header every benchmarks/*.py JSON starts with.

Every figure in docs/results/*.json traces back through it to a commit (and whether the
tree had uncommitted changes), the command as run, the machine's ISA flags and the date.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
# the x86 flags that decide int8 (and fp32) speed; ARM's dot-product/i8mm ones
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8",
               "asimd", "asimddp", "i8mm", "sve")


def cpu_flags() -> list[str]:
    """The speed-relevant ISA flags of this CPU (empty where /proc/cpuinfo is not there)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((row for row in text.splitlines()
                 if row.startswith(("flags", "Features"))), "")
    present = set(line.partition(":")[2].split())
    return [f for f in SPEED_FLAGS if f in present]


def commit() -> dict[str, Any]:
    """HEAD of the checkout the benchmark ran from, and whether edgekit/ or benchmarks/ had
    uncommitted changes (a figure from a dirty tree is not reproducible from the commit)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", "edgekit", "benchmarks"))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": dirty}


def run_info(benchmark: str, argv: list[str] | None, *,
             torch_threads: int | None = None) -> dict[str, Any]:
    """Name, the command line as run, commit, date, machine and its ISA flags, versions."""
    args = sys.argv[1:] if argv is None else argv
    threads = "" if torch_threads is None else f", torch threads={torch_threads}"
    info = {
        "benchmark": benchmark,
        "command": shlex.join(["python", f"benchmarks/{benchmark}.py", *args]),
        **commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs{threads}",
        "cpu_flags": cpu_flags(),
        "python": platform.python_version(),
    }
    if importlib.util.find_spec("torch") is not None:  # boards and GPU hosts may lack it
        import torch

        info["torch"] = torch.__version__
    return info
