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

from edgekit._io import atomic_path, sha256_file
from edgekit._lazy import require
from edgekit.errors import ExportError, InvalidInputError
from edgekit.export.artifact import Artifact
from edgekit.export.onnx_fold import fold_weight_quantizers
from edgekit.export.onnx_uint8 import requantize_after_data_movement, signed_activations_as_uint8

if TYPE_CHECKING:
    import torch

INPUT_NAME = "input"
OUTPUT_NAME = "output"
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

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, do_constant_folding=True)
        except Exception as exc:  # the exporter raises many types; its first line explains
            raise ExportError(f"the model cannot be exported to ONNX: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                              ) from exc
        proto = onnx.load(str(tmp))
        _check_ops(proto, precision)
        if precision == "int8":  # int8 weights on disk, not float + QuantizeLinear
            provenance["int8_weights_folded"] = str(fold_weight_quantizers(proto))
        if provenance.get("target") == "onnxruntime":  # TensorRT's Q/DQ must stay int8
            provenance["activations_as_uint8"] = str(signed_activations_as_uint8(proto))
            provenance["requantized_after_data_movement"] = str(
                requantize_after_data_movement(proto))
        del proto.metadata_props[:]
        for key, value in provenance.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"exported ONNX fails onnx.checker: {exc}".splitlines()[0]) from exc
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
    inner = getattr(model, "model", None)
    if inner is None:  # a float nn.Module; BatchNorm is folded by the exporter in eval mode
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"cannot export a {type(model).__name__}; pass a "
                                    "QuantizedModel or a torch.nn.Module")
        provenance["precision"] = "fp32"
        return model.eval(), "fp32", provenance
    if getattr(model, "backend", "nncf") != "nncf":
        raise ExportError(f"a {model.backend} model is exported by its own target's exporter "
                          f"(target {model.config.target!r}), not to ONNX")
    import nncf

    stripped = nncf.strip(inner, strip_format=nncf.StripFormat.NATIVE, example_input=example)
    _convert_shared_quantizers(stripped)
    provenance.update({
        "precision": "int8",
        "nncf_version": nncf.__version__,
        "target": model.config.target,
        "quant_mode": model.config.mode,
        "quant_scheme": json.dumps(model.scheme, sort_keys=True),
    })
    return stripped.eval(), "int8", provenance


def _convert_shared_quantizers(stripped: Any) -> int:
    """Convert the quantizers that ``nncf.strip`` (3.4) leaves behind; return how many.

    strip converts each quantizer module once, but a quantizer shared by two hooks (scales
    unified across both inputs of a concat, as in ShuffleNetV2 and ESPNet) stays an nncf
    module at its second hook and would export as OpenVINO's FakeQuantize. Shared ones
    quantize activations only, so no weight needs clamping as strip does for weights.
    """
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer
    from nncf.torch.quantization.strip import convert_to_torch_fakequantizer

    storage = get_hook_storage(stripped)
    left = [(name, module) for name, module in storage.named_hooks(remove_duplicate=False)
            if isinstance(module, BaseQuantizer)]
    converted: dict[int, Any] = {}
    for name, module in left:
        if decode_hook_name(name)[0] != "post_hooks":
            raise ExportError(f"nncf left the weight quantizer {name} unconverted")
        storage.set_submodule(name, converted.setdefault(id(module),
                                                          convert_to_torch_fakequantizer(module)))
    return len(left)


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
