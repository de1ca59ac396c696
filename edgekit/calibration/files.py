"""User data as numpy arrays (.npy pair / .npz), read lazily.

An ``.npy`` file is memory-mapped (``mmap_mode="r"``): each batch reads and converts its
own rows, so memory follows the batch size. An ``.npz`` (a zip) cannot be mapped; its
stored array is held as saved (uint8 stays uint8) and converted per batch. Every problem
is a DataError naming the offending path. Files are read with ``allow_pickle=False``: an
object array is refused, never unpickled. Image folders are in ``folders.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit.calibration.dataset import ArrayDataset
from edgekit.calibration.folders import image_folder
from edgekit.calibration.lazy import LazyImages
from edgekit.calibration.preprocess import Preprocess, preprocess_dataset
from edgekit.core.errors import DataError

__all__ = ["image_folder", "numpy_arrays"]

RANGE_CHECK_BYTES = 1 << 26  # float files are range-checked 64 MiB at a time

def numpy_arrays(path: str | os.PathLike[str], *, num_classes: int | None = None,
                 input_size: int | None = None, channels: int | None = None,
                 name: str | None = None, preprocess: Preprocess | None = None
                 ) -> ArrayDataset:
    """Load ``x`` and ``y`` from an ``.npz`` (arrays "x", "y") or an ``.npy`` with labels beside;
    without ``y`` (no "y" array, no labels file beside) the inputs are read unlabelled.

    For ``DIR/x.npy`` (or ``DIR/NAME_x.npy``) the labels are ``DIR/y.npy`` (``DIR/NAME_y.npy``);
    a directory holding ``x.npy`` and ``y.npy`` works too. ``x`` is uint8 (0–255) or float
    in [0, 1], shaped (N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1/3/4; ``y`` is
    integer, (N,) for classification or (N, H, W) for segmentation. ``x`` is read lazily;
    ``y`` is loaded whole.
    """
    pre = (preprocess or Preprocess()).resolved(input_size, channels)
    path = Path(path)
    if path.is_dir():
        path = path / "x.npy"
    if path.suffix == ".npz":
        arrays = _load(path)
        if "x" not in arrays.files:
            raise DataError(f"{path}: .npz lacks array 'x' (and 'y' for labels)")
        raw = _read(path, arrays, "x")
        y = _read(path, arrays, "y") if "y" in arrays.files else None
    elif path.suffix == ".npy":
        y_path = _labels_beside(path)
        raw, y = _load(path, mmap=True), None if y_path is None else _load(y_path)
    else:
        raise DataError(f"{path}: expected a .npz file, an .npy file or a folder with x.npy")
    x = _lazy_images(path, raw)
    if y is None:  # inputs without labels
        return preprocess_dataset(ArrayDataset.unlabelled(x, name or str(path)), pre)
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: labels must be integers, got {y.dtype}")
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} samples but y has {len(y)}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DataError(f"{path}: labels must be >= 0, found {int(y.min())}")
    task = "classification" if y.ndim == 1 else "segmentation"
    if task == "segmentation" and y.shape[1:] != x.shape[2:]:
        raise DataError(f"{path}: per-pixel labels {y.shape} do not match images {x.shape}")
    found = int(y.max()) + 1 if y.size else 1
    if num_classes is not None and found > num_classes:
        raise DataError(f"{path}: label {found - 1} >= num_classes {num_classes}")
    ds = ArrayDataset(x=x, y=y, task=task, num_classes=num_classes or found,
                      name=name or str(path))
    return preprocess_dataset(ds, pre)


def _labels_beside(x_path: Path) -> Path | None:
    stem = x_path.stem
    candidates = []
    if stem.endswith("x"):
        candidates.append(x_path.with_name(stem[:-1] + "y.npy"))
    candidates.append(x_path.with_name("y.npy"))
    for cand in candidates:
        if cand.is_file() and cand != x_path:
            return cand
    return None  # inputs without labels


def _load(path: Path, *, mmap: bool = False):
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read numpy data ({exc})") from None


def _read(path: Path, arrays, key: str) -> np.ndarray:
    try:
        return arrays[key]
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read array {key!r} ({exc})") from None


def _lazy_images(path: Path, raw: np.ndarray) -> LazyImages:
    """Check the stored images (dtype, range, layout) and read them as float32 N×C×H×W."""
    if raw.dtype != np.uint8 and not np.issubdtype(raw.dtype, np.floating):
        raise DataError(f"{path}: images must be uint8 or float, got {raw.dtype}")
    if raw.ndim not in (3, 4):
        raise DataError(f"{path}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C), "
                        f"got shape {raw.shape}")
    if raw.dtype != np.uint8:
        _check_float_range(path, raw)
    rows = _StoredRows(raw)
    sample = rows(np.zeros(0, dtype=np.int64)).shape[1:]
    return LazyImages(rows, len(raw), sample, source=str(path))


def _check_float_range(path: Path, raw: np.ndarray) -> None:
    """Float images must be finite and in [0, 1]: checked a chunk at a time, so a
    memory-mapped file is never read into memory whole."""
    step = max(1, RANGE_CHECK_BYTES // max(1, raw[:1].nbytes))
    lo, hi = np.inf, -np.inf
    for start in range(0, len(raw), step):
        part = np.asarray(raw[start:start + step], dtype=np.float32)
        if part.size and not np.isfinite(part).all():
            raise DataError(f"{path}: images contain NaN or infinite values")
        if part.size:
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"{path}: float images must lie in [0, 1], found "
                        f"{lo:.3g}..{hi:.3g} (or save uint8 0-255)")


class _StoredRows:
    """Loader: rows of the stored array (maybe memory-mapped) as float32 (k, C, H, W) in
    [0, 1], converted exactly as a whole-array read would be."""

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        x = np.asarray(self.raw[np.asarray(positions)])
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / np.float32(255.0)
        else:
            x = x.astype(np.float32)
        if x.ndim == 3:
            return np.ascontiguousarray(x[:, None])
        if x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)  # channels last
        if x.shape[1] == 4:
            x = x[:, :3]  # drop alpha
        return np.ascontiguousarray(x)
