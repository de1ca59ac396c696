"""Binary (BNN, XNOR-Net), ternary (TWN, TTQ) and hashed (HashedNets) layers.

Train with the low-bit layers, :func:`materialize` to standard Conv/Linear for export,
and store with the 1-bit / 2-bit / hashed ``.ekz`` records (``lowbit.records``,
``lowbit.storage``). Names are imported lazily (PEP 562): decoding a file through
``edgekit.compress.lowbit.records`` needs numpy only, never torch.
"""

from __future__ import annotations

from edgekit._lazy import lazy_exports

_PUBLIC = {
    **dict.fromkeys(
        ["LOWBIT_LAYER_TYPES", "BinaryActivation", "BinaryConv2d", "BinaryLinear",
         "HashedConv2d", "HashedLinear", "SignActivation", "TTQConv2d", "TTQLinear",
         "TernaryConv2d", "TernaryLinear", "XnorConv2d", "XnorLinear"],
        "edgekit.compress.lowbit.layers"),
    "lowbit_layers": "edgekit.compress.lowbit.materialization",
    "materialize": "edgekit.compress.lowbit.materialization",
    "save_lowbit": "edgekit.compress.lowbit.storage",
    "load_lowbit": "edgekit.compress.lowbit.storage",
    "storage_report": "edgekit.compress.lowbit.storage",
    "weights_to_qdq": "edgekit.compress.lowbit.onnx_qdq",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
