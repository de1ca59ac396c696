"""Writing and reading ``.ekz`` files: preamble, JSON header, CRC-checked record payloads.

Layout (all integers little-endian)::

    magic (8 bytes) | version u16 | flags u16 | header_len u32 | header_crc32 u32
    header: UTF-8 JSON, header_len bytes
    payload of record 0 | payload of record 1 | ...

The header declares every record's name, kind, shape, payload length and CRC32, so the
reader checks the file size, every limit and every checksum before it decodes anything.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import FormatError
from edgekit.core.io import atomic_write_bytes
from edgekit.deep_compression.ekz.limits import (
    DEFAULT_LIMITS,
    MAGIC,
    PREAMBLE_SIZE,
    VERSION,
    Limits,
)
from edgekit.deep_compression.ekz.records import get_record_kind

_PREAMBLE = struct.Struct("<8sHHII")


@dataclass
class TensorRecord:
    """One tensor to write: ``value`` is whatever the record kind's encoder accepts."""

    name: str
    kind: str
    value: Any
    shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordInfo:
    name: str
    kind: str
    shape: tuple[int, ...]
    params: dict[str, Any]
    offset: int  # of the payload, from the start of the file
    length: int

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class EkzFile:
    """A parsed, checksum-verified ``.ekz`` file; records are decoded on demand."""

    version: int
    model_config: dict[str, Any] | None
    meta: dict[str, Any]
    records: list[RecordInfo]
    data: bytes
    limits: Limits = DEFAULT_LIMITS

    def payload(self, info: RecordInfo) -> memoryview:
        return memoryview(self.data)[info.offset : info.offset + info.length]

    def decode(self, info: RecordInfo) -> np.ndarray:
        kind = get_record_kind(info.kind)
        try:
            array = kind.decode(info.params, self.payload(info), info.shape, self.limits)
        except FormatError as exc:
            raise FormatError(f"record {info.name!r}: {exc}") from None
        except (ValueError, TypeError, IndexError, KeyError, OverflowError, struct.error) as exc:
            # A decoder that missed a check must still not leak a non-format error.
            raise FormatError(
                f"record {info.name!r}: corrupt {info.kind} payload ({exc})") from None
        if tuple(array.shape) != info.shape:
            raise FormatError(f"record {info.name!r} decoded to {array.shape}, not {info.shape}")
        return array

    def tensors(self) -> dict[str, np.ndarray]:
        return {info.name: self.decode(info) for info in self.records}


