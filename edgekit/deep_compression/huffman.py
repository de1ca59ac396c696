"""Canonical Huffman coding of integer symbol streams (C-backed via ``bitarray``).

A canonical code is fully described by ``count`` (how many codes have each length,
index = length) and ``symbols`` (the symbols in canonical order), which is what the
``.ekz`` format stores as the table. Encoding and decoding run in bitarray's C code;
Python only converts between numpy arrays and lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import numpy as np

from edgekit.core.errors import FormatError
from edgekit.core.lazy import require

MAX_CODE_LENGTH = 32  # longer codes would need > 2**32 symbols of skewed input


@dataclass(frozen=True)
class HuffmanTable:
    """A canonical Huffman code: ``count[L]`` codes of length L, ``symbols`` in code order."""

    count: tuple[int, ...]
    symbols: tuple[int, ...]

    def code_lengths(self) -> dict[int, int]:
        lengths: dict[int, int] = {}
        it = iter(self.symbols)
        for length, n in enumerate(self.count):
            for _ in range(n):
                lengths[next(it)] = length
        return lengths


@dataclass(frozen=True)
class HuffmanStream:
    table: HuffmanTable
    data: bytes  # the code bits, MSB first, zero-padded to a whole byte
    nbits: int  # number of meaningful bits in ``data``
    n_symbols: int


def huffman_encode(symbols: np.ndarray) -> HuffmanStream:
    """Huffman-code a 1-D array of non-negative integers (an empty array gives no bits)."""
    ba = require("bitarray", purpose="Huffman coding")
    util = require("bitarray.util", purpose="Huffman coding")
    values = np.asarray(symbols).ravel()
    if values.size and (values.min() < 0):
        raise ValueError("Huffman symbols must be non-negative integers")
    if values.size == 0:
        return HuffmanStream(HuffmanTable((0,), ()), b"", 0, 0)
    uniq, counts = np.unique(values, return_counts=True)
    freq = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    codes, count, order = util.canonical_huffman(freq)
    bits = ba.bitarray(endian="big")
    bits.encode(codes, values.tolist())
    return HuffmanStream(
        HuffmanTable(tuple(count), tuple(order)), bits.tobytes(), len(bits), int(values.size)
    )


def huffman_decode(
    data: bytes | memoryview, nbits: int, table: HuffmanTable, n_symbols: int, alphabet: int
) -> np.ndarray:
    """Decode exactly ``n_symbols`` symbols < ``alphabet``; raise FormatError on any mismatch."""
    ba = require("bitarray", purpose="Huffman decoding")
    util = require("bitarray.util", purpose="Huffman decoding")
    if n_symbols == 0:
        if nbits:
            raise FormatError("Huffman stream has bits but declares no symbols")
        return np.zeros(0, dtype=np.int64)
    _check_table(table, alphabet)
    if not 0 < nbits <= len(data) * 8 or len(data) != (nbits + 7) // 8:
        raise FormatError(f"Huffman stream of {len(data)} bytes cannot hold {nbits} bits")
    if nbits < n_symbols:  # every code is at least one bit long
        raise FormatError("Huffman stream is shorter than its symbol count")
    bits = ba.bitarray(endian="big")
    bits.frombytes(bytes(data))
    del bits[nbits:]
    try:
        decoded = np.fromiter(
            islice(util.canonical_decode(bits, list(table.count), list(table.symbols)), n_symbols),
            dtype=np.int64,
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise FormatError(f"corrupt Huffman stream: {exc}") from None
    if decoded.size != n_symbols:
        raise FormatError(f"Huffman stream ended after {decoded.size} of {n_symbols} symbols")
    used = _coded_bits(decoded, table)
    if used != nbits:
        raise FormatError(f"Huffman stream has {nbits - used} stray bits")
    return decoded


def _coded_bits(decoded: np.ndarray, table: HuffmanTable) -> int:
    lengths = table.code_lengths()
    uniq, counts = np.unique(decoded, return_counts=True)
    return int(sum(lengths[s] * c for s, c in zip(uniq.tolist(), counts.tolist(), strict=True)))


def _check_table(table: HuffmanTable, alphabet: int) -> None:
    count, symbols = table.count, table.symbols
    if len(count) > MAX_CODE_LENGTH + 1 or (count and count[0] != 0):
        raise FormatError("Huffman table has invalid code lengths")
    if sum(count) != len(symbols) or not symbols:
        raise FormatError("Huffman table counts do not match its symbols")
    if len(set(symbols)) != len(symbols) or min(symbols) < 0 or max(symbols) >= alphabet:
        raise FormatError(f"Huffman table symbols outside 0..{alphabet - 1} or repeated")
    # Kraft sum must not exceed 1 (a single symbol uses one 1-bit code).
    kraft = sum(n * 2 ** (MAX_CODE_LENGTH - length) for length, n in enumerate(count) if length)
    if kraft > 2**MAX_CODE_LENGTH:
        raise FormatError("Huffman table is over-subscribed")


def huffman_coded_bits(symbols: np.ndarray) -> int:
    """Bits the Huffman code of ``symbols`` would take (for choosing parameters cheaply)."""
    values = np.asarray(symbols).ravel()
    if values.size == 0:
        return 0
    util = require("bitarray.util", purpose="Huffman coding")
    uniq, counts = np.unique(values, return_counts=True)
    codes, _, _ = util.canonical_huffman(dict(zip(uniq.tolist(), counts.tolist(), strict=True)))
    return int(sum(len(codes[s]) * c for s, c in zip(uniq.tolist(), counts.tolist(), strict=True)))


def empirical_entropy_bits(symbols: np.ndarray) -> float:
    """Total order-0 empirical entropy of a stream in bits (the limit for any symbol coder)."""
    values = np.asarray(symbols).ravel()
    if values.size == 0:
        return 0.0
    _, counts = np.unique(values, return_counts=True)
    p = counts / values.size
    return float(-(counts * np.log2(p)).sum())
