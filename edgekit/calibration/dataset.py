"""ArrayDataset: a data set of images ``x`` and labels ``y``, plus the size/channel adapters.

``x`` is a float32 numpy array or a ``LazyImages`` view that decodes samples when indexed
(image folders, numpy files, users' Datasets), so memory follows the batch size. Everything
here is numpy (+ Pillow for resizing), no torch, so data can be prepared on a board that
only runs the benchmark agent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from edgekit.calibration.lazy import LazyImages
from edgekit.core.errors import DataError, InvalidInputError, MissingBackendError

TASKS = ("classification", "segmentation")


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Images ``x`` (float32, N×C×H×W) and labels ``y`` (int64).

    ``x`` lies in [0, 1] unless a ``Preprocess`` normalized it (or a user's Dataset did);
    it is a numpy array or a ``LazyImages`` view (``x[idx]`` decodes those samples only).
    ``y`` is (N,) class indices for classification, or (N, H, W) per-pixel classes for
    segmentation. ``num_classes`` counts every class the task has, seen in ``y`` or not.
    """

    x: np.ndarray | LazyImages
    y: np.ndarray
    task: str
    num_classes: int
    name: str
    class_names: tuple[str, ...] | None = None
    # False: the data came without labels; ``y`` holds zeros until a model's own outputs
    # stand in for them (``unlabelled`` makes such a set, ``with_labels`` fills it)
    labelled: bool = True

    def __post_init__(self) -> None:
        where = self.name
        if self.task not in TASKS:
            raise DataError(f"{where}: task must be one of {TASKS}, not {self.task!r}")
        x, y = self.x, self.y
        if not isinstance(x, (np.ndarray, LazyImages)) or x.dtype != np.float32 \
                or x.ndim != 4:
            raise DataError(f"{where}: x must be a float32 array of shape (N, C, H, W) or "
                            f"lazy images, got {_describe(x)}")
        if not isinstance(y, np.ndarray) or y.dtype != np.int64:
            raise DataError(f"{where}: y must be an int64 array, got {_describe(y)}")
        if len(x) != len(y):
            raise DataError(f"{where}: x has {len(x)} samples but y has {len(y)}")
        want_y = (len(x),) if self.task == "classification" else (len(x), *x.shape[2:])
        if y.shape != want_y:
            raise DataError(f"{where}: {self.task} labels must have shape {want_y}, got {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise DataError(f"{where}: labels must lie in [0, {self.num_classes - 1}], "
                            f"found {int(y.min())}..{int(y.max())}")

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def unlabelled(cls, x: np.ndarray | LazyImages, name: str) -> ArrayDataset:
        """Inputs without labels (a folder of images, an ``x.npy`` alone, a Dataset of
        inputs): enough to calibrate; a model's outputs become its labels (``with_labels``)."""
        return cls(x=x, y=np.zeros(len(x), dtype=np.int64), task="classification",
                   num_classes=1, name=name, labelled=False)

    def with_labels(self, y: np.ndarray, num_classes: int) -> ArrayDataset:
        """The same inputs with ``y`` (a model's predicted classes) as labels; the task
        follows their shape, and ``labelled`` stays what it was."""
        task = "classification" if y.ndim == 1 else "segmentation"
        return replace(self, y=y.astype(np.int64), task=task, num_classes=num_classes)

    def __repr__(self) -> str:
        return (f"ArrayDataset(name={self.name!r}, task={self.task!r}, n={len(self)}, "
                f"input_shape={self.input_shape}, num_classes={self.num_classes})")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        return tuple(int(d) for d in self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int, seed: int = 0) -> ArrayDataset:
        """``n`` samples drawn without replacement (all of them when ``n >= len(self)``).

        For classification the draw is stratified, so a small subset still has every class.
        """
        return self._take(self.subset_indices(n, seed))

    def subset_indices(self, n: int, seed: int = 0) -> np.ndarray:
        """The sorted rows ``subset(n, seed)`` takes."""
        if n < 1:
            raise InvalidInputError(f"subset size must be >= 1, got {n}")
        if n >= len(self):
            return np.arange(len(self))
        rng = np.random.default_rng(seed)
        if self.task == "classification":
            order = _stratified_order(self.y, rng)
        else:
            order = rng.permutation(len(self))
        return np.sort(order[:n])

    def split(self, holdout: float, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
        """(rest, held-out) with ``holdout`` of the samples held out (stratified by class)."""
        if not 0.0 < holdout < 1.0:
            raise InvalidInputError(f"holdout fraction must be in (0, 1), got {holdout}")
        n_held = max(1, round(len(self) * holdout))
        if n_held >= len(self):
            raise DataError(f"{self.name}: {len(self)} samples are too few to hold out a split")
        rng = np.random.default_rng(seed)
        if self.task == "classification":
            order = _stratified_order(self.y, rng)
        else:
            order = rng.permutation(len(self))
        held = np.sort(order[:n_held])
        rest = np.sort(order[n_held:])
        return self._take(rest, "train"), self._take(held, "holdout")

    def resized(self, input_size: int | None = None, channels: int | None = None, *,
                pad_limit: int = 0) -> ArrayDataset:
        """The same samples at ``input_size``² pixels and ``channels`` channels.

        Growth of at most ``pad_limit`` pixels is zero padding around the image (e.g. MNIST's
        28² digit in LeNet-5's 32² frame); other sizes are resized (bilinear for images,
        nearest for segmentation labels). Lazy images stay lazy: the resize and channel
        conversion run on each decoded batch.
        """
        x, y = self.x, self.y
        size = _square_size(input_size, x.shape[2:]) if input_size is not None else None
        if size is not None and (x.shape[2], x.shape[3]) != (size, size):
            fit = partial(fit_images, size=size, pad_limit=pad_limit)
            x = x.map(fit, (x.shape[1], size, size)) if isinstance(x, LazyImages) else fit(x)
            if self.task == "segmentation":
                y = fit_images(y, size, pad_limit=pad_limit, nearest=True)
        if channels is not None and x.shape[1] != channels:
            check_channel_conversion(int(x.shape[1]), channels)  # before anything decodes
            to = partial(convert_channels, channels=channels)
            x = x.map(to, (channels, *x.shape[2:])) if isinstance(x, LazyImages) else to(x)
        if x is self.x and y is self.y:
            return self
        return replace(self, x=x, y=y)

    def materialized(self) -> ArrayDataset:
        """The same data set with every image decoded into one numpy array (fast to index
        again and again, at the memory cost of the whole set)."""
        if isinstance(self.x, LazyImages):
            return replace(self, x=np.asarray(self.x))
        if isinstance(self.x, np.memmap):
            return replace(self, x=np.array(self.x, dtype=np.float32))
        return self

    def _take(self, idx: np.ndarray, suffix: str = "") -> ArrayDataset:
        name = f"{self.name}[{suffix}]" if suffix else self.name
        x = self.x
        if isinstance(x, np.memmap):  # indexing would copy the rows into memory now
            x = LazyImages.from_array(x, source=self.name)
        x = x.take(idx) if isinstance(x, LazyImages) else x[idx]
        return replace(self, x=x, y=self.y[idx], name=name)


def _describe(a: object) -> str:
    if isinstance(a, (np.ndarray, LazyImages)):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices interleaved class by class (each class shuffled), so any prefix is balanced."""
    rank = np.empty(len(y), dtype=np.float64)
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        # position within the class, spread over [0, 1), plus a tiny jitter to mix classes
        rank[rng.permutation(members)] = (np.arange(len(members)) + rng.random()) / len(members)
    return np.argsort(rank, kind="stable")


def _square_size(input_size: int | tuple[int, ...] | list[int], current: tuple[int, ...]) -> int:
    if isinstance(input_size, (tuple, list)):
        sizes = {int(s) for s in input_size}
        if len(sizes) != 1:
            raise InvalidInputError(f"only square inputs are supported, got {tuple(input_size)}")
        input_size = sizes.pop()
    size = int(input_size)
    if size < 1:
        raise InvalidInputError(f"input_size must be >= 1, got {size}")
    return size


def fit_images(a: np.ndarray, size: int, *, pad_limit: int = 0, nearest: bool = False
               ) -> np.ndarray:
    """Bring (N, C, H, W) or (N, H, W) arrays to size×size by centred zero padding or resizing."""
    h, w = a.shape[-2:]
    if (h, w) == (size, size):
        return a
    if h == w and 0 < size - h <= pad_limit:
        before = (size - h) // 2
        pad = [(0, 0)] * (a.ndim - 2) + [(before, size - h - before)] * 2
        return np.pad(a, pad)
    flat = a.reshape(-1, h, w)
    out = np.empty((len(flat), size, size), dtype=a.dtype)
    for i, plane in enumerate(flat):
        out[i] = resize_plane(plane, (size, size), nearest=nearest)
    return out.reshape(*a.shape[:-2], size, size)


def resize_plane(plane: np.ndarray, size: tuple[int, int], *, nearest: bool = False
                 ) -> np.ndarray:
    """One (H, W) plane resized to ``size`` = (width, height): bilinear in float32, or
    nearest for integer labels. A plane in [0, 1] stays in [0, 1] (rounding can step out);
    a normalized one is not clipped."""
    image = pil_image()
    method = image.Resampling.NEAREST if nearest else image.Resampling.BILINEAR
    mode_dtype = np.int32 if nearest else np.float32  # Pillow's "I" and "F" modes
    img = image.fromarray(np.ascontiguousarray(plane, dtype=mode_dtype))
    out = np.asarray(img.resize(size, method))
    if not nearest and plane.size and plane.min() >= 0.0 and plane.max() <= 1.0:
        out = np.clip(out, 0.0, 1.0)
    return out


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """Repeat a grey channel to 3, or turn RGB into grey (ITU-R 601 luma)."""
    have = x.shape[1]
    check_channel_conversion(have, channels)
    if have == channels:
        return x
    if have == 1:
        return np.repeat(x, channels, axis=1)
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
    return (x * luma).sum(axis=1, keepdims=True, dtype=np.float32)


def check_channel_conversion(have: int, channels: int) -> None:
    """Grey repeats to any count, RGB becomes grey; nothing else converts."""
    if have != channels and have != 1 and not (have == 3 and channels == 1):
        raise InvalidInputError(f"cannot convert {have}-channel images to {channels} channels")


def pil_image():
    """PIL.Image, or MissingBackendError naming the extra that installs Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise MissingBackendError(
            "Pillow is not installed (needed to read and resize images): "
            "pip install 'edgekit[torch]'") from None
    return Image
