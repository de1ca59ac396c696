"""Binary (BNN, XNOR-Net), ternary (TWN, TTQ) and hashed (HashedNets) layers.

Train with the low-bit layers, :func:`materialize` to standard Conv/Linear for export,
and store with the 1-bit / 2-bit / hashed ``.ekz`` records (``lowbit.records``,
``lowbit.storage``). Names are imported lazily (PEP 562): decoding a file through
``edgekit.compress.lowbit.records`` needs numpy only, never torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    **dict.fromkeys(
        ["LOWBIT_LAYER_TYPES", "BinaryActivation", "BinaryConv2d", "BinaryLinear",
         "HashedConv2d", "HashedLinear", "SignActivation", "TTQConv2d", "TTQLinear",
         "TernaryConv2d", "TernaryLinear", "XnorConv2d", "XnorLinear"],
        "edgekit.compress.lowbit.layers"),
    "lowbit_layers": "edgekit.compress.lowbit.materialize",
    "materialize": "edgekit.compress.lowbit.materialize",
    "save_lowbit": "edgekit.compress.lowbit.storage",
    "load_lowbit": "edgekit.compress.lowbit.storage",
    "storage_report": "edgekit.compress.lowbit.storage",
    "weights_to_qdq": "edgekit.compress.lowbit.onnx_qdq",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
