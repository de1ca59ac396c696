"""Preprocessing as data: how stored images become a model's input tensor.

A ``Preprocess`` is plain, JSON-able data (``to_dict``/``from_dict``) so the exact input
recipe can be written into manifests and model files. The same steps apply to image
folders, numpy files and the embedded sets, in this order: geometry (``input_size`` by
``resize`` policy), channels, scaling to [0, 1], ``channel_order``, then ``(x - mean) / std``
per channel. ``Preprocess()`` changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np

from edgekit.calibration.dataset import (
    ArrayDataset,
    check_channel_conversion,
    convert_channels,
    fit_images,
    resize_plane,
)
from edgekit.calibration.lazy import LazyImages
from edgekit.core.errors import InvalidInputError

RESIZE_POLICIES = ("centre-crop", "letterbox")
CHANNEL_ORDERS = ("RGB", "BGR")
# preprocessing in one word: name -> Preprocess fields. "imagenet" is torchvision's
# evaluation transform: resize the short side to 256, centre-crop 224 (the centre 224/256
# of the short side, resized to 224), RGB, ImageNet's mean and std
PRESETS: dict[str, dict[str, Any]] = {
    "imagenet": {"input_size": 224, "resize": "centre-crop", "crop_fraction": 224 / 256,
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                 "channel_order": "RGB"},
}


@dataclass(frozen=True)
class Preprocess:
    """How to turn images into inputs.

    ``input_size``: square side in pixels (None keeps the stored size; then all images must
    share one size). ``resize``: ``"centre-crop"`` takes the centre square and resizes it;
    ``"letterbox"`` fits the whole image inside, keeping its aspect, and pads with zeros.
    ``crop_fraction`` (centre-crop with an ``input_size`` only): the side of the centre
    square as a share of the short side (0.875: "resize to 256, crop 224").
    ``channels``: 1 (grey) or 3. ``channel_order``: ``"BGR"`` reverses RGB images (models
    trained through OpenCV). ``mean``/``std``: per channel of the output, applied after
    scaling to [0, 1] as ``(x - mean) / std``; results outside [0, 1] are kept.
    """

    input_size: int | None = None
    resize: str = "centre-crop"
    crop_fraction: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "RGB"
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.input_size is not None:
            if not isinstance(self.input_size, Integral) or isinstance(self.input_size, bool) \
                    or self.input_size < 1:
                raise InvalidInputError(f"input_size must be an integer >= 1, "
                                        f"got {self.input_size!r}")
            object.__setattr__(self, "input_size", int(self.input_size))
        if self.resize not in RESIZE_POLICIES:
            raise InvalidInputError(f"resize must be one of {RESIZE_POLICIES}, "
                                    f"got {self.resize!r}")
        self._check_crop_fraction()
        if self.channel_order not in CHANNEL_ORDERS:
            raise InvalidInputError(f"channel_order must be one of {CHANNEL_ORDERS}, "
                                    f"got {self.channel_order!r}")
        if self.channels is not None and self.channels not in (1, 3):
            raise InvalidInputError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.channels == 1 and self.channel_order == "BGR":
            raise InvalidInputError("channel_order 'BGR' needs 3 channels, not channels=1")
        for name in ("mean", "std"):
            object.__setattr__(self, name, _per_channel(name, getattr(self, name),
                                                        self.channels))
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise InvalidInputError(f"mean has {len(self.mean)} values but std has "
                                    f"{len(self.std)}")
        if self.std is not None and min(self.std) <= 0:
            raise InvalidInputError(f"std values must be > 0, got {self.std}")

    def _check_crop_fraction(self) -> None:
        fraction = self.crop_fraction
        if not isinstance(fraction, Real) or isinstance(fraction, bool) \
                or not 0 < fraction <= 1:
            raise InvalidInputError(f"crop_fraction must be a number in (0, 1], "
                                    f"got {fraction!r}")
        object.__setattr__(self, "crop_fraction", float(fraction))
        if fraction < 1 and (self.resize != "centre-crop" or self.input_size is None):
            raise InvalidInputError("crop_fraction < 1 needs resize 'centre-crop' and an "
                                    "input_size (it crops the centre, then resizes)")

    @property
    def normalizes(self) -> bool:
        """Whether the values change after scaling to [0, 1] (channel order or mean/std)."""
        return self.channel_order == "BGR" or self.mean is not None or self.std is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (lists for mean/std)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("mean", "std"):
            out[name] = None if out[name] is None else list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocess:
        """The inverse of ``to_dict``; missing keys take their defaults."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"preprocess must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown preprocess key(s) {unknown}; known: "
                                    f"{sorted(known)}")
        return cls(**dict(data))

    def resolved(self, input_size: int | None = None, channels: int | None = None
                 ) -> Preprocess:
        """This preprocessing with ``input_size``/``channels`` filled in where it has none
        (a model's input size, say); a different value already set is an error."""
        changes: dict[str, Any] = {}
        for name, value in (("input_size", input_size), ("channels", channels)):
            mine = getattr(self, name)
            if value is None or mine == value:
                continue
            if mine is not None:
                raise InvalidInputError(f"{name}={value} conflicts with the preprocessing's "
                                        f"{name}={mine}")
            changes[name] = value
        return replace(self, **changes) if changes else self

    def check_channels(self, channels: int, where: str) -> None:
        """Mean/std must have one value per channel of the data they apply to."""
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and len(values) != channels:
                raise InvalidInputError(f"{where}: {name} has {len(values)} value(s) but the "
                                        f"images have {channels} channel(s)")

    def finish(self, x: np.ndarray) -> np.ndarray:
        """Channel order and (x - mean) / std on a float32 (N, C, H, W) batch in [0, 1]."""
        if self.channel_order == "BGR" and x.shape[1] == 3:
            x = x[:, ::-1]
        # one new array, then in place: a batch costs two copies of itself at most
        out = np.array(x, dtype=np.float32, order="C")
        if self.mean is not None:
            out -= np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        if self.std is not None:
            out /= np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return out


