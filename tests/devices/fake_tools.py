"""Board tools that cannot exist on this host (nvpmodel, tegrastats, vcgencmd), as real
executables in a folder that tests pass as ``tool_dirs``; each prints a real board's output.

Outputs: ``nvpmodel -q`` on AGX Orin (JetPack 6) and on Xavier NX (JetPack 5, which prints
the fan mode first); ``vcgencmd get_throttled`` on a Raspberry Pi that was under-voltage.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

NVPMODEL_AGX_ORIN = "NV Power Mode: MAXN\n0\n"
NVPMODEL_XAVIER_NX = "NV Fan Mode:quiet\nNV Power Mode: MODE_15W_6CORE\n2\n"
VCGENCMD_THROTTLED = "throttled=0x50000\n"


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def printing_tool(folder: Path, name: str, output: str, exit_code: int = 0) -> Path:
    """``folder/name``: prints ``output`` and exits with ``exit_code``, whatever its arguments."""
    return _executable(folder / name, f"#!/bin/sh\ncat <<'EOF'\n{output}EOF\nexit {exit_code}\n")


def tegrastats(folder: Path, line: str) -> Path:
    """``folder/tegrastats``: prints ``line`` every ``--interval`` ms, as the real one does."""
    code = ("import sys, time\n"
            "args = sys.argv[1:]\n"
            "ms = int(args[args.index('--interval') + 1]) if '--interval' in args else 1000\n"
            "while True:\n"
            f"    print({line!r}, flush=True)\n"
            "    time.sleep(ms / 1000)\n")
    return _executable(folder / "tegrastats", f"#!{sys.executable}\n{code}")
