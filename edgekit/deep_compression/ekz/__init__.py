"""The ``.ekz`` compressed model file: container, record kinds, limits (spec: docs/ekz-format.md).

numpy-only on the read path (plus bitarray/constriction for the coded record kinds), so a
device can decode without torch; :mod:`edgekit.export.ekz` adds torch and ONNX.
"""

from __future__ import annotations

from edgekit.deep_compression.ekz.container import (
    EkzFile,
    RecordInfo,
    TensorRecord,
    encode_ekz,
    load_ekz,
    parse_ekz,
    read_ekz,
    write_ekz,
)
from edgekit.deep_compression.ekz.limits import DEFAULT_LIMITS, MAGIC, VERSION, Limits
from edgekit.deep_compression.ekz.records import (
    RECORD_KINDS,
    RecordKind,
    SharedWeights,
    get_record_kind,
    param_choice,
    param_int,
    register_record_kind,
)

__all__ = [
    "DEFAULT_LIMITS",
    "MAGIC",
    "RECORD_KINDS",
    "VERSION",
    "EkzFile",
    "Limits",
    "RecordInfo",
    "RecordKind",
    "SharedWeights",
    "TensorRecord",
    "encode_ekz",
    "get_record_kind",
    "load_ekz",
    "param_choice",
    "param_int",
    "parse_ekz",
    "read_ekz",
    "register_record_kind",
    "write_ekz",
]
