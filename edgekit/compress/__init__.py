"""Compression steps (prune, qat, share, huffman, lowbit) and the end-to-end pipeline.

``edgekit.compress`` is both this sub-package and the pipeline verb: calling the module,
``edgekit.compress(model=..., target="jetson")``, runs :func:`edgekit.compress.pipeline.compress`.
The steps themselves are imported by full path (``edgekit.compress.prune`` ...), so that
importing one step never loads the back-ends of the others.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from edgekit.compress.pipeline import compress

        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