def _per_channel(name: str, values: Any, channels: int | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise InvalidInputError(f"{name} must be a list of 1 or 3 numbers, got {values!r}")
    out = tuple(values)
    if not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)
               for v in out):
        raise InvalidInputError(f"{name} values must be finite numbers, got {values!r}")
    if len(out) != (channels or len(out)) or len(out) not in (1, 3):
        want = channels or "1 or 3"
        raise InvalidInputError(f"{name} must have {want} value(s) (one per channel), "
                                f"got {len(out)}")
    return tuple(float(v) for v in out)


def preprocess_dataset(data: ArrayDataset, pre: Preprocess, *, pad_limit: int = 0
                       ) -> ArrayDataset:
    """``data`` with ``pre`` applied to its images (and per-pixel labels' geometry).

    A lazy ``x`` stays lazy: each step runs per decoded batch. ``pad_limit`` keeps the
    embedded digits' rule (growth up to that many pixels is zero padding).
    """
    x, y = data.x, data.y
    size = pre.input_size
    if size is not None and (tuple(x.shape[2:]) != (size, size) or pre.crop_fraction < 1):
        geometry = partial(fit_geometry, size=size, resize=pre.resize, pad_limit=pad_limit,
                           crop_fraction=pre.crop_fraction)
        x = _apply(x, geometry, (x.shape[1], size, size))
        if data.task == "segmentation":
            y = geometry(y, nearest=True)
    if pre.channels is not None and x.shape[1] != pre.channels:
        check_channel_conversion(int(x.shape[1]), pre.channels)  # before anything decodes
        x = _apply(x, partial(convert_channels, channels=pre.channels),
                   (pre.channels, *x.shape[2:]))
    pre.check_channels(int(x.shape[1]), data.name)
    if pre.normalizes:
        x = _apply(x, pre.finish, tuple(x.shape[1:]))
    if x is data.x and y is data.y:
        return data
    return replace(data, x=x, y=y)


def _apply(x: Any, step: Any, sample_shape: tuple[int, ...]) -> Any:
    """Run ``step`` now on an array, or per decoded batch on a lazy one."""
    if isinstance(x, LazyImages):
        return x.map(step, sample_shape)
    return step(x)


def centre_box(width: int, height: int, fraction: float = 1.0) -> tuple[int, int, int]:
    """(left, top, side) of the centred square of a width×height image, its side
    ``fraction`` of the short side."""
    side = max(1, round(min(width, height) * fraction))
    return (width - side) // 2, (height - side) // 2, side


def letterbox_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(new width, new height, left, top) of a width×height image fitted into size×size."""
    scale = size / max(width, height)
    new_w = max(1, min(size, round(width * scale)))
    new_h = max(1, min(size, round(height * scale)))
    return new_w, new_h, (size - new_w) // 2, (size - new_h) // 2


def fit_geometry(a: np.ndarray, size: int, resize: str = "centre-crop", *,
                 pad_limit: int = 0, nearest: bool = False,
                 crop_fraction: float = 1.0) -> np.ndarray:
    """(…, H, W) arrays to size×size by ``resize`` policy (bilinear, or nearest for labels).

    Square inputs give the same result under both policies (today's ``fit_images``).
    """
    h, w = a.shape[-2:]
    if h == w or resize == "centre-crop":
        left, top, side = centre_box(w, h, crop_fraction)
        return fit_images(a[..., top:top + side, left:left + side], size,
                          pad_limit=pad_limit, nearest=nearest)
    new_w, new_h, left, top = letterbox_box(w, h, size)
    flat = a.reshape(-1, h, w)
    out = np.zeros((len(flat), size, size), dtype=a.dtype)  # the zero padding
    for i, plane in enumerate(flat):
        out[i, top:top + new_h, left:left + new_w] = resize_plane(plane, (new_w, new_h),
                                                                  nearest=nearest)
    return out.reshape(*a.shape[:-2], size, size)
