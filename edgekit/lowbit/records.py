"""The low-bit record kinds of the ``.ekz`` format: ``bits1``, ``tern2`` and ``hashed``.

Each decodes to the exact dense float32 weight of the materialized (exported) layer.
The container (``edgekit.deep_compression.ekz``) stores shape, payload length and CRC; these
payloads hold only the low-bit data (little endian):

``bits1``  params ``{"scales": n}``; payload ``f32 scale[n] | packbits(signbit, LSB first)``.
           BNN (n = 1, scale 1) and XNOR-Net (n = output channels): about 32x smaller.
``tern2``  params ``{"scales": n}``; payload ``f32 pos[n] | f32 neg[n] | 2-bit codes``,
           four per byte LSB first, code 0 -> 0, 1 -> +pos, 2 -> -neg (3 is invalid).
           TWN (pos = neg) and TTQ (learned W_p, W_n): about 16x smaller.
``hashed`` params ``{"hash": version, "seed": s, "buckets": n}``; payload ``f32 bucket[n]``.
           The position hash is recomputed on load (see hashing.py).

n is 1 (per tensor) or shape[0] (per output channel). Decoders check every count and
length, reject code 3, non-zero padding and trailing bytes — all as FormatError.
Importing this module registers the kinds (``edgekit.deep_compression.ekz`` imports it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.core import hashing
from edgekit.core.errors import FormatError, InvalidInputError
from edgekit.deep_compression.ekz.binary import ByteReader
from edgekit.deep_compression.ekz.limits import Limits
from edgekit.deep_compression.ekz.records import (
    RECORD_KINDS,
    RecordKind,
    param_int,
    register_record_kind,
)

LOWBIT_KINDS = ("bits1", "tern2", "hashed")


@dataclass(frozen=True)
class HashedWeights:
    """What a hashed layer stores: its bucket array and the seed of its position hash."""

    buckets: np.ndarray
    seed: int

    def dense(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64))
        index, sign = hashing.hash_positions(n, self.buckets.size, self.seed)
        return (self.buckets.astype(np.float32)[index] * sign).reshape(shape)


@dataclass(frozen=True)
class TernaryWeights:
    """Codes in {-1, 0, +1} (output channel first) and the values of +1 and -1 codes:
    ``+pos`` and ``-neg``, one per tensor or per output channel. TTQ's learned scales
    may take any sign, so a layer hands these over rather than a dense tensor."""

    codes: np.ndarray
    pos: np.ndarray
    neg: np.ndarray


def _rows(value: Any) -> np.ndarray:
    w = np.asarray(value, dtype=np.float32)
    if w.ndim < 1 or w.size == 0:
        raise InvalidInputError(f"low-bit records need a non-empty weight, got shape {w.shape}")
    return np.ascontiguousarray(w).reshape(w.shape[0], -1)


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _n_scales(params: dict[str, Any], shape: tuple[int, ...]) -> int:
    if len(shape) < 1 or _numel(shape) < 1:
        raise FormatError(f"low-bit record needs a non-empty weight shape, got {shape}")
    n = param_int(params, "scales", 1, shape[0])
    if n not in (1, shape[0]):
        raise FormatError(f"{n} scales for {shape[0]} output channels")
    return n


def _shrink(*per_channel: np.ndarray) -> tuple[np.ndarray, ...]:
    """One scale per tensor when all channels share it (BNN, TWN), else one per channel."""
    if all(np.all(a == a[0]) for a in per_channel):
        return tuple(a[:1] for a in per_channel)
    return per_channel


# ------------------------------------------------------------------ bits1


def fits_binary(value: Any) -> bool:
    """True when every output channel is +-alpha_c (one magnitude per channel)."""
    rows = np.abs(_rows(value))
    return bool(np.all(rows == rows[:, :1]))


def _bits1_encode(value: Any, options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    rows = _rows(value)
    if not fits_binary(rows):
        raise InvalidInputError("bits1 needs a weight whose channels are each +-alpha")
    (scales,) = _shrink(np.abs(rows[:, 0]))
    bits = np.packbits(np.signbit(rows).ravel(), bitorder="little")
    return {"scales": int(scales.size)}, scales.astype("<f4").tobytes() + bits.tobytes()


def _bits1_decode(params: dict, payload: memoryview, shape: tuple[int, ...], limits: Limits):
    n = _n_scales(params, shape)
    numel = _numel(shape)
    reader = ByteReader(payload, "bits1 record")
    scales = reader.array("<f4", n).astype(np.float32)
    packed = np.frombuffer(reader.take((numel + 7) // 8), dtype=np.uint8)
    reader.expect_end()
    bits = np.unpackbits(packed, bitorder="little")
    if bits[numel:].any():
        raise FormatError("bits1 record: non-zero padding bits")
    signs = np.where(bits[:numel] == 1, np.float32(-1), np.float32(1)).reshape(shape[0], -1)
    return (signs * scales.reshape(-1, 1)).reshape(shape)


# ------------------------------------------------------------------ tern2


def _ternary_scales(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (pos, neg) magnitudes, or None when a channel takes more values."""
    pos = np.zeros(rows.shape[0], np.float32)
    neg = np.zeros(rows.shape[0], np.float32)
    for c, row in enumerate(rows):
        p, n = np.unique(row[row > 0]), np.unique(row[row < 0])
        if p.size > 1 or n.size > 1:
            return None
        pos[c] = p[0] if p.size else 0.0
        neg[c] = -n[0] if n.size else 0.0
    return pos, neg


