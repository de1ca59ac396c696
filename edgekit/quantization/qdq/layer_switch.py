"""Leave chosen layers of a quantized QDQ model in float for a while, without calibrating
again: what ``QuantConfig.keep_float`` builds, switched on a model already calibrated.

``keep_float`` removes a layer's weight quantizers before the onnxruntime scheme adds its
fusable output quantizers (``edgekit.quantization.qdq.fusable``), so a kept layer gets
neither; its input quantizer stays. Here the same quantizers are disabled in place (nncf's
``disable_quantization``) and enabled again afterwards. What differs from a model quantized
with ``keep_float``: the kept layer's bias stays on the int32 grid of the onnxruntime scheme
(a step of input scale x weight scale, far below the weight rounding this undoes).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from edgekit.quantization.types import QdqQuantizedModel


def layer_of_op(op_name: str) -> str:
    """The module path of an nncf op name: ``features/3/conv2d/0`` -> ``features.3``."""
    return ".".join(op_name.split("/")[:-2])


class LayerSwitch:
    """The weight (and fusable output) quantizers of each weight-quantized layer of
    ``quantized``, by module path, and a context that leaves some layers in float."""

    def __init__(self, quantized: QdqQuantizedModel) -> None:
        import torch
        from nncf.torch.function_hook.hook_storage import decode_hook_name
        from nncf.torch.function_hook.wrapper import get_hook_storage

        from edgekit.quantization.qdq.fusable import kernels_before_unfused_activations

        self.model = quantized.model
        hooks = [(decode_hook_name(name), module)
                 for name, module in get_hook_storage(self.model).named_hooks()]
        weight_ops = {op for (kind, op, _), _ in hooks if kind == "pre_hooks"}
        fusable: set[str] = set()
        if quantized.config.target == "onnxruntime" and quantized.input_shape:
            fusable = set(kernels_before_unfused_activations(
                self.model, torch.zeros(1, *quantized.input_shape)))
        self.quantizers: dict[str, list[Any]] = {}
        for (kind, op, _), module in hooks:
            if kind == "pre_hooks" or (op in fusable and op in weight_ops):
                self.quantizers.setdefault(layer_of_op(op), []).append(module)

    @property
    def layers(self) -> list[str]:
        """The switchable layers (weight-quantized conv/linear module paths), in model order."""
        return list(self.quantizers)

    @contextmanager
    def kept_float(self, layers: Iterable[str]) -> Iterator[torch.nn.Module]:
        """The model with ``layers`` in float; their quantizers are enabled again on exit."""
        layers = list(layers)
        unknown = [name for name in layers if name not in self.quantizers]
        if unknown:
            raise InvalidInputError(f"no weight-quantized layer named {unknown}; the "
                                    f"layers are {', '.join(self.layers)}")
        switched = [q for name in layers for q in self.quantizers[name]
                    if q.is_enabled_quantization()]
        for quantizer in switched:
            quantizer.disable_quantization()
        try:
            yield self.model
        finally:
            for quantizer in switched:
                quantizer.enable_quantization()
