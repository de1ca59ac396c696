"""Optional rANS codec (``constriction``): gets closer to the empirical entropy than Huffman.

The model is the exact symbol histogram of the stream (stored as counts in the table), so
encoder and decoder build the same quantized categorical distribution from the same
integers. Huffman stays the default codec; rANS is the second codec of the ``.ekz`` format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.core.errors import FormatError
from edgekit.core.lazy import require


@dataclass(frozen=True)
class RansStream:
    counts: tuple[int, ...]  # histogram over symbols 0..len(counts)-1
    data: bytes  # little-endian uint32 words from constriction's AnsCoder
    n_symbols: int


def _model(counts: np.ndarray):
    constriction = require("constriction", purpose="rANS coding")
    probs = counts.astype(np.float64) / float(counts.sum())
    if probs.size < 2:  # constriction needs two symbols; the pad gets the minimum leak
        probs = np.append(probs, 0.0)
    return constriction.stream.model.Categorical(probs, perfect=False)


def rans_encode(symbols: np.ndarray) -> RansStream:
    constriction = require("constriction", purpose="rANS coding")
    values = np.asarray(symbols).ravel().astype(np.int32)
    if values.size == 0:
        return RansStream((), b"", 0)
    counts = np.bincount(values)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(values, _model(counts))
    words = coder.get_compressed().astype("<u4")
    return RansStream(tuple(int(c) for c in counts), words.tobytes(), int(values.size))


def rans_decode(
    data: bytes | memoryview, counts: tuple[int, ...], n_symbols: int, alphabet: int
) -> np.ndarray:
    """Decode ``n_symbols`` symbols; the histogram must match what is decoded exactly."""
    constriction = require("constriction", purpose="rANS decoding")
    if n_symbols == 0:
        if len(data) or counts:
            raise FormatError("empty rANS stream carries data")
        return np.zeros(0, dtype=np.int64)
    hist = np.asarray(counts, dtype=np.int64)
    if not 0 < hist.size <= alphabet or hist.min() < 0 or int(hist.sum()) != n_symbols:
        raise FormatError("rANS table does not match its stream")
    if len(data) % 4:
        raise FormatError("rANS stream is not a whole number of 32-bit words")
    words = np.frombuffer(bytes(data), dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        decoded = np.asarray(coder.decode(_model(hist), n_symbols), dtype=np.int64)
    except Exception as exc:  # constriction raises plain exceptions for corrupt input
        raise FormatError(f"corrupt rANS stream: {exc}") from None
    if decoded.size != n_symbols or not np.array_equal(
        np.bincount(decoded, minlength=hist.size)[: hist.size], hist
    ) or decoded.max() >= hist.size:
        raise FormatError("rANS stream does not decode to its declared histogram")
    return decoded
