"""The board agent as a wheel: this edgekit, packed from its own files, for the deploy bundle.

A bundle carries the exact edgekit that made it, so the board verifies and benchmarks with
the same code (version skew between workstation and board is a classic source of "works
here, not there"). The wheel is pure Python and needs numpy only (the runtimes are the
board's); `pip install` it, or put it on PYTHONPATH (zipimport) without installing.
It is built from the installed package rather than by `pip wheel`, which needs the
source tree, the build back-end and often the network; the bytes are deterministic
(sorted entries, fixed timestamps), so the same edgekit gives the same wheel.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

from edgekit.core.io import atomic_write_bytes

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
_REQUIRES = ["numpy>=1.23", "tomli>=2.0; python_version < \"3.11\""]


def wheel_name() -> str:
    from edgekit import __version__

    return f"edgekit-{__version__}-py3-none-any.whl"


def write_agent_wheel(folder: str | Path) -> Path:
    """Write ``edgekit-<version>-py3-none-any.whl`` into ``folder``; return its path."""
    import edgekit

    package = Path(edgekit.__file__).parent
    version = edgekit.__version__
    info = f"edgekit-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            entries.append((f"edgekit/{path.relative_to(package).as_posix()}",
                            path.read_bytes()))
    metadata = "\n".join(["Metadata-Version: 2.1", "Name: edgekit", f"Version: {version}",
                          "Summary: edgekit's board agent: verify and benchmark deployed files",
                          *(f"Requires-Dist: {r}" for r in _REQUIRES), ""])
    entries += [
        (f"{info}/METADATA", metadata.encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: edgekit\nRoot-Is-Purelib: true\n"
                          b"Tag: py3-none-any\n"),
        (f"{info}/entry_points.txt", b"[console_scripts]\nedgekit = edgekit.cli:main\n"),
    ]
    record = "".join(f"{name},sha256={_digest(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{info}/RECORD", f"{record}{info}/RECORD,,\n".encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries:
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    return atomic_write_bytes(Path(folder) / wheel_name(), buffer.getvalue())


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
