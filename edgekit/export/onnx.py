"""ONNX export: float, or int8 QDQ from an nncf fake-quant model (TensorRT explicit quantization).

``nncf.strip(..., StripFormat.NATIVE)`` turns nncf's quantizers into torch fake-quant ops,
which ``torch.onnx.export`` (TorchScript exporter) writes as QuantizeLinear/DequantizeLinear
pairs. The file gets a dynamic batch axis, provenance in ``metadata_props``, and must pass
``onnx.checker`` (full check) before it is renamed into place.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import ExportError, InvalidInputError, first_line
from edgekit.core.io import atomic_path, sha256_file
from edgekit.core.lazy import require
from edgekit.export.artifact import Artifact
from edgekit.quantization.qdq.onnx_graph import (
    INPUT_NAME,
    OUTPUT_NAME,
    rewrite_for_target,
    stripped_module,
    trace_onnx,
)
from edgekit.quantization.types import QdqQuantizedModel, QuantizedModel

if TYPE_CHECKING:
    import torch

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_onnx", "read_metadata"]

MIN_OPSET = 13  # per-channel QuantizeLinear (axis) needs 13


def export_onnx(
    model: Any,
    path: str | Path,
    *,
    input_shape: tuple[int, ...] | None = None,
    dynamic_batch: bool = True,
    opset: int = 17,
    metadata: dict[str, Any] | None = None,
) -> Artifact:
    """Write ``model`` (a QuantizedModel or a float nn.Module) to ``path`` as ONNX."""
    torch = require("torch", purpose="ONNX export")
    onnx = require("onnx", purpose="ONNX export")
    if opset < MIN_OPSET:
        raise InvalidInputError(f"opset must be >= {MIN_OPSET} for QDQ export, got {opset}")
    shape = _input_shape(model, input_shape)
    example = torch.zeros(1, *shape)
    module, precision, provenance = _exportable(model, example)
    provenance.update({"input_shape": json.dumps(list(shape)), "opset": str(opset),
                       "dynamic_batch": str(bool(dynamic_batch)).lower()})
    for key, value in (metadata or {}).items():
        provenance[str(key)] = value if isinstance(value, str) else json.dumps(value, default=str)

    path = Path(path)
    with atomic_path(path) as tmp:
        trace_onnx(module, example, tmp, opset=opset, dynamic_batch=dynamic_batch)
        proto = onnx.load(str(tmp))
        _check_ops(proto, precision)
        if isinstance(model, QdqQuantizedModel):
            provenance.update(rewrite_for_target(proto, model.config.target))
        del proto.metadata_props[:]
        for key, value in provenance.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"exported ONNX fails onnx.checker: {first_line(exc)}") from exc
    return Artifact(path=path, format="onnx", precision=precision, input_shape=shape,
                    sha256=sha256_file(path), metadata=provenance)


def _input_shape(model: Any, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    shape = input_shape or getattr(model, "input_shape", None)
    if not shape:
        raise InvalidInputError("input_shape (C, H, W) is required to export a float model")
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidInputError(f"input_shape must be (C, H, W) with positive sizes, got {shape}")
    return shape


def _exportable(model: Any, example: torch.Tensor) -> tuple[torch.nn.Module, str, dict[str, str]]:
    """The module to trace, its precision, and provenance entries (all strings)."""
    import onnx
    import torch

    from edgekit import __version__

    provenance = {
        "producer": "edgekit",
        "edgekit_version": __version__,
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "python_version": platform.python_version(),
    }
    if isinstance(model, QdqQuantizedModel):
        import nncf

        provenance.update({
            "precision": "int8",
            "nncf_version": nncf.__version__,
            "target": model.config.target,
            "quant_mode": model.config.mode,
            "quant_scheme": json.dumps(model.scheme, sort_keys=True),
        })
        if model.config.keep_float:  # the precision plan: layers whose weights stay float
            provenance["keep_float"] = json.dumps(list(model.config.keep_float))
        return stripped_module(model, example), "int8", provenance
    if isinstance(model, QuantizedModel):
        raise ExportError(f"a {type(model).__name__} (target {model.config.target!r}) is "
                          "exported by its own target's exporter, not to ONNX")
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"cannot export a {type(model).__name__}; pass a "
                                "QuantizedModel or a torch.nn.Module")
    provenance["precision"] = "fp32"  # BatchNorm is folded by the exporter in eval mode
    return model.eval(), "fp32", provenance


def _check_ops(proto: Any, precision: str) -> None:
    """Only standard-domain ops (no OpenVINO FakeQuantize); int8 files must hold QDQ pairs."""
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in proto.graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise ExportError(f"exported ONNX uses non-standard ops {foreign}; TensorRT and "
                          "onnxruntime cannot run them")
    if precision == "int8" and not any(n.op_type == "QuantizeLinear" for n in proto.graph.node):
        raise ExportError("quantized export produced no QuantizeLinear nodes")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (provenance written by export_onnx)."""
    onnx = require("onnx", purpose="reading ONNX metadata")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
