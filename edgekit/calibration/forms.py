"""The data forms every stage accepts, read as numpy inputs (and labels).

An ``ArrayDataset`` (``.x``/``.y``), an ``(x, y)`` tuple, an array or tensor of inputs, or
a sequence of ``(x, y)`` samples (a torch ``Dataset``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import torch


def sample_inputs(data: Any, n: int, *, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` input tensors (N, C, H, W float32) drawn from any supported data form.

    Accepts an ``ArrayDataset`` (``.x``), an ``(x, y)`` tuple, a numpy array or tensor of
    inputs, or a sequence of ``(x, y)`` samples (a torch Dataset).
    """
    import numpy as np
    import torch

    x = inputs_array(data)
    if len(x) == 0:
        raise DataError("the calibration data set is empty")
    if n < len(x):
        if hasattr(data, "subset"):  # stratified draw keeps every class in a small subset
            x = inputs_array(data.subset(n, seed=seed))
        else:
            x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:n])]
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))


def inputs_array(data: Any) -> np.ndarray:
    """The inputs of ``data`` as a float32 (N, C, H, W) numpy array."""
    return _split_xy(data)[0]


def labels_array(data: Any) -> np.ndarray | None:
    return _split_xy(data)[1]


def _split_xy(data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = data
    elif hasattr(data, "shape"):
        x, y = data, None
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        items = [data[i] for i in range(len(data))]
        if items and isinstance(items[0], (tuple, list)):
            x = np.stack([_numpy(it[0]) for it in items])
            y = np.stack([_numpy(it[1]) for it in items])
        else:
            x, y = np.stack([_numpy(it) for it in items]), None
    else:
        raise DataError(f"cannot read inputs from {type(data).__name__}; pass an ArrayDataset, "
                        "(x, y) arrays or a sequence of (x, y) samples")
    x = _numpy(x).astype(np.float32, copy=False)
    if x.ndim != 4:
        raise DataError(f"inputs must be N×C×H×W, got shape {tuple(x.shape)}")
    return x, (None if y is None else _numpy(y))


def _numpy(a: Any) -> np.ndarray:
    import numpy as np

    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)
