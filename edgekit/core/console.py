"""Where edgekit's own progress lines go, apart from what third-party libraries print.

A compress run imports torch, nncf, torchao and litert-torch, which print warnings, C++
log lines and converter chatter to the process's stdout and stderr. ``third_party_to``
sends file descriptors 1 and 2 (so C and C++ writers too) to a log file, while
``console()`` keeps edgekit's own lines on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

_terminal: TextIO | None = None


def console() -> TextIO:
    """The stream for edgekit's progress: the saved terminal inside ``third_party_to``."""
    return _terminal or sys.stderr


@contextlib.contextmanager
def third_party_to(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Everything written to fds 1 and 2 goes to ``path`` (appended) until the block ends."""
    global _terminal
    path = Path(path)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    previous = _terminal
    with open(path, "ab") as log:
        _terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield path
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            _terminal.close()
            _terminal = previous
