"""Model → ``.ekz``: shared Conv/Linear weights as ``dc`` records, everything else ``raw``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.deep_compression.ekz.container import TensorRecord, write_ekz
from edgekit.deep_compression.ekz.records import SharedWeights

if TYPE_CHECKING:
    import torch

    from edgekit.deep_compression.share import ShareConfig


def model_records(model: torch.nn.Module, shared: dict[str, SharedWeights], *,
                  codec: str = "huffman", small_dtype: str = "f4") -> list[TensorRecord]:
    """One record per state-dict entry; ``small_dtype`` (f4/f2) stores biases and BN values."""
    records = []
    state = model.state_dict()
    # A module reachable under two names (e.g. final_conv = classifier[1]) appears twice in
    # the state dict but once in named_modules(): code the alias with the same codebook.
    by_storage = {state[n].data_ptr(): sw for n, sw in shared.items() if n in state}
    for name, tensor in state.items():
        shape = tuple(tensor.shape)
        if name not in shared and tensor.is_floating_point() and tensor.numel():
            alias = by_storage.get(tensor.data_ptr())
            if alias is not None and alias.indices.shape == shape:
                shared = {**shared, name: alias}
        if name in shared:
            records.append(TensorRecord(name, "dc", shared[name], shape, {"codec": codec}))
        elif tensor.is_floating_point():
            records.append(TensorRecord(name, "raw", tensor.detach().cpu().numpy(), shape,
                                        {"dtype": small_dtype}))
        else:
            records.append(TensorRecord(name, "raw", tensor.detach().cpu().numpy(), shape,
                                        {"dtype": "i8"}))
    return records


def pack_model(model: torch.nn.Module, path: str | os.PathLike[str], *,
               shared: dict[str, SharedWeights] | None = None,
               share_config: ShareConfig | None = None, codec: str = "huffman",
               small_dtype: str = "f4", meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as ``.ekz``. Without ``shared``, weights are clustered first (in place;
    an already shared model keeps its exact values)."""
    if shared is None:
        from edgekit.deep_compression.share import share_weights

        shared = share_weights(model, share_config)
    config = getattr(model, "edgekit_config", None)
    return write_ekz(path, model_records(model, shared, codec=codec, small_dtype=small_dtype),
                     model_config=dict(config) if config else None, meta=meta)