def encode_ekz(
    records: Iterable[TensorRecord],
    *,
    model_config: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> bytes:
    """Serialise records into the bytes of an ``.ekz`` file."""
    entries, payloads, names = [], [], set()
    for rec in records:
        if rec.name in names:
            raise ValueError(f"duplicate record name {rec.name!r}")
        names.add(rec.name)
        params, payload = get_record_kind(rec.kind).encode(rec.value, dict(rec.options))
        entries.append({"name": rec.name, "kind": rec.kind, "shape": [int(d) for d in rec.shape],
                        "len": len(payload), "crc": zlib.crc32(payload), "p": params})
        payloads.append(payload)
    header = {"model": model_config, "meta": meta or {}, "records": entries}
    blob = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    preamble = _PREAMBLE.pack(MAGIC, VERSION, 0, len(blob), zlib.crc32(blob))
    return b"".join([preamble, blob, *payloads])


def write_ekz(path: str | os.PathLike[str], records: Iterable[TensorRecord], **kwargs: Any) -> Path:
    """Encode and write atomically (nothing half-written on failure)."""
    return atomic_write_bytes(path, encode_ekz(records, **kwargs))


def parse_ekz(data: bytes, limits: Limits = DEFAULT_LIMITS) -> EkzFile:
    """Validate preamble, header, limits, file size and every record CRC."""
    if len(data) < PREAMBLE_SIZE:
        raise FormatError(f"file of {len(data)} bytes is too short for an .ekz preamble")
    magic, version, flags, header_len, header_crc = _PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("not an .ekz file (bad magic)")
    if version != VERSION or flags != 0:
        raise FormatError(f"unsupported .ekz version {version} / flags {flags}")
    if header_len > limits.max_header_bytes:
        raise FormatError(
            f"header of {header_len} bytes exceeds the {limits.max_header_bytes} limit")
    end = PREAMBLE_SIZE + header_len
    if end > len(data):
        raise FormatError("file is truncated inside its header")
    blob = data[PREAMBLE_SIZE:end]
    if zlib.crc32(blob) != header_crc:
        raise FormatError("header checksum mismatch")
    header = _load_header(blob, limits)
    records, offset, total_out = [], end, 0
    for entry in header["records"]:
        info = _record_info(entry, offset, limits)
        total_out += 4 * info.numel
        if total_out > limits.max_output_bytes:
            raise FormatError(f"decoded tensors would exceed {limits.max_output_bytes} bytes")
        if info.offset + info.length > len(data):
            raise FormatError(f"file is truncated inside record {info.name!r}")
        if zlib.crc32(memoryview(data)[info.offset : info.offset + info.length]) != entry["crc"]:
            raise FormatError(f"checksum mismatch in record {info.name!r}")
        records.append(info)
        offset += info.length
    if offset != len(data):
        raise FormatError(f"{len(data) - offset} bytes after the last record")
    return EkzFile(version, header["model"], header["meta"], records, data, limits)


def load_ekz(path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> EkzFile:
    """Read and validate a file; refuses files larger than any legal one before reading."""
    try:
        size = os.path.getsize(path)
        if size > limits.max_output_bytes + limits.max_header_bytes + PREAMBLE_SIZE:
            raise FormatError(f"{path}: {size} bytes is larger than any allowed .ekz file")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_ekz(data, limits)


def read_ekz(path: str | os.PathLike[str],
             limits: Limits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """Decode every tensor of a file into dense numpy arrays."""
    return load_ekz(path, limits).tensors()


def _load_header(blob: bytes, limits: Limits) -> dict[str, Any]:
    try:
        header = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FormatError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"model", "meta", "records"}:
        raise FormatError("header must be an object with model, meta and records")
    if header["model"] is not None and not isinstance(header["model"], dict):
        raise FormatError("header 'model' must be an object or null")
    if not isinstance(header["meta"], dict):
        raise FormatError("header 'meta' must be an object")
    if not isinstance(header["records"], list) or len(header["records"]) > limits.max_records:
        raise FormatError(f"header 'records' must be a list of at most {limits.max_records}")
    names = [e.get("name") if isinstance(e, dict) else None for e in header["records"]]
    if len(set(map(str, names))) != len(names):
        raise FormatError("record names repeat")
    return header


def _record_info(entry: Any, offset: int, limits: Limits) -> RecordInfo:
    keys = {"name", "kind", "shape", "len", "crc", "p"}
    if not isinstance(entry, dict) or set(entry) != keys:
        raise FormatError(f"record entry must have exactly the keys {sorted(keys)}")
    name, kind, shape, length = entry["name"], entry["kind"], entry["shape"], entry["len"]
    if not isinstance(name, str) or not 0 < len(name) <= 512:
        raise FormatError("record name must be a non-empty string")
    get_record_kind(kind if isinstance(kind, str) else repr(kind))
    if (not isinstance(shape, list) or len(shape) > limits.max_ndim
            or any(type(d) is not int or d < 0 for d in shape)):
        raise FormatError(f"record {name!r}: shape must be at most {limits.max_ndim} sizes >= 0")
    numel = 1
    for d in shape:
        numel *= d
    if numel > limits.max_tensor_elements:
        raise FormatError(f"record {name!r}: {numel} elements exceed the per-tensor limit")
    if type(length) is not int or length < 0 or type(entry["crc"]) is not int:
        raise FormatError(f"record {name!r}: bad payload length or checksum field")
    if not isinstance(entry["p"], dict):
        raise FormatError(f"record {name!r}: params must be an object")
    return RecordInfo(name, kind, tuple(shape), entry["p"], offset, length)
