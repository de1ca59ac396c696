"""Finding board tools (``nvpmodel``, ``tegrastats``, ``vcgencmd``) in explicit directories.

Every probe that runs a tool takes ``tool_dirs``: the directories to search, in order, or
``None`` for the process's PATH. An empty sequence searches nowhere, so a test can say "this
host has no tools" or point at a folder holding a script that prints a real tool's output.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

ToolDirs = Sequence[str | Path] | None


def find_tool(name: str, tool_dirs: ToolDirs = None) -> str | None:
    """Path of the executable ``name`` in ``tool_dirs`` (None: on PATH); None when absent.

    A ``name`` with a directory part is checked as it is, wherever ``tool_dirs`` points.
    """
    if tool_dirs is None:
        return shutil.which(name)
    # shutil.which treats an empty search path as "nowhere", which is what () means here
    return shutil.which(name, path=os.pathsep.join(str(d) for d in tool_dirs))


def where(tool_dirs: ToolDirs) -> str:
    """Where ``find_tool`` looked, for "not found" messages."""
    if tool_dirs is None:
        return "on PATH"
    return f"in {[str(d) for d in tool_dirs]}" if tool_dirs else "(no tool directories given)"
