"""Atomic output: write a temporary sibling, then rename; a failure leaves nothing half-written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from edgekit.core.errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Works for files and directories alike: the caller creates whatever it likes at the
    yielded path. On an exception the temporary is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if not staged.exists():
            raise FileNotFoundError(f"nothing was written to {staged}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: str | os.PathLike[str] | None, *,
                   kind: Literal["file", "dir"] = "file") -> None:
    """Raise ``OutputError`` unless ``atomic_path`` could write ``path`` as a ``kind``.

    Meant before any long work, so a bad ``--out`` fails in a second, not after training.
    Creates nothing; ``None`` (an output not asked for) passes.
    """
    if path is None:
        return
    # os.path's tests, unlike Path's, answer False instead of raising on a folder we may not read
    target = os.path.abspath(path)
    want_dir = kind == "dir"
    if os.path.exists(target) and os.path.isdir(target) != want_dir:
        raise OutputError(f"{path}: exists and is not a {'directory' if want_dir else 'file'}")
    parent = os.path.dirname(target)
    while not os.path.exists(parent):  # atomic_path creates the missing folders below it
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputError(f"{path}: {parent} is a file, not a directory")
    # A real probe where atomic_path puts its temporary: os.access says yes on /proc and on
    # read-only mounts, and the probe's name also catches a name too long for the file system.
    name = os.path.basename(target)
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create files in {parent} "
                          f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
