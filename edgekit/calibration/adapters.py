"""Users' data objects as data sets: torch ``Dataset``s, ``DataLoader``s and (x, y) arrays.

A Dataset's inputs are read lazily (``dataset[i]`` per sample of a batch), with the
user's own transforms; its labels are read once, from ``dataset.targets`` when it has
them (torchvision's ImageFolder, ...), else in one pass that keeps only the labels. A
DataLoader stands for its ``dataset``: its sampler, batching and ``collate_fn`` are not used.
torch is never imported here: a DataLoader can only exist once the user imported torch.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from edgekit.calibration.dataset import ArrayDataset
from edgekit.calibration.lazy import LazyImages
from edgekit.core.errors import DataError


def as_dataset(data: Any, *, task: str | None = None, num_classes: int | None = None,
               name: str | None = None) -> ArrayDataset:
    """An ``ArrayDataset`` over ``data``: an ArrayDataset (returned as it is), an ``(x, y)``
    pair of arrays/tensors (shared, not copied when already float32/int64), or a map-style
    torch Dataset / DataLoader (or any sequence) of ``(x, y)`` samples, ``x`` C×H×W. Inputs
    alone (an N×C×H×W array or tensor, a Dataset of bare ``x``) give an unlabelled set.

    ``task`` and ``num_classes`` are inferred from the labels unless given: (N,) labels are
    classification, (N, H, W) segmentation; classes are ``len(dataset.classes)`` when the
    dataset names them, else the largest label + 1.
    """
    if isinstance(data, ArrayDataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        x = data[0]
        if not isinstance(x, LazyImages):
            x = to_numpy(x)
            x = x.astype(np.float32, copy=False) if x.dtype != np.uint8 else _scaled(x)
        return _labelled(x, to_numpy(data[1]), task, num_classes, name or "arrays", None)
    if _is_array(data):  # inputs alone
        x = to_numpy(data)
        x = x.astype(np.float32, copy=False) if x.dtype != np.uint8 else _scaled(x)
        return ArrayDataset.unlabelled(x, name or "arrays")
    samples = map_style(data)
    where = name or type(samples).__name__
    x = lazy_inputs(samples, where, labelled=False)
    y = read_labels(samples, where)
    if y is None:  # a Dataset of inputs alone
        return ArrayDataset.unlabelled(x, where)
    classes = getattr(samples, "classes", None)
    names = tuple(classes) if isinstance(classes, (list, tuple)) and classes and all(
        isinstance(c, str) for c in classes) else None
    if num_classes is None and names is not None and y.ndim == 1:
        num_classes = len(names)
    return _labelled(x, y, task, num_classes, where, names)


def _labelled(x: Any, y: np.ndarray, task: str | None, num_classes: int | None, name: str,
              class_names: tuple[str, ...] | None) -> ArrayDataset:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: labels must be integers, got {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if task is None:
        if y.ndim not in (1, 3):
            raise DataError(f"{name}: labels must be (N,) classes or (N, H, W) per pixel, "
                            f"got shape {y.shape}")
        task = "classification" if y.ndim == 1 else "segmentation"
    found = int(y.max()) + 1 if y.size else 1
    if class_names is not None and len(class_names) != (num_classes or found):
        class_names = None
    return ArrayDataset(x=x, y=y, task=task, num_classes=num_classes or found, name=name,
                        class_names=class_names)


def _is_array(data: Any) -> bool:
    """A numpy array or torch tensor of N×C×H×W inputs."""
    return isinstance(data, np.ndarray) or (type(data).__name__ == "Tensor" and \
        getattr(data, "ndim", 0) == 4)


def map_style(data: Any) -> Any:
    """The indexable samples behind ``data``: a DataLoader's dataset, or ``data`` itself."""
    torch = sys.modules.get("torch")  # no torch loaded: data cannot be a torch object
    if torch is not None:
        import torch.utils.data as tud

        if isinstance(data, tud.DataLoader):
            data = data.dataset
        if isinstance(data, tud.IterableDataset):
            raise DataError(f"{type(data).__name__} is an IterableDataset, which has no length "
                            "or indexing; pass a map-style Dataset, a DataLoader over one, or "
                            "arrays")
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        raise DataError(f"cannot read samples from {type(data).__name__}; pass an "
                        "ArrayDataset, (x, y) arrays, or a Dataset/DataLoader of (x, y) samples")
    return data