def fits_ternary(value: Any) -> bool:
    """True when every output channel takes values in {-n_c, 0, +p_c}."""
    return _ternary_scales(_rows(value)) is not None


def _as_ternary(value: Any) -> TernaryWeights:
    if isinstance(value, TernaryWeights):
        return value
    rows = _rows(value)
    scales = _ternary_scales(rows)
    if scales is None:
        raise InvalidInputError("tern2 needs a weight whose channels take values {-n, 0, +p}")
    return TernaryWeights(np.sign(rows).astype(np.int8), *scales)


def _tern2_encode(value: Any, options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    tern = _as_ternary(value)
    rows = np.asarray(tern.codes).reshape(len(tern.codes), -1)
    pos = np.asarray(tern.pos, np.float32).ravel()
    neg = np.asarray(tern.neg, np.float32).ravel()
    if (pos.size != neg.size or pos.size not in (1, rows.shape[0])
            or not np.isin(rows, (-1, 0, 1)).all()):
        raise InvalidInputError("tern2 needs codes in {-1, 0, 1} and 1 or per-channel scales")
    pos, neg = _shrink(np.broadcast_to(pos, rows.shape[:1]), np.broadcast_to(neg, rows.shape[:1]))
    codes = np.where(rows > 0, 1, np.where(rows < 0, 2, 0)).astype(np.uint8).ravel()
    codes = np.concatenate([codes, np.zeros((-codes.size) % 4, np.uint8)]).reshape(-1, 4)
    packed = codes[:, 0] | (codes[:, 1] << 2) | (codes[:, 2] << 4) | (codes[:, 3] << 6)
    payload = pos.astype("<f4").tobytes() + neg.astype("<f4").tobytes() + packed.tobytes()
    return {"scales": int(pos.size)}, payload


def _tern2_decode(params: dict, payload: memoryview, shape: tuple[int, ...], limits: Limits):
    n = _n_scales(params, shape)
    numel = _numel(shape)
    reader = ByteReader(payload, "tern2 record")
    pos = reader.array("<f4", n).astype(np.float32).reshape(-1, 1)
    neg = reader.array("<f4", n).astype(np.float32).reshape(-1, 1)
    packed = np.frombuffer(reader.take((numel + 3) // 4), dtype=np.uint8)
    reader.expect_end()
    codes = np.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], axis=1).ravel()
    if (codes == 3).any():
        raise FormatError("tern2 record: invalid 2-bit code 3")
    if codes[numel:].any():
        raise FormatError("tern2 record: non-zero padding codes")
    codes = codes[:numel].reshape(shape[0], -1)
    w = np.where(codes == 1, pos, np.where(codes == 2, -neg, np.float32(0)))
    return w.astype(np.float32).reshape(shape)


# ------------------------------------------------------------------ hashed


def _hashed_encode(value: Any, options: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    if not isinstance(value, HashedWeights):
        raise TypeError("the 'hashed' record kind encodes HashedWeights values")
    buckets = np.ascontiguousarray(value.buckets, dtype="<f4").ravel()
    if buckets.size < 1 or not 0 <= value.seed < 2**63:
        raise InvalidInputError("hashed weights need >= 1 bucket and a seed in [0, 2**63)")
    params = {"hash": hashing.HASH_VERSION, "seed": int(value.seed), "buckets": int(buckets.size)}
    return params, buckets.tobytes()


def _hashed_decode(params: dict, payload: memoryview, shape: tuple[int, ...], limits: Limits):
    version = param_int(params, "hash", 0, 255)
    if version != hashing.HASH_VERSION:
        raise FormatError(f"hashed record: hash version {version}, this edgekit reads "
                          f"{hashing.HASH_VERSION}")
    numel = _numel(shape)
    if numel < 1:
        raise FormatError("hashed record: empty weight shape")
    seed = param_int(params, "seed", 0, 2**63 - 1)
    n = param_int(params, "buckets", 1, numel)
    reader = ByteReader(payload, "hashed record")
    buckets = reader.array("<f4", n).astype(np.float32)
    reader.expect_end()
    return HashedWeights(buckets, seed).dense(shape)


_KINDS = (
    RecordKind("bits1", _bits1_encode, _bits1_decode,
               "1-bit signs + fp32 scale per tensor or output channel (BNN, XNOR-Net)"),
    RecordKind("tern2", _tern2_encode, _tern2_decode,
               "2-bit ternary codes + fp32 positive/negative scales (TWN, TTQ)"),
    RecordKind("hashed", _hashed_encode, _hashed_decode,
               "HashedNets: fp32 buckets + seed; the position hash is recomputed"),
)

for _kind in _KINDS:
    if _kind.name not in RECORD_KINDS:  # idempotent: importlib.reload must not fail
        register_record_kind(_kind)
