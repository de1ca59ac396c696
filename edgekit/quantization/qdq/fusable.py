"""Quantizers on conv (and linear) outputs that feed an activation onnxruntime cannot fuse,
so the layer runs as an int8 kernel (onnxruntime target only).

onnxruntime fuses ``DequantizeLinear → Conv → QuantizeLinear`` into ``QLinearConv`` only
when a QuantizeLinear reads the conv's output. ReLU (and Clip) between them is dropped when
the quantizer's range starts at the activation's floor, but nothing else is. nncf fuses
Conv + hard-swish into one pattern and quantizes after the activation, so in a
MobileNetV3-small file (224 px, 1 thread, AVX-512 VNNI CPU, 2026-12-07) 36 of 52 convs ran
in float behind a DequantizeLinear of their int8 weights, and the int8 file was ~3x slower
than fp32. onnxruntime's own ``quantize_static`` quantizes every conv output instead.

(MobileNetV3's classifier Linear + hard-swish: the same, DQ → Gemm in float.)

Here each such conv or linear layer gets a signed int8 per-tensor quantizer on its output,
calibrated to the largest magnitude it produces on the calibration samples. It is an nncf
quantizer like the others: QAT learns its range, the ONNX Q/DQ forward and ``nncf.strip``
handle it, and the exported pair sits between the layer and the activation, where
onnxruntime fuses it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

# nncf metatype names of activations onnxruntime runs in float after an int8 conv
UNFUSED_ACTIVATIONS = frozenset({"hardswish", "hardsigmoid", "silu", "gelu", "sigmoid",
                                 "tanh", "elu", "mish"})
_KERNELS = frozenset({"conv2d", "conv1d", "conv_transpose2d", "linear"})


class _MaxAbs(torch.nn.Module):
    """Identity that remembers the largest magnitude it saw (calibration)."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.peak = max(self.peak, float(x.detach().abs().max()))
        return x


def convs_before_unfused_activations(qmodel: Any, example: torch.Tensor) -> list[str]:
    """nncf op names of the weight-quantized convs and linear layers whose every reader is
    an activation onnxruntime cannot fold into a QuantizeLinear (and whose output has no
    quantizer yet)."""
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.wrapper import get_hook_storage

    hooks = [decode_hook_name(name) for name, _ in get_hook_storage(qmodel).named_hooks()]
    weight_quantized = {op for kind, op, _ in hooks if kind == "pre_hooks"}
    output_quantized = {op for kind, op, _ in hooks if kind == "post_hooks"}
    return [op for op in kernels_before_unfused_activations(qmodel, example)
            if op in weight_quantized and op not in output_quantized]


def kernels_before_unfused_activations(qmodel: Any, example: torch.Tensor) -> list[str]:
    """nncf op names of every conv and linear layer whose every reader is an activation
    onnxruntime cannot fold into a QuantizeLinear: the layers whose output quantizer, once
    the model is quantized, is the one ``quantize_conv_outputs`` added."""
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph

    graph = build_nncf_graph(qmodel, example)
    names = []
    for node in graph.get_all_nodes():
        if node.node_type not in _KERNELS:
            continue
        readers = graph.get_next_nodes(node)
        if readers and all(r.node_type in UNFUSED_ACTIVATIONS for r in readers):
            names.append(node.node_name)
    return names


def quantize_conv_outputs(qmodel: Any, calib: torch.Tensor, batch_size: int) -> int:
    """Add a calibrated signed int8 quantizer on the output of each layer
    ``convs_before_unfused_activations`` names; return how many."""
    from nncf.torch.function_hook.wrapper import get_hook_storage, register_post_function_hook
    from nncf.torch.quantization.layers import SymmetricQuantizer

    template = next((m for name, m in get_hook_storage(qmodel).named_hooks()
                     if name.startswith("post_hooks") and type(m) is SymmetricQuantizer), None)
    convs = convs_before_unfused_activations(qmodel, calib[:1])
    if template is None or not convs:
        return 0
    meters = {op: _MaxAbs() for op in convs}
    handles = [register_post_function_hook(qmodel, op, 0, meter) for op, meter in meters.items()]
    was_training = qmodel.training
    qmodel.eval()
    with torch.no_grad():
        for batch in torch.split(calib, batch_size):
            qmodel(batch)
    for handle in handles:
        handle.remove()
    qmodel.train(was_training)
    for op, meter in meters.items():
        quantizer = copy.deepcopy(template)
        quantizer.signed = True  # a pre-activation: both signs
        quantizer.scale = torch.nn.Parameter(  # the setter keeps nncf's log storage right
            torch.full_like(template.scale.detach(), max(meter.peak, 1e-8)))
        register_post_function_hook(qmodel, op, 0, quantizer)
    return len(meters)
