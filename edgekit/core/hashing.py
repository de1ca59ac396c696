"""The HashedNets position hash: weight position -> (bucket index, sign). Numpy only, in the
core layer because both the hashed layers (``edgekit.models.lowbit``) and the torch-free
``.ekz`` decoder (``edgekit.lowbit.records``) compute it.

Chen et al. 2015 (HashedNets) share one small bucket array among all virtual weights of a
layer: V[i] = xi(i) * w[h(i)]. ``h`` and ``xi`` must be reproducible bit for bit on every
machine, because the stored file keeps only buckets + seed; so the hash is plain 64-bit
integer arithmetic in numpy (splitmix64 finaliser), never Python's salted ``hash``.
"""

from __future__ import annotations

import numpy as np

from edgekit.core.errors import InvalidInputError

# Bumped whenever the mapping below changes; stored in every hashed record so an old file
# is rejected instead of silently decoded with a different mapping.
HASH_VERSION = 1

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SIGN_SALT = np.uint64(0xD6E8FEB86659FD93)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def hash_positions(n_virtual: int, n_buckets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket index (int64, in [0, n_buckets)) and sign (float32, +-1) of positions 0..n-1."""
    if n_virtual < 1 or n_buckets < 1:
        raise InvalidInputError(f"hashing needs n_virtual, n_buckets >= 1: {n_virtual}/{n_buckets}")
    if not 0 <= seed < 2**63:
        raise InvalidInputError(f"hash seed must be in [0, 2**63), got {seed}")
    with np.errstate(over="ignore"):
        pos = np.arange(n_virtual, dtype=np.uint64)
        key = pos * _GOLDEN + np.uint64(seed)
        index = (_splitmix64(key) % np.uint64(n_buckets)).astype(np.int64)
        sign_bits = _splitmix64(key ^ _SIGN_SALT) >> np.uint64(63)
    sign = np.where(sign_bits == 1, np.float32(-1.0), np.float32(1.0)).astype(np.float32)
    return index, sign


def buckets_for(n_virtual: int, compression: float) -> int:
    """Number of buckets for a compression factor such as 1/8 (at least one)."""
    if not 0.0 < compression <= 1.0:
        raise InvalidInputError(f"compression must be in (0, 1], e.g. 1/8; got {compression}")
    return max(1, round(n_virtual * compression))
