"""Where nncf's compiled C++ extension is cached: one folder per Python environment.

torch caches extensions per user (``~/.cache/torch_extensions/py311_cpu``), so two
environments of one user with different compilers or flags rebuild each other's copy, and
QAT's first epoch silently took 25-42 s instead of 2.6 s (issue 38). Unless the user chose
``TORCH_EXTENSIONS_DIR``, edgekit points it at a folder named after this environment, and
says so in one line when the extension is about to be compiled there.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from edgekit.core.console import console


def environment_cache_dir() -> Path:
    """``<torch's default build root>/env-<name>-<hash of sys.prefix>``."""
    from torch.utils.cpp_extension import get_default_build_root

    digest = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return Path(get_default_build_root()) / f"env-{Path(sys.prefix).name}-{digest}"


def use_environment_cache() -> Path:
    """Set TORCH_EXTENSIONS_DIR for nncf's build (a user's own setting wins); print one
    line when nothing is built there yet. Returns the folder."""
    folder = Path(os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(environment_cache_dir())))
    if not any(folder.glob("nncf/*/*/*.so")):
        print(f"nncf compiles its C++ extension for this environment once (about 35 s on 2 "
              f"cores); cached in {folder}", file=console(), flush=True)
    return folder
