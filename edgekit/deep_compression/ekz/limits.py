"""Limits a decoder enforces before allocating anything a file declares."""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"\x89EKZ\r\n\x1a\n"  # PNG-style: catches text-mode mangling and truncation early
VERSION = 1
PREAMBLE_SIZE = 20  # magic(8) + version u16 + flags u16 + header_len u32 + header_crc u32


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one ``.ekz`` file may declare; exceeding one is a FormatError."""

    max_header_bytes: int = 1 << 20
    max_records: int = 4096
    max_ndim: int = 8
    max_tensor_elements: int = 1 << 28
    max_output_bytes: int = 1 << 30  # all decoded tensors together, as fp32
    max_alphabet: int = 1 << 16  # symbols per coded stream
    max_json_depth: int = 32


DEFAULT_LIMITS = Limits()
