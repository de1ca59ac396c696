"""Bounds-checked little-endian reading and varint (LEB128) helpers for record payloads."""

from __future__ import annotations

import struct

import numpy as np

from edgekit.core.errors import FormatError


def put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError("varints are unsigned")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


class ByteReader:
    """Reads a payload front to back; every read past the end raises FormatError."""

    def __init__(self, data: bytes | memoryview, what: str = "record") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"{self.what}: needs {n} bytes at offset {self.pos}, "
                              f"only {len(self.data) - self.pos} left")
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def varint(self, limit: int = 1 << 40) -> int:
        value = shift = 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if value > limit:
                raise FormatError(f"{self.what}: value {value} exceeds limit {limit}")
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise FormatError(f"{self.what}: varint too long")

    def array(self, dtype: str, count: int) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(count * itemsize), dtype=dtype).copy()

    def expect_end(self) -> None:
        if self.pos != len(self.data):
            raise FormatError(f"{self.what}: {len(self.data) - self.pos} unread trailing bytes")
