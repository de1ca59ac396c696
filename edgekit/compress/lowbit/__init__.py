"""Binary (BNN, XNOR-Net), ternary (TWN, TTQ) and hashed (HashedNets) layers.

Train with the low-bit layers, :func:`materialize` to standard Conv/Linear for export,
and store with the 1-bit / 2-bit / hashed records (``edgekit.compress.lowbit.records``).
"""

from __future__ import annotations

from edgekit.compress.lowbit.layers import (
    LOWBIT_LAYER_TYPES,
    BinaryActivation,
    BinaryConv2d,
    BinaryLinear,
    HashedConv2d,
    HashedLinear,
    SignActivation,
    TernaryConv2d,
    TernaryLinear,
    TTQConv2d,
    TTQLinear,
    XnorConv2d,
    XnorLinear,
)
from edgekit.compress.lowbit.materialize import lowbit_layers, materialize

__all__ = [
    "LOWBIT_LAYER_TYPES",
    "BinaryActivation",
    "BinaryConv2d",
    "BinaryLinear",
    "HashedConv2d",
    "HashedLinear",
    "SignActivation",
    "TTQConv2d",
    "TTQLinear",
    "TernaryConv2d",
    "TernaryLinear",
    "XnorConv2d",
    "XnorLinear",
    "lowbit_layers",
    "materialize",
]
