"""Binary (BNN, XNOR-Net), ternary (TWN, TTQ) and hashed (HashedNets) layers.

Train with the low-bit layers, :func:`materialize` to standard Conv/Linear for export,
and store with the 1-bit / 2-bit / hashed ``.ekz`` records (``lowbit.records``,
``lowbit.storage``). Names are imported lazily (PEP 562): decoding a file through
``edgekit.lowbit.records`` needs numpy only, never torch.
"""

from __future__ import annotations

from edgekit.core.lazy import lazy_exports

_PUBLIC = {
    **dict.fromkeys(
        ["LOWBIT_LAYER_TYPES", "BinaryActivation", "BinaryConv2d", "BinaryLinear",
         "HashedConv2d", "HashedLinear", "SignActivation", "TTQConv2d", "TTQLinear",
         "TernaryConv2d", "TernaryLinear", "XnorConv2d", "XnorLinear"],
        "edgekit.models.lowbit.layers"),
    "lowbit_layers": "edgekit.models.lowbit.materialization",
    "materialize": "edgekit.models.lowbit.materialization",
    "save_lowbit": "edgekit.lowbit.storage",
    "load_lowbit": "edgekit.lowbit.storage",
    "storage_report": "edgekit.lowbit.storage",
    "weights_to_qdq": "edgekit.lowbit.onnx_qdq",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
