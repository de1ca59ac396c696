"""Save a low-bit model as ``.ekz`` records and load it back as the deployable float model.

A weight layer is stored in its low-bit record kind (``bits1`` for BNN/XNOR, ``tern2``
for TWN/TTQ, ``hashed`` for HashedNets); every other tensor (BN statistics, biases,
full-precision layers) as ``raw`` fp32/int64. The header's ``model`` config says
``materialized=True``, so ``create_model(**config)`` (here, or the generic
``edgekit.export.ekz.ekz_model``) builds the export architecture and the
decoded state dict loads into it strictly: the result is bit-identical to
``materialize(model)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekit.core.errors import CheckpointError, FormatError, InvalidInputError
from edgekit.deep_compression.ekz import EkzFile, TensorRecord, encode_ekz, load_ekz, write_ekz
from edgekit.lowbit import records as _records  # registers the record kinds
from edgekit.models.lowbit.materialization import lowbit_layers, materialize

# layer.kind -> record kind (declarative: print it to see what is stored how)
RECORD_FOR_LAYER = {"binary": "bits1", "xnor": "bits1", "twn": "tern2", "ttq": "tern2",
                    "hashed": "hashed"}


def lowbit_records(model: nn.Module) -> list[TensorRecord]:
    """One record per tensor of ``materialize(model).state_dict()``."""
    special = {f"{name}.weight": layer for name, layer in lowbit_layers(model)}
    records = []
    for key, tensor in materialize(model).state_dict().items():
        array = tensor.detach().cpu().numpy()
        layer = special.get(key)
        if layer is None:
            dtype = "i8" if array.dtype.kind in "iu" else "f4"
            records.append(TensorRecord(key, "raw", array, array.shape, {"dtype": dtype}))
        elif layer.kind == "hashed":
            value = _records.HashedWeights(layer.buckets.detach().cpu().numpy(), layer.seed)
            records.append(TensorRecord(key, "hashed", value, array.shape))
        elif layer.kind in ("twn", "ttq"):
            codes, pos, neg = (t.cpu().numpy() for t in layer.ternary_parts())
            value = _records.TernaryWeights(codes.astype(np.int8), pos, neg)
            records.append(TensorRecord(key, "tern2", value, array.shape))
        else:
            records.append(TensorRecord(key, RECORD_FOR_LAYER[layer.kind], array, array.shape))
    return records


def _model_config(model: nn.Module) -> dict:
    """The config that rebuilds the *materialized* model: what the records fit."""
    config = getattr(model, "edgekit_config", None)
    if not isinstance(config, dict) or "materialized" not in config:
        raise InvalidInputError("saving needs a registered low-bit model (edgekit.models, "
                                "family 'lowbit'), which carries model.edgekit_config")
    return {**config, "materialized": True}


def encode_lowbit(model: nn.Module) -> bytes:
    """The ``.ekz`` bytes of a registered low-bit model."""
    return encode_ekz(lowbit_records(model), model_config=_model_config(model),
                      meta={"materialized": True})


def save_lowbit(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` atomically (nothing half-written on failure)."""
    return write_ekz(path, lowbit_records(model), model_config=_model_config(model),
                     meta={"materialized": True})


def model_from_ekz(ekz: EkzFile) -> nn.Module:
    """The materialized float model of a parsed ``.ekz`` file written by save_lowbit."""
    from edgekit.models import create_model

    config = dict(ekz.model_config or {})
    name = config.pop("name", None)
    if not isinstance(name, str):
        raise FormatError("the .ekz header names no model to rebuild")
    model = create_model(name, **config)
    state = {k: torch.from_numpy(np.array(v)) for k, v in ekz.tensors().items()}
    expected = model.state_dict()
    if set(state) != set(expected):
        missing, extra = set(expected) - set(state), set(state) - set(expected)
        raise CheckpointError(f"{name}: records do not fit the model (missing "
                              f"{sorted(missing)[:5]}, unexpected {sorted(extra)[:5]})")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{name}: {key} has shape {tuple(value.shape)}, "
                                  f"the model wants {tuple(expected[key].shape)}")
        state[key] = value.to(expected[key].dtype)
    model.load_state_dict(state)
    return model.eval()


def load_lowbit(path: str | os.PathLike[str]) -> nn.Module:
    """Read a file written by :func:`save_lowbit` into the deployable float model."""
    return model_from_ekz(load_ekz(path))


@dataclass(frozen=True)
class StorageReport:
    """Bytes of the low-bit ``.ekz`` file against the same model stored all-fp32."""

    file_bytes: int  # low-bit records + raw for the rest
    fp32_file_bytes: int  # same container, every tensor of the materialized model raw fp32
    lowbit_layer_bytes: int  # payloads of the bits1/tern2/hashed records
    lowbit_layer_fp32_bytes: int  # the dense fp32 weights those records stand for

    @property
    def ratio(self) -> float:
        return self.fp32_file_bytes / self.file_bytes

    @property
    def lowbit_layer_ratio(self) -> float:
        return self.lowbit_layer_fp32_bytes / max(1, self.lowbit_layer_bytes)


def storage_report(model: nn.Module) -> StorageReport:
    """Sizes of ``model`` encoded as ``.ekz``, with low-bit records and all-fp32."""
    from edgekit.deep_compression.ekz import parse_ekz

    data = encode_lowbit(model)
    raw = [TensorRecord(r.name, "raw", _dense(r.value, r.shape), r.shape,
                        r.options if r.kind == "raw" else {"dtype": "f4"})
           for r in lowbit_records(model)]
    fp32_data = encode_ekz(raw, model_config=_model_config(model), meta={"materialized": True})
    low = [r for r in parse_ekz(data).records if r.kind in _records.LOWBIT_KINDS]
    return StorageReport(len(data), len(fp32_data), sum(r.length for r in low),
                         4 * sum(r.numel for r in low))


def _dense(value: object, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(value, _records.HashedWeights):
        return value.dense(shape)
    if isinstance(value, _records.TernaryWeights):
        codes = value.codes.reshape(len(value.codes), -1)
        pos, neg = (np.asarray(v, np.float32).reshape(-1, 1) for v in (value.pos, value.neg))
        return np.where(codes > 0, pos, np.where(codes < 0, -neg, 0)).reshape(shape)
    return np.asarray(value)
