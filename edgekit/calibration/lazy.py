"""LazyImages: a float32 (N, C, H, W) array whose samples are decoded only when indexed.

Image folders, numpy files and users' torch Datasets are read through it, so memory
depends on the batch a consumer asks for, not on the size of the data set. It supports
what the training, evaluation and calibration code does with ``x``: ``len``, ``shape``,
``dtype``, ``ndim``, ``x[i]``, ``x[a:b]``, ``x[index_array]`` (each a real numpy array),
``take(index)`` (another lazy view, nothing decoded) and ``np.asarray(x)`` (everything).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from edgekit.core.errors import DataError

# A loader maps positions into its source to a float32 (k, C, H, W) batch; a step maps such
# a batch to another (resize, channel conversion, normalization): both per-sample functions.
Loader = Callable[[np.ndarray], np.ndarray]
Step = Callable[[np.ndarray], np.ndarray]

MATERIALIZE_CHUNK = 256  # samples decoded at a time by np.asarray(x) and iteration


class LazyImages:
    """A read-only float32 (N, C, H, W) array view that decodes samples on demand.

    ``load(positions)`` returns the samples at those positions of the source (``length`` of
    them, each ``sample_shape``). Views share the loader: ``take`` keeps an index array,
    ``map`` appends a per-batch step; neither decodes anything.
    """

    __slots__ = ("_index", "_length", "_load", "_sample_shape", "_steps", "source")

    def __init__(self, load: Loader, length: int, sample_shape: tuple[int, int, int], *,
                 source: str = "", index: np.ndarray | None = None,
                 steps: tuple[Step, ...] = ()) -> None:
        if len(sample_shape) != 3:
            raise DataError(f"{source or 'lazy images'}: samples must be C×H×W, "
                            f"got shape {tuple(sample_shape)}")
        self._load = load
        self._length = int(length)
        self._sample_shape = tuple(int(d) for d in sample_shape)
        self._index = None if index is None else np.asarray(index, dtype=np.int64)
        self._steps = tuple(steps)
        self.source = source  # what the samples come from, for messages

    @classmethod
    def from_array(cls, array: np.ndarray, *, source: str = "array") -> LazyImages:
        """A lazy view of a float32 (N, C, H, W) array, e.g. a memory map: only the rows
        asked for are read (a copy per batch, never of the whole array)."""
        if array.ndim != 4:
            raise DataError(f"{source}: images must be N×C×H×W, got shape {array.shape}")
        return cls(_ArrayRows(array), len(array), array.shape[1:], source=source)

    # -- what an array looks like ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self._sample_shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self._length if self._index is None else len(self._index)

    def __repr__(self) -> str:
        return f"LazyImages(shape={self.shape}, source={self.source!r})"

    # -- views (no decoding) --------------------------------------------------------------
    def take(self, indices: Any) -> LazyImages:
        """The samples at ``indices`` (ints or a boolean mask) as another lazy view."""
        positions = self._positions(indices)
        return LazyImages(self._load, self._length, self._sample_shape, source=self.source,
                          index=positions, steps=self._steps)

    def map(self, step: Step, sample_shape: tuple[int, ...]) -> LazyImages:
        """A view whose batches pass through ``step`` (a per-sample function on batches)
        after decoding; ``sample_shape`` is the C×H×W it produces."""
        return LazyImages(self._load, self._length, tuple(sample_shape),  # type: ignore[arg-type]
                          source=self.source, index=self._index, steps=(*self._steps, step))

    # -- decoding -------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # x[samples, channel, rows, cols]: decode, then slice
            if not key:
                return self[slice(None)]
            head, rest = key[0], key[1:]
            out = self[head]
            return out[rest] if _is_int(head) else out[(slice(None), *rest)]
        if key is Ellipsis:
            return self[slice(None)]
        if _is_int(key):
            n = len(self)
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for {n} samples")
            return self._decode(self._source_positions(np.array([i % n])))[0]
        return self._decode(self._positions(key))

    def __iter__(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self), MATERIALIZE_CHUNK):
            yield from self[start:start + MATERIALIZE_CHUNK]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("lazy images cannot become an array without decoding a copy")
        # everything at once: one output array, filled a chunk at a time
        out = np.empty(self.shape, dtype=np.float32)
        for start in range(0, len(self), MATERIALIZE_CHUNK):
            out[start:start + MATERIALIZE_CHUNK] = self[start:start + MATERIALIZE_CHUNK]
        return out if dtype is None else out.astype(dtype, copy=False)

    def _positions(self, key: Any) -> np.ndarray:
        """Source positions of ``key`` (a slice, int array or boolean mask) into this view."""
        n = len(self)
        if isinstance(key, slice):
            local = np.arange(n)[key]
        else:
            local = np.asarray(key)
            if local.dtype == bool:
                if local.shape != (n,):
                    raise IndexError(f"boolean index of shape {local.shape} does not match "
                                     f"{n} samples")
                local = np.flatnonzero(local)
            elif local.ndim != 1 or not (local.size == 0 or np.issubdtype(local.dtype,
                                                                          np.integer)):
                raise IndexError(f"lazy images take an int, a slice or a 1-D integer index "
                                 f"array, got {local.dtype} of shape {local.shape}")
            local = local.astype(np.int64)
            if local.size and (local.min() < -n or local.max() >= n):
                raise IndexError(f"index out of bounds for {n} samples")
            local = local % max(n, 1)
        return self._source_positions(local)

    def _source_positions(self, local: np.ndarray) -> np.ndarray:
        return local if self._index is None else self._index[local]

    def _decode(self, positions: np.ndarray) -> np.ndarray:
        want = (len(positions), *self._sample_shape)
        if not len(positions):
            return np.empty(want, dtype=np.float32)
        batch = self._load(positions)
        for step in self._steps:
            batch = step(batch)
        if batch.shape != want:
            raise DataError(f"{self.source}: decoded a batch of shape {batch.shape}, "
                            f"expected {want} (samples of different sizes?)")
        return np.ascontiguousarray(batch, dtype=np.float32)


def is_lazy(x: object) -> bool:
    """Whether ``x`` is a lazy sample array (not decoded until indexed)."""
    return isinstance(x, LazyImages)


def _is_int(key: Any) -> bool:
    return isinstance(key, (int, np.integer)) and not isinstance(key, bool)


class _ArrayRows:
    """Loader reading rows of an in-memory or memory-mapped float32 array."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self.array[positions], dtype=np.float32)
