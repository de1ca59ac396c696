"""User data: an image folder (``root/<class>/<image>``) or numpy arrays (.npy pair / .npz).

Every problem is a DataError naming the offending path. Numpy files are read with
``allow_pickle=False``: an object array is refused, never unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit.calibration.dataset import ArrayDataset, pil_image
from edgekit.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_folder(root: str | os.PathLike[str], *, input_size: int | None = None,
                 channels: int | None = None, name: str | None = None) -> ArrayDataset:
    """Read ``root/<class>/<image>`` (PNG/JPEG); class indices follow sorted folder names.

    Without ``channels``, the set is grey (1 channel) when every image is grey, else RGB.
    Without ``input_size`` every image must have the same size; with it, each image's
    centre square is resized to ``input_size``².
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (expected root/<class>/<image>)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class folders (expected root/<class>/<image>)")
    files: list[tuple[Path, int]] = []
    for label, class_dir in enumerate(class_dirs):
        members = sorted(p for p in class_dir.iterdir()
                         if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not members:
            raise DataError(f"{class_dir}: class folder has no PNG/JPEG images")
        files.extend((p, label) for p in members)

    image = pil_image()
    if channels is None:  # headers only: decoding everything twice would cost memory
        modes = [_read_image(image, path, header_only=True).mode for path, _ in files]
        channels = 1 if all(m in GREY_MODES for m in modes) else 3
    if channels not in (1, 3):
        raise DataError(f"{root}: channels must be 1 or 3, got {channels}")
    mode = "L" if channels == 1 else "RGB"

    arrays = []
    for path, _ in files:
        img = _read_image(image, path).convert(mode)
        if input_size is not None:
            img = _centre_square(img).resize((input_size, input_size), image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
        arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
        if arrays and arr.shape != arrays[0].shape:
            raise DataError(f"{path}: image is {arr.shape[2]}x{arr.shape[1]} but "
                            f"{files[0][0].name} is {arrays[0].shape[2]}x{arrays[0].shape[1]}; "
                            "pass input_size to resize them all")
        arrays.append(arr)
    return ArrayDataset(x=np.stack(arrays), y=np.array([lbl for _, lbl in files], dtype=np.int64),
                        task="classification", num_classes=len(class_dirs),
                        name=name or str(root), class_names=tuple(p.name for p in class_dirs))


def _read_image(image, path: Path, *, header_only: bool = False):
    try:
        with image.open(path) as img:
            if header_only:
                return img
            img.load()
            return img.copy()
    except (OSError, ValueError, image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None


def _centre_square(img):
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def numpy_arrays(path: str | os.PathLike[str], *, num_classes: int | None = None,
                 input_size: int | None = None, name: str | None = None) -> ArrayDataset:
    """Load ``x`` and ``y`` from an ``.npz`` (arrays "x", "y") or an ``.npy`` with labels beside.

    For ``DIR/x.npy`` (or ``DIR/NAME_x.npy``) the labels are ``DIR/y.npy`` (``DIR/NAME_y.npy``);
    a directory holding ``x.npy`` and ``y.npy`` works too. ``x`` is uint8 (0–255) or float
    in [0, 1], shaped (N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1/3/4; ``y`` is
    integer, (N,) for classification or (N, H, W) for segmentation.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "x.npy"
    if path.suffix == ".npz":
        arrays = _load(path)
        missing = {"x", "y"} - set(arrays.files)
        if missing:
            raise DataError(f"{path}: .npz lacks array(s) {sorted(missing)} (needs 'x' and 'y')")
        x, y = _read(path, arrays, "x"), _read(path, arrays, "y")
    elif path.suffix == ".npy":
        y_path = _labels_beside(path)
        x, y = _load(path), _load(y_path)
    else:
        raise DataError(f"{path}: expected a .npz file, an .npy file or a folder with x.npy")
    x = _images_nchw(path, x)
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
    return ds.resized(input_size) if input_size is not None else ds


def _labels_beside(x_path: Path) -> Path:
    stem = x_path.stem
    candidates = []
    if stem.endswith("x"):
        candidates.append(x_path.with_name(stem[:-1] + "y.npy"))
    candidates.append(x_path.with_name("y.npy"))
    for cand in candidates:
        if cand.is_file() and cand != x_path:
            return cand
    raise DataError(f"{x_path}: no labels file beside it (looked for "
                    f"{', '.join(c.name for c in candidates)})")


def _load(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read numpy data ({exc})") from None


def _read(path: Path, arrays, key: str) -> np.ndarray:
    try:
        return arrays[key]
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read array {key!r} ({exc})") from None


def _images_nchw(path: Path, x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if x.size and not np.isfinite(x).all():
            raise DataError(f"{path}: images contain NaN or infinite values")
        if x.size and (x.min() < 0.0 or x.max() > 1.0):
            raise DataError(f"{path}: float images must lie in [0, 1], found "
                            f"{float(x.min()):.3g}..{float(x.max()):.3g} (or save uint8 0-255)")
    else:
        raise DataError(f"{path}: images must be uint8 or float, got {x.dtype}")
    if x.ndim == 3:
        return np.ascontiguousarray(x[:, None])
    if x.ndim != 4:
        raise DataError(f"{path}: images must be (N, H, W), (N, C, H, W) or (N, H, W, C), "
                        f"got shape {x.shape}")
    if x.shape[1] not in (1, 3, 4) and x.shape[3] in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # channels last
    if x.shape[1] == 4:
        x = x[:, :3]  # drop alpha
    return np.ascontiguousarray(x)

