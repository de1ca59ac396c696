"""Benchmark inputs: seeded random tensors shaped like the model's inputs, or a data file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.core.errors import DataError, InvalidInputError
from edgekit.runtime.base import TensorSpec


def random_inputs(specs: list[TensorSpec], *, seed: int, batch: int = 1) -> list[np.ndarray]:
    """Standard-normal floats; quantized inputs get the quantized image of such floats."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        shape = spec.concrete_shape(batch)
        kind = spec.dtype.kind
        if kind == "f":
            arrays.append(rng.standard_normal(shape).astype(spec.dtype))
        elif kind in "iu" and spec.dtype.itemsize == 1:
            info = np.iinfo(spec.dtype)
            if spec.scale > 0:
                q = np.round(rng.standard_normal(shape) / spec.scale) + spec.zero_point
            else:
                q = rng.integers(info.min, info.max + 1, size=shape)
            arrays.append(np.clip(q, info.min, info.max).astype(spec.dtype))
        elif kind in "iu":
            arrays.append(rng.integers(0, 100, size=shape).astype(spec.dtype))
        elif kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            raise InvalidInputError(f"no random data for input {spec.name!r} ({spec.dtype})")
    return arrays


def load_array_file(path: str | Path) -> dict[str, np.ndarray] | np.ndarray:
    """A .npy array or a .npz of named arrays, read without unpickling."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"cannot read {path.name} as .npy/.npz: {exc}") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        return {k: data[k] for k in data.files}


def file_inputs(specs: list[TensorSpec], path: str | Path) -> list[np.ndarray]:
    """Inputs from a file: one array for a one-input model, else an .npz keyed by input name."""
    data = load_array_file(path)
    if isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise DataError(f"the model has {len(specs)} inputs; give an .npz keyed by name")
        data = {specs[0].name: data}
    arrays = []
    for spec in specs:
        if spec.name not in data:
            raise DataError(f"{Path(path).name} has no array for input {spec.name!r}")
        array = data[spec.name]
        fixed = [(i, d) for i, d in enumerate(spec.shape) if d is not None]
        if array.ndim != len(spec.shape) or any(array.shape[i] != d for i, d in fixed):
            raise DataError(
                f"input {spec.name!r}: file has shape {array.shape}, model wants {spec.shape}"
            )
        if array.dtype != spec.dtype:
            if array.dtype.kind != spec.dtype.kind:
                raise DataError(f"input {spec.name!r}: dtype {array.dtype}, model {spec.dtype}")
            array = array.astype(spec.dtype)
        arrays.append(np.ascontiguousarray(array))
    return arrays
