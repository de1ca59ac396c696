"""Byte layouts of the low-bit weight records (pure numpy; no torch).

Three payloads, each decoding to the exact dense float32 weight of the materialized
(exported) layer:

``bits1``   1-bit signs + one float32 scale per output channel (BNN, XNOR-Net): ~32x
``tern2``   2-bit codes {0, +1, -1} + float32 positive and negative scale per output
            channel (TWN: both equal; TTQ: learned W_p, W_n): ~16x
``hashed``  HashedNets: float32 buckets + seed + hash version; the position hash is
            recomputed on load (see hashing.py), so storage is the bucket array only.

Layout (little endian, varints are LEB128):
  bits1:  ndim, dims..., n_scales | f32 scales[n_scales] | packbits(signbit, little)
  tern2:  ndim, dims..., n_scales | f32 pos[n] | f32 neg[n] | 2-bit codes, 4 per byte (LSB first)
  hashed: u8 hash_version, ndim, dims..., seed (u64), n_buckets | f32 buckets[n_buckets]
n_scales is 1 (per tensor) or dims[0] (per output channel). Decoders check every length,
every count against the limits, reject code 3 and non-zero padding bits, and reject
trailing bytes — all as FormatError.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from edgekit.compress.ekz.binary import ByteReader, put_varint
from edgekit.compress.ekz.limits import DEFAULT_LIMITS, Limits
from edgekit.compress.lowbit import hashing
from edgekit.errors import FormatError, InvalidInputError

_TERNARY_TO_CODE = {0: 0, 1: 1, -1: 2}


def _put_shape(out: bytearray, shape: tuple[int, ...]) -> None:
    put_varint(out, len(shape))
    for dim in shape:
        put_varint(out, dim)


def _read_shape(reader: ByteReader, limits: Limits) -> tuple[int, ...]:
    ndim = reader.varint(limit=limits.max_ndim)
    if ndim < 1:
        raise FormatError(f"{reader.what}: a weight needs at least one dimension")
    shape = tuple(reader.varint(limit=limits.max_tensor_elements) for _ in range(ndim))
    numel = math.prod(shape)
    if numel < 1 or numel > limits.max_tensor_elements:
        raise FormatError(f"{reader.what}: shape {shape} has {numel} elements "
                          f"(allowed 1..{limits.max_tensor_elements})")
    return shape


def _read_n_scales(reader: ByteReader, shape: tuple[int, ...]) -> int:
    n = reader.varint(limit=shape[0])
    if n not in (1, shape[0]):
        raise FormatError(f"{reader.what}: {n} scales for {shape[0]} output channels")
    return n


def _rows(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w, dtype=np.float32).reshape(w.shape[0], -1)


# ------------------------------------------------------------------ bits1


def fits_binary(w: np.ndarray) -> bool:
    """True when every output channel of ``w`` is +-alpha_c (one magnitude per channel)."""
    rows = np.abs(_rows(w))
    return bool(np.all(rows == rows[:, :1]))


def encode_bits1(w: np.ndarray) -> bytes:
    if not fits_binary(w):
        raise InvalidInputError("bits1 needs a weight whose channels are each +-alpha")
    rows = _rows(w)
    scales = np.abs(rows[:, 0]).astype("<f4")
    if np.all(scales == scales[0]):
        scales = scales[:1]
    out = bytearray()
    _put_shape(out, w.shape)
    put_varint(out, scales.size)
    out += scales.tobytes()
    out += np.packbits(np.signbit(rows).ravel(), bitorder="little").tobytes()
    return bytes(out)


def decode_bits1(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    reader = ByteReader(payload, "bits1 record")
    shape = _read_shape(reader, limits)
    n_scales = _read_n_scales(reader, shape)
    scales = reader.array("<f4", n_scales).astype(np.float32)
    numel = math.prod(shape)
    packed = np.frombuffer(reader.take((numel + 7) // 8), dtype=np.uint8)
    reader.expect_end()
    bits = np.unpackbits(packed, bitorder="little")
    if bits[numel:].any():
        raise FormatError("bits1 record: non-zero padding bits")
    signs = np.where(bits[:numel] == 1, np.float32(-1), np.float32(1)).reshape(shape[0], -1)
    return (signs * scales.reshape(-1, 1)).reshape(shape)


# ------------------------------------------------------------------ tern2


def _ternary_scales(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (pos, neg) magnitudes, or None when a channel has more values."""
    pos = np.zeros(rows.shape[0], np.float32)
    neg = np.zeros(rows.shape[0], np.float32)
    for c, row in enumerate(rows):
        p, n = np.unique(row[row > 0]), np.unique(row[row < 0])
        if p.size > 1 or n.size > 1:
            return None
        pos[c] = p[0] if p.size else 0.0
        neg[c] = -n[0] if n.size else 0.0
    return pos, neg


