"""A board-like Python environment: numpy + onnxruntime + LiteRT and their own dependencies.

A real virtual environment (``python -m venv --without-pip``) whose site-packages holds
symlinks to exactly those distributions' installed files, taken from this interpreter's
environment: ``import torch`` (or nncf, onnx) fails in it, as on a board where only the
runtime was installed. edgekit itself is not in it either: the bundle brings its wheel.
(protobuf's files sit in the shared ``google`` namespace folder, linked whole.)
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

BOARD_DISTRIBUTIONS = ("numpy", "onnxruntime", "ai-edge-litert")
ABSENT = ("torch", "nncf", "onnx", "litert_torch", "torchao", "edgekit")


def _closure(names: tuple[str, ...]) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        dist = metadata.distribution(name)
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def make_board_env(folder: Path) -> Path:
    """Create the environment in ``folder``; its python executable."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    here = Path(sysconfig.get_paths()["purelib"])
    for dist in _closure(BOARD_DISTRIBUTIONS):
        tops = {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}
        for top in tops:
            source = here / top
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return python
