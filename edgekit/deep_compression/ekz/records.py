"""Record kinds of the ``.ekz`` format: an explicit table kind name -> encoder/decoder.

Every tensor in a file is one record with a ``kind``. A kind turns a value into
``(params, payload)`` when writing and back into a numpy array when reading. ``params``
is a small JSON object stored in the header; ``payload`` is the record's bytes. Decoders
must validate ``params`` and bounds-check the payload, raising FormatError for anything
inconsistent. Add a kind with :func:`register_record_kind` (see docs/ekz-format.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.core.errors import FormatError
from edgekit.deep_compression.ekz.binary import ByteReader, put_varint
from edgekit.deep_compression.ekz.limits import Limits

Encoder = Callable[[Any, dict[str, Any]], tuple[dict[str, Any], bytes]]
Decoder = Callable[[dict[str, Any], memoryview, tuple[int, ...], Limits], np.ndarray]


@dataclass(frozen=True)
class RecordKind:
    """How one kind of tensor record is written and read."""

    name: str
    encode: Encoder  # (value, options) -> (params, payload)
    decode: Decoder  # (params, payload, shape, limits) -> array of ``shape``
    doc: str = ""


RECORD_KINDS: dict[str, RecordKind] = {}

# Kinds defined outside this module: kind name -> module whose import registers it. Imported
# on first use, so reading a file of only 'raw'/'dc' records never loads them.
KIND_MODULES: dict[str, str] = {
    "bits1": "edgekit.lowbit.records",
    "tern2": "edgekit.lowbit.records",
    "hashed": "edgekit.lowbit.records",
}


def register_record_kind(kind: RecordKind) -> RecordKind:
    if kind.name in RECORD_KINDS:
        raise ValueError(f"record kind {kind.name!r} is already registered")
    RECORD_KINDS[kind.name] = kind
    return kind


def get_record_kind(name: str) -> RecordKind:
    if name not in RECORD_KINDS and name in KIND_MODULES:
        import importlib

        importlib.import_module(KIND_MODULES[name])
    try:
        return RECORD_KINDS[name]
    except KeyError:
        known = sorted(set(RECORD_KINDS) | set(KIND_MODULES))
        raise FormatError(f"unknown record kind {name!r}; known: {known}") from None


def param_int(params: dict[str, Any], key: str, lo: int, hi: int) -> int:
    """Read an integer parameter in [lo, hi] or raise FormatError (bools are not ints here)."""
    value = params.get(key)
    if type(value) is not int or not lo <= value <= hi:
        raise FormatError(f"record parameter {key!r}={value!r} is not an integer in [{lo}, {hi}]")
    return value


def param_choice(params: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = params.get(key)
    if value not in choices:
        raise FormatError(f"record parameter {key!r}={value!r} is not one of {choices}")
    return value


# -- raw: little-endian dense arrays (biases, BN parameters, anything not shared) ---------

RAW_DTYPES = {"f4": "<f4", "f2": "<f2", "i8": "<i8", "i4": "<i4", "u1": "u1"}


def _raw_encode(value: Any, options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    dtype = options.get("dtype", "f4")
    if dtype not in RAW_DTYPES:
        raise ValueError(f"raw dtype must be one of {sorted(RAW_DTYPES)}")
    array = np.ascontiguousarray(np.asarray(value), dtype=RAW_DTYPES[dtype])
    return {"dtype": dtype}, array.tobytes()


def _raw_decode(params: dict, payload: memoryview, shape: tuple[int, ...], limits: Limits):
    dtype = RAW_DTYPES[param_choice(params, "dtype", tuple(RAW_DTYPES))]
    numel = int(np.prod(shape, dtype=np.int64))
    reader = ByteReader(payload, "raw record")
    array = reader.array(dtype, numel)
    reader.expect_end()
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    return array.reshape(shape)


register_record_kind(RecordKind("raw", _raw_encode, _raw_decode, "dense little-endian array"))


# -- dc: Deep Compression (codebook + relative-index sparse form + entropy coding) --------


@dataclass(frozen=True)
class SharedWeights:
    """A weight-shared tensor: ``indices`` (0 = zero/pruned, j = ``codebook[j-1]``)."""

    indices: np.ndarray
    codebook: np.ndarray  # float32, the non-zero shared values

    def dense(self) -> np.ndarray:
        table = np.concatenate([[0.0], self.codebook]).astype(np.float32)
        return table[self.indices]


def _write_stream(out: bytearray, symbols: np.ndarray, codec: str) -> None:
    if codec == "auto":
        raise ValueError("resolve 'auto' per record before writing a stream")
    if codec == "huffman":
        from edgekit.deep_compression.huffman import huffman_encode

        stream = huffman_encode(symbols)
        count = list(stream.table.count)
        put_varint(out, len(count))
        for n in count:
            put_varint(out, n)
        for s in stream.table.symbols:
            put_varint(out, s)
        put_varint(out, stream.nbits)
        out += stream.data
    else:
        from edgekit.deep_compression.entropy import rans_encode

        stream = rans_encode(symbols)
        put_varint(out, len(stream.counts))
        for c in stream.counts:
            put_varint(out, c)
        put_varint(out, len(stream.data) // 4)
        out += stream.data


def _read_stream(reader: ByteReader, codec: str, n: int, alphabet: int,
                 sizes: dict[str, int], part: str) -> np.ndarray:
    """Read one coded stream; records its table bytes and coded bits in ``sizes``."""
    start = reader.pos
    if codec == "huffman":
        from edgekit.deep_compression.huffman import MAX_CODE_LENGTH, HuffmanTable, huffman_decode

        n_len = reader.varint(MAX_CODE_LENGTH + 1)
        count = tuple(reader.varint(alphabet) for _ in range(n_len))
        if sum(count) > alphabet:
            raise FormatError("Huffman table has more codes than the alphabet")
        symbols = tuple(reader.varint(alphabet) for _ in range(sum(count)))
        nbits = reader.varint(8 * len(reader.data))
        table_end = reader.pos
        data = reader.take((nbits + 7) // 8)
        out = huffman_decode(data, nbits, HuffmanTable(count, symbols), n, alphabet)
    else:
        from edgekit.deep_compression.entropy import rans_decode

        n_hist = reader.varint(alphabet)
        counts = tuple(reader.varint(n) for _ in range(n_hist))
        n_words = reader.varint(len(reader.data) // 4)
        table_end = reader.pos
        nbits = 32 * n_words
        out = rans_decode(reader.take(4 * n_words), counts, n, alphabet)
    sizes[f"{part}_table_bytes"] = table_end - start
    sizes[f"{part}_bits"] = nbits
    sizes[f"{part}_bytes"] = reader.pos - start
    return out


CODECS = ("huffman", "rans")
WRITE_CODECS = (*CODECS, "auto")  # auto: per record, whichever codec is smaller


def choose_gap_bits(indices: np.ndarray, codec: str = "huffman", max_bits: int = 12) -> int:
    """Gap width minimising the coded gap + index streams and their tables (0 = dense)."""
    from edgekit.deep_compression.huffman import empirical_entropy_bits, huffman_coded_bits
    from edgekit.deep_compression.sparse import to_relative

    best, best_cost = 0, None
    for bits in range(0, max_bits + 1):
        gaps, idx = to_relative(indices, bits)
        if codec == "huffman":  # tables list the symbols present
            table_bits = 16 * (np.unique(gaps).size + np.unique(idx).size)
            cost = huffman_coded_bits(gaps) + huffman_coded_bits(idx) + table_bits
        else:  # rANS: near-entropy data, a histogram up to the largest symbol
            table_bits = 8 * sum(int(s.max()) + 1 for s in (gaps, idx) if s.size)
            cost = empirical_entropy_bits(gaps) + empirical_entropy_bits(idx) + table_bits
        if best_cost is None or cost < best_cost:
            best, best_cost = bits, cost
    return best


def _dc_encode(value: Any, options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    from edgekit.deep_compression.sparse import to_relative

    if not isinstance(value, SharedWeights):
        raise TypeError("the 'dc' record kind encodes SharedWeights values")
    codec = options.get("codec", "huffman")
    if codec not in WRITE_CODECS:
        raise ValueError(f"codec must be one of {WRITE_CODECS}")
    if codec == "auto":
        candidates = [_dc_encode(value, {**options, "codec": c}) for c in CODECS]
        return min(candidates, key=lambda pair: len(pair[1]))
    codebook = np.asarray(value.codebook, dtype="<f4").ravel()
    indices = np.asarray(value.indices).ravel()
    if indices.size and (indices.min() < 0 or indices.max() > codebook.size):
        raise ValueError("indices must lie in 0..len(codebook)")
    gap_bits = options.get("gap_bits")
    if gap_bits is None:
        gap_bits = choose_gap_bits(indices, codec)
    gaps, idx = to_relative(indices, gap_bits)
    out = bytearray(codebook.tobytes())
    _write_stream(out, idx, codec)
    if gap_bits:
        _write_stream(out, gaps, codec)
    params = {"k": int(codebook.size), "gap_bits": int(gap_bits), "n": int(idx.size),
              "codec": codec}
    return params, bytes(out)


@dataclass
class DcParts:
    """A decoded ``dc`` record: its streams and where its bytes went (for reports)."""

    codebook: np.ndarray
    gaps: np.ndarray
    idx: np.ndarray
    dense_idx: np.ndarray
    sizes: dict[str, int]


def dc_parts(params: dict, payload: memoryview, shape: tuple[int, ...], limits: Limits) -> DcParts:
    from edgekit.deep_compression.sparse import from_relative

    numel = int(np.prod(shape, dtype=np.int64))
    k = param_int(params, "k", 0, limits.max_alphabet - 1)
    gap_bits = param_int(params, "gap_bits", 0, 16)
    n = param_int(params, "n", 0, numel)
    codec = param_choice(params, "codec", CODECS)
    reader = ByteReader(payload, "dc record")
    codebook = reader.array("<f4", k)
    sizes = {"codebook_bytes": 4 * k, "gap_table_bytes": 0, "gap_bits": 0, "gap_bytes": 0}
    idx = _read_stream(reader, codec, n, k + 1, sizes, "idx")
    gaps = np.zeros(0, dtype=np.int64)
    if gap_bits:
        gaps = _read_stream(reader, codec, n, 1 << gap_bits, sizes, "gap")
    reader.expect_end()
    return DcParts(codebook, gaps, idx, from_relative(gaps, idx, numel, gap_bits), sizes)


def _dc_decode(params: dict, payload: memoryview, shape: tuple[int, ...], limits: Limits):
    parts = dc_parts(params, payload, shape, limits)
    table = np.concatenate([np.zeros(1, np.float32), parts.codebook.astype(np.float32)])
    return table[parts.dense_idx].reshape(shape)


register_record_kind(
    RecordKind("dc", _dc_encode, _dc_decode,
               "Deep Compression: fp32 codebook, relative-index sparse form, Huffman or rANS")
)