def lazy_inputs(samples: Any, where: str, *, labelled: bool) -> LazyImages:
    """The inputs of ``samples`` (``(x, y)`` pairs, or bare ``x`` unless ``labelled``) as
    lazy images; only the first sample is read here, to learn the shape."""
    try:
        n = len(samples)
    except TypeError as exc:
        raise DataError(f"{where}: has no length ({exc})") from None
    if n == 0:
        raise DataError(f"{where}: the data set is empty")
    loader = _SampleInputs(samples, where, labelled)
    return LazyImages(loader, n, loader(np.zeros(1, dtype=np.int64)).shape[1:], source=where)


def read_labels(samples: Any, where: str) -> np.ndarray | None:
    """All labels: ``samples.targets`` when it has them, else one pass over the samples;
    None when the samples are inputs alone (bare, or ``(x,)``)."""
    targets = _targets(samples)
    if targets is not None:
        return targets
    labels = []
    for i in range(len(samples)):
        item = samples[i]
        if i == 0 and _bare(item):
            return None
        labels.append(to_numpy(_pair(item, where, i)[1]))
    return np.stack(labels)


def _targets(samples: Any) -> np.ndarray | None:
    indices = getattr(samples, "indices", None)
    parent = getattr(samples, "dataset", None)
    if indices is not None and parent is not None:  # torch's Subset (random_split)
        inner = _targets(parent)
        return None if inner is None else inner[np.asarray(indices, dtype=np.int64)]
    targets = getattr(samples, "targets", None)
    if targets is None or isinstance(targets, (str, bytes)):
        return None
    try:
        out = to_numpy(targets)
    except (TypeError, ValueError):
        return None
    return out if out.ndim >= 1 and len(out) == len(samples) else None


class _SampleInputs:
    """Loader: ``samples[i]``'s input for each position, stacked into a float32 batch."""

    def __init__(self, samples: Any, where: str, labelled: bool) -> None:
        self.samples, self.where, self.labelled = samples, where, labelled

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        arrays = []
        for i in positions:
            item = self.samples[int(i)]
            if self.labelled or not _bare(item):
                x = _pair(item, self.where, int(i))[0]  # names a tuple of the wrong length
            else:  # a bare input, or an (x,) tuple
                x = item[0] if isinstance(item, (tuple, list)) else item
            arrays.append(_chw(x, self.where, int(i)))
        if len({a.shape for a in arrays}) > 1:
            raise DataError(f"{self.where}: samples have different shapes "
                            f"{sorted({a.shape for a in arrays})}; resize them in the "
                            "Dataset's transform")
        return np.stack(arrays)


def _bare(item: Any) -> bool:
    """An input without a label: not a tuple, or a 1-tuple."""
    return not isinstance(item, (tuple, list)) or len(item) == 1


def _is_pair(item: Any) -> bool:
    return isinstance(item, (tuple, list)) and len(item) == 2


def _pair(item: Any, where: str, index: int) -> tuple[Any, Any]:
    if _is_pair(item):
        return item[0], item[1]
    raise DataError(f"{where}: sample {index} must be an (x, y) pair, got {describe(item)}")


def _chw(x: Any, where: str, index: int) -> np.ndarray:
    if hasattr(x, "mode") and hasattr(x, "size") and not hasattr(x, "shape"):
        raise DataError(f"{where}: sample {index} is a PIL image; give the Dataset a "
                        "transform that returns a C×H×W tensor (e.g. ToTensor)")
    a = to_numpy(x)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise DataError(f"{where}: sample {index} input must be C×H×W, got {describe(x)}")
    if a.dtype == np.uint8:
        return _scaled(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise DataError(f"{where}: sample {index} input must be float or uint8, got {a.dtype}")
    return a.astype(np.float32, copy=False)


def _scaled(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / np.float32(255.0)


def to_numpy(a: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array, without copying when it can."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def describe(item: Any) -> str:
    """What a sample is, for messages: 'a 3-tuple (Tensor, Tensor, int)', 'dict with keys…'."""
    if isinstance(item, (tuple, list)):
        kinds = ", ".join(type(v).__name__ for v in item)
        return f"a {len(item)}-{type(item).__name__} ({kinds})"
    if isinstance(item, dict):
        return f"a dict with keys {sorted(map(str, item))}"
    shape = getattr(item, "shape", None)
    if shape is not None:
        return f"a {type(item).__name__} of shape {tuple(shape)}"
    return f"a {type(item).__name__}"
