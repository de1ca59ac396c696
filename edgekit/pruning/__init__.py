"""Structured pruning that pays off on the device (issue 24).

* channel pruning (``prune_channels``, ``prune_and_finetune``): torch-pruning's dependency
  graph removes whole coupled channel groups until a share of the MACs is left; every
  runtime gets a thinner dense model;
* 2:4 semi-structured sparsity (``sparsify_24``, ``mask_enforcer``, ``sparse_finetune``):
  TensorRT's sparse tensor-core pattern, kept through int8 QAT, checked on the exported
  file (``check_24_onnx``);
* a pruned model is saved and rebuilt without unpickling (``save_pruned``, ``load_pruned``).

Unstructured magnitude pruning (Deep Compression) is ``edgekit.deep_compression.prune``.
Importing this package loads neither torch nor torch-pruning; the functions import them.
"""

from __future__ import annotations

from typing import Any

from edgekit.pruning.config import (
    ChannelPruneConfig,
    ChannelPruneResult,
    PruningError,
    SparsityConfig,
    SparsityResult,
)

# name -> module that defines it (imported on first use: they import torch)
_LAZY = {
    "prune_channels": "channel", "prune_and_finetune": "channel", "example_input": "channel",
    "sparsify_24": "sparse24", "mask_enforcer": "sparse24", "sparse_finetune": "sparse24",
    "mask_24": "sparse24", "dense_reason": "sparse24", "recover_24": "sparse24",
    "check_24": "check24", "check_24_onnx": "check24", "format_conformance": "check24",
    "pattern_ok": "check24", "LayerConformance": "check24",
    "save_pruned": "structure", "load_pruned": "structure", "pruned_structure": "structure",
    "apply_structure": "structure", "read_pruned_header": "structure",
}

__all__ = ["ChannelPruneConfig", "ChannelPruneResult", "PruningError", "SparsityConfig",
           "SparsityResult", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"edgekit.pruning.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'edgekit.pruning' has no attribute {name!r}")