def fits_ternary(w: np.ndarray) -> bool:
    """True when every output channel of ``w`` takes values in {-n_c, 0, +p_c}."""
    return _ternary_scales(_rows(w)) is not None


def encode_tern2(w: np.ndarray) -> bytes:
    rows = _rows(w)
    scales = _ternary_scales(rows)
    if scales is None:
        raise InvalidInputError("tern2 needs a weight whose channels take values {-n, 0, +p}")
    pos, neg = scales
    if np.all(pos == pos[0]) and np.all(neg == neg[0]):
        pos, neg = pos[:1], neg[:1]
    codes = np.where(rows > 0, 1, np.where(rows < 0, 2, 0)).astype(np.uint8).ravel()
    codes = np.concatenate([codes, np.zeros((-codes.size) % 4, np.uint8)]).reshape(-1, 4)
    packed = codes[:, 0] | (codes[:, 1] << 2) | (codes[:, 2] << 4) | (codes[:, 3] << 6)
    out = bytearray()
    _put_shape(out, w.shape)
    put_varint(out, pos.size)
    out += pos.astype("<f4").tobytes() + neg.astype("<f4").tobytes()
    out += packed.astype(np.uint8).tobytes()
    return bytes(out)


def decode_tern2(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    reader = ByteReader(payload, "tern2 record")
    shape = _read_shape(reader, limits)
    n_scales = _read_n_scales(reader, shape)
    pos = reader.array("<f4", n_scales).astype(np.float32).reshape(-1, 1)
    neg = reader.array("<f4", n_scales).astype(np.float32).reshape(-1, 1)
    numel = math.prod(shape)
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


def encode_hashed(shape: tuple[int, ...], buckets: np.ndarray, seed: int) -> bytes:
    buckets = np.ascontiguousarray(buckets, dtype="<f4").ravel()
    if not 1 <= buckets.size <= math.prod(shape):
        raise InvalidInputError(f"{buckets.size} buckets for a {shape} weight")
    out = bytearray([hashing.HASH_VERSION])
    _put_shape(out, tuple(shape))
    out += struct.pack("<Q", seed)
    put_varint(out, buckets.size)
    out += buckets.tobytes()
    return bytes(out)


def decode_hashed_parts(
    payload: bytes, limits: Limits = DEFAULT_LIMITS
) -> tuple[tuple[int, ...], np.ndarray, int]:
    """(virtual shape, buckets, seed) of a hashed record."""
    reader = ByteReader(payload, "hashed record")
    version = reader.u8()
    if version != hashing.HASH_VERSION:
        raise FormatError(f"hashed record: hash version {version}, this edgekit reads "
                          f"{hashing.HASH_VERSION}")
    shape = _read_shape(reader, limits)
    (seed,) = struct.unpack("<Q", reader.take(8))
    if seed >= 2**63:
        raise FormatError(f"hashed record: seed {seed} out of range")
    n_buckets = reader.varint(limit=math.prod(shape))
    if n_buckets < 1:
        raise FormatError("hashed record: zero buckets")
    buckets = reader.array("<f4", n_buckets).astype(np.float32)
    reader.expect_end()
    return shape, buckets, seed


def decode_hashed(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """The dense virtual weight V[i] = sign(i) * buckets[h(i)]."""
    shape, buckets, seed = decode_hashed_parts(payload, limits)
    index, sign = hashing.hash_positions(math.prod(shape), buckets.size, seed)
    return (buckets[index] * sign).reshape(shape)
