"""Image folders (``root/<class>/<image>``, PNG/JPEG), read lazily.

Only the file paths and labels are held; each batch ``x[idx]`` decodes its own images, so
memory follows the batch size, not the folder's. Every image is decoded once up front (and
dropped: only its size and mode are kept), so a bad or truncated file fails before any
training starts, not after the model loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgekit.calibration.dataset import ArrayDataset, pil_image
from edgekit.calibration.lazy import LazyImages
from edgekit.calibration.preprocess import Preprocess, centre_box, letterbox_box
from edgekit.core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_folder(root: str | os.PathLike[str], *, input_size: int | None = None,
                 channels: int | None = None, name: str | None = None,
                 preprocess: Preprocess | None = None) -> ArrayDataset:
    """Read ``root/<class>/<image>`` (PNG/JPEG) lazily; classes follow sorted folder names.
    A folder of images without class folders is read as unlabelled inputs.

    Without ``channels``, the set is grey (1 channel) when every image is grey, else RGB.
    Without ``input_size`` every image must have the same size; with it, each image is
    brought to ``input_size``² by the ``preprocess.resize`` policy (default: centre square,
    resized). ``input_size``/``channels`` fill in what ``preprocess`` leaves open.
    """
    pre = (preprocess or Preprocess()).resolved(input_size, channels)
    root = Path(root)
    class_dirs, files = _list_folder(root)
    image = pil_image()
    all_grey, first = True, None
    for path, _ in files:  # decoded in full: a truncated file fails now, not mid-run
        mode, size = _header(image, path)
        all_grey = all_grey and mode in GREY_MODES
        if first is None:
            first = (path, size)
        elif pre.input_size is None and size != first[1]:
            raise DataError(f"{path}: image is {size[0]}x{size[1]} but {first[0].name} is "
                            f"{first[1][0]}x{first[1][1]}; pass input_size to resize them all")
    assert first is not None  # _list_folder refuses empty class folders
    chans = pre.channels or (1 if all_grey else 3)
    pre.check_channels(chans, str(root))
    width, height = first[1] if pre.input_size is None else (pre.input_size,) * 2
    shape = (chans, height, width)
    source = ImageFiles(tuple(str(p) for p, _ in files), shape, pre.input_size, pre.resize,
                        pre.crop_fraction)
    x = LazyImages(source, len(files), shape, source=str(root))
    if pre.normalizes:
        x = x.map(pre.finish, shape)
    if not class_dirs:  # images without class folders: inputs only
        return ArrayDataset.unlabelled(x, name or str(root))
    return ArrayDataset(x=x, y=np.array([lbl for _, lbl in files], dtype=np.int64),
                        task="classification", num_classes=len(class_dirs),
                        name=name or str(root), class_names=tuple(p.name for p in class_dirs))


def _list_folder(root: Path) -> tuple[list[Path], list[tuple[Path, int]]]:
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (expected root/<class>/<image>)")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        flat = _images_in(root)
        if not flat:
            raise DataError(f"{root}: no class folders and no PNG/JPEG images (expected "
                            "root/<class>/<image>, or root/<image> without labels)")
        return [], [(p, 0) for p in flat]
    files: list[tuple[Path, int]] = []
    for label, class_dir in enumerate(class_dirs):
        members = _images_in(class_dir)
        if not members:
            raise DataError(f"{class_dir}: class folder has no PNG/JPEG images")
        files.extend((p, label) for p in members)
    if len(class_dirs) < 2:
        raise DataError(f"{root}: only one class folder ({class_dirs[0].name!r}); "
                        "classification needs >= 2 classes (root/<class>/<image>)")
    return class_dirs, files


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


class ImageFiles:
    """Loader: decodes the images at the given positions into a float32 (k, C, H, W) batch."""

    def __init__(self, paths: tuple[str, ...], shape: tuple[int, int, int],
                 input_size: int | None, resize: str, crop_fraction: float = 1.0) -> None:
        self.paths, self.shape, self.input_size, self.resize = paths, shape, input_size, resize
        self.crop_fraction = crop_fraction
        self.mode = "L" if shape[0] == 1 else "RGB"

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        image = pil_image()
        out = np.empty((len(positions), *self.shape), dtype=np.float32)
        for row, i in enumerate(positions):
            path = Path(self.paths[int(i)])
            arr = self._read(image, path)
            if arr.shape != self.shape:  # the file changed since its header was read
                raise DataError(f"{path}: image is {arr.shape[2]}x{arr.shape[1]}, expected "
                                f"{self.shape[2]}x{self.shape[1]}; pass input_size to resize")
            out[row] = arr
        return out

    def _read(self, image, path: Path) -> np.ndarray:
        img = _read_image(image, path, self.mode)
        if self.input_size is not None:
            img = _fit(image, img, self.input_size, self.resize, self.crop_fraction)
        arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
        return arr[None] if self.mode == "L" else arr.transpose(2, 0, 1)


def _fit(image, img, size: int, resize: str, crop_fraction: float):
    w, h = img.size
    if resize == "centre-crop" or w == h:
        left, top, side = centre_box(w, h, crop_fraction)
        square = img.crop((left, top, left + side, top + side))
        return square.resize((size, size), image.Resampling.BILINEAR)
    new_w, new_h, left, top = letterbox_box(w, h, size)
    canvas = image.new(img.mode, (size, size), 0)  # zero padding around the fitted image
    canvas.paste(img.resize((new_w, new_h), image.Resampling.BILINEAR), (left, top))
    return canvas


def _header(image, path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) of the file, decoded in full: a header can be whole while
    the pixel data is cut short, which only decoding finds."""
    try:
        with image.open(path) as img:
            img.load()
            return img.mode, img.size
    except (OSError, ValueError, image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None


def _read_image(image, path: Path, mode: str):
    """The decoded image in ``mode`` (a new image: the file is closed on return)."""
    try:
        with image.open(path) as img:
            img.load()
            return img.convert(mode) if img.mode != mode else img.copy()
    except (OSError, ValueError, image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None
