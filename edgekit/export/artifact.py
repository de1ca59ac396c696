"""Artifact: one deployed file plus its provenance, JSON-serialisable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Artifact:
    """A file an exporter wrote: where, in which format and precision, and its hash.

    ``metadata`` holds provenance (edgekit and toolchain versions, target, scheme) and,
    after verification, the verify report under ``"verify"``.
    """

    path: Path
    format: str  # "onnx" | "tflite" | "engine"
    precision: str  # "int8" | "fp16" | "fp32"
    input_shape: tuple[int, ...]  # (C, H, W) of one sample
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)
    verify_report: Any = None

    def to_dict(self) -> dict[str, Any]:
        report = self.verify_report
        return {
            "path": str(self.path),
            "format": self.format,
            "precision": self.precision,
            "input_shape": list(self.input_shape),
            "sha256": self.sha256,
            "metadata": _jsonable(self.metadata),
            "verify": report.to_dict() if hasattr(report, "to_dict") else report,
        }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)
