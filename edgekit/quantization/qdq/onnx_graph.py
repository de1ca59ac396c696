"""The QDQ model as an ONNX graph: nncf's quantizers stripped to torch fake-quant ops, traced
by ``torch.onnx.export`` (TorchScript exporter) as QuantizeLinear/DequantizeLinear pairs,
then rewritten for the target (int8 weights on disk; uint8 activations for onnxruntime).

``edgekit.export.onnx`` writes the file from this (provenance, checks, atomic rename);
``bias_grid`` reads the deployed scales from the very same graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import ExportError, first_line
from edgekit.quantization.qdq.onnx_fold import fold_weight_quantizers
from edgekit.quantization.qdq.onnx_uint8 import (
    requantize_after_data_movement,
    shapes_from_quantized,
    signed_activations_as_uint8,
)
from edgekit.quantization.types import QdqQuantizedModel

if TYPE_CHECKING:
    import torch

INPUT_NAME = "input"
OUTPUT_NAME = "output"


def trace_onnx(module: torch.nn.Module, example: torch.Tensor, path: str | Path, *,
               opset: int, dynamic_batch: bool) -> None:
    """``torch.onnx.export`` of ``module`` to ``path`` (float or fake-quant), one input and
    one output, the batch axis dynamic when asked; exporter failures become ExportError."""
    import torch

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    try:
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes=axes, do_constant_folding=True)
    except Exception as exc:  # the exporter raises many types; its first line explains
        raise ExportError(f"the model cannot be exported to ONNX: {first_line(exc)}") from exc


def stripped_module(qm: QdqQuantizedModel, example: torch.Tensor) -> torch.nn.Module:
    """``qm.model`` with nncf's quantizers replaced by torch fake-quant ops (a copy)."""
    import nncf

    stripped = nncf.strip(qm.model, strip_format=nncf.StripFormat.NATIVE, example_input=example)
    _convert_shared_quantizers(stripped)
    return stripped.eval()


def rewrite_for_target(proto: Any, target: str) -> dict[str, str]:
    """Int8 weights on disk (not float + QuantizeLinear); for onnxruntime, uint8 activations
    and requantization after data movement. Returns what was done, as provenance strings."""
    done = {"int8_weights_folded": str(fold_weight_quantizers(proto))}
    if target == "onnxruntime":  # TensorRT's Q/DQ must stay int8
        done["activations_as_uint8"] = str(signed_activations_as_uint8(proto))
        done["requantized_after_data_movement"] = str(requantize_after_data_movement(proto))
        done["shapes_read_from_quantized"] = str(shapes_from_quantized(proto))
    return done


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
