"""The paper's relative-index sparse form.

A flat array of cluster indices (0 = pruned/zero) becomes two equally long streams:
``gaps[i]`` = zeros skipped before entry i, stored in ``gap_bits`` bits, and ``idx[i]``
= the entry's cluster index. A run of zeros longer than ``2**gap_bits - 1`` is bridged by
filler entries (gap = max, idx = 0) that decode to an explicit zero. ``gap_bits = 0``
means "dense": every position is an entry and no gap stream exists.
"""

from __future__ import annotations

import numpy as np

from edgekit.core.errors import FormatError


def to_relative(indices: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(gaps, idx)`` for a flat index array; ``gaps`` is empty when gap_bits == 0."""
    flat = np.asarray(indices).ravel().astype(np.int64)
    if gap_bits == 0:
        return np.zeros(0, dtype=np.int64), flat
    if not 1 <= gap_bits <= 16:
        raise ValueError("gap_bits must be 0..16")
    span = 1 << gap_bits  # an entry advances at most this many positions
    pos = np.flatnonzero(flat)
    skip = np.diff(pos, prepend=-1) - 1
    fillers = skip // span
    out_pos = np.cumsum(fillers + 1) - 1  # where each real entry lands in the output
    total = int(out_pos[-1]) + 1 if pos.size else 0
    gaps = np.full(total, span - 1, dtype=np.int64)
    idx = np.zeros(total, dtype=np.int64)
    gaps[out_pos] = skip % span
    idx[out_pos] = flat[pos]
    return gaps, idx


def from_relative(gaps: np.ndarray, idx: np.ndarray, numel: int, gap_bits: int) -> np.ndarray:
    """Inverse of :func:`to_relative`; raises FormatError if entries run past ``numel``."""
    if gap_bits == 0:
        if idx.size != numel:
            raise FormatError(f"dense index stream has {idx.size} entries, expected {numel}")
        return idx
    if gaps.size != idx.size:
        raise FormatError("gap and index streams differ in length")
    if gaps.size and (gaps.min() < 0 or gaps.max() >= 1 << gap_bits):
        raise FormatError("gap outside its declared bit width")
    out = np.zeros(numel, dtype=np.int32)
    if gaps.size:
        pos = np.cumsum(gaps + 1) - 1
        if pos[-1] >= numel:
            raise FormatError(f"sparse entries run past the tensor's {numel} elements")
        out[pos] = idx
    return out
