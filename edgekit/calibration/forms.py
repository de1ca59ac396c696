"""The data forms every stage accepts, read as numpy inputs (and labels).

An ``ArrayDataset`` (``.x``/``.y``), an ``(x, y)`` tuple, an array or tensor of inputs, or
a torch ``Dataset``/``DataLoader`` (any sequence) of ``(x, y)`` samples or bare inputs.
Lazy inputs stay lazy: nothing here decodes more samples than a caller asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.calibration.adapters import (
    as_dataset,
    lazy_inputs,
    map_style,
    read_labels,
    to_numpy,
)
from edgekit.calibration.dataset import ArrayDataset
from edgekit.calibration.lazy import LazyImages
from edgekit.core.errors import DataError

if TYPE_CHECKING:
    import torch

__all__ = ["as_dataset", "inputs_array", "labels_array", "sample_inputs"]


def sample_inputs(data: Any, n: int, *, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` input tensors (N, C, H, W float32) drawn from any supported data form.

    Only the drawn samples are decoded. An ``ArrayDataset`` gives a stratified draw (every
    class in a small subset); other forms a seeded random one.
    """
    import torch

    if isinstance(data, ArrayDataset):
        if len(data) == 0:
            raise DataError("the calibration data set is empty")
        x = data.x if n >= len(data) else data.subset(n, seed=seed).x
        return torch.as_tensor(np.ascontiguousarray(x[:], dtype=np.float32))
    x = inputs_array(data)
    if len(x) == 0:
        raise DataError("the calibration data set is empty")
    if n < len(x):
        x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:n])]
    return torch.as_tensor(np.ascontiguousarray(x[:], dtype=np.float32))


def inputs_array(data: Any) -> np.ndarray | LazyImages:
    """The inputs of ``data`` as float32 (N, C, H, W): a numpy array, or lazy images that
    decode what is indexed (``x[a:b]``, ``x[idx]``) for data read from files or Datasets."""
    if isinstance(data, ArrayDataset):
        return data.x
    if isinstance(data, tuple) and len(data) == 2:
        return _array_inputs(data[0])
    if hasattr(data, "shape"):
        return _array_inputs(data)
    samples = map_style(data)
    return lazy_inputs(samples, type(samples).__name__, labelled=False)


def labels_array(data: Any) -> np.ndarray | None:
    """The labels of ``data``, or None for bare inputs."""
    if isinstance(data, ArrayDataset):
        return data.y
    if isinstance(data, tuple) and len(data) == 2:
        return to_numpy(data[1])
    if hasattr(data, "shape"):
        return None
    samples = map_style(data)
    first = samples[0] if len(samples) else None
    if not (isinstance(first, (tuple, list)) and len(first) == 2):
        return None  # bare inputs: nothing to score against
    return read_labels(samples, type(samples).__name__)


def _array_inputs(x: Any) -> np.ndarray | LazyImages:
    if isinstance(x, LazyImages):
        return x
    x = to_numpy(x).astype(np.float32, copy=False)
    if x.ndim != 4:
        raise DataError(f"inputs must be N×C×H×W, got shape {tuple(x.shape)}")
    return x
