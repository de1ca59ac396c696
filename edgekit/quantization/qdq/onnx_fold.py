"""Store quantized weights as int8 in the ONNX file, so the int8 model is smaller on disk.

Fake-quant export writes each weight as float32 followed by QuantizeLinear → DequantizeLinear.
Folding the constant QuantizeLinear into an int8 initializer leaves the same DequantizeLinear
(the explicit-quantization pattern TensorRT and onnxruntime's QDQ fusion both consume) and
computes exactly what the runtime would: round half to even, saturate, in float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fold_weight_quantizers(proto: Any) -> int:
    """Replace constant-input QuantizeLinear nodes by integer initializers; return how many."""
    from onnx import numpy_helper

    graph = proto.graph
    inits = {init.name: init for init in graph.initializer}
    # torch.onnx routes shared zero points through Identity nodes of one initializer.
    alias = {n.output[0]: n.input[0] for n in graph.node
             if n.op_type == "Identity" and n.input[0] in inits}

    def constant(name: str) -> np.ndarray | None:
        name = alias.get(name, name)
        return numpy_helper.to_array(inits[name]) if name in inits else None

    folded = []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in inits:
            continue
        weight, scale = constant(node.input[0]), constant(node.input[1])
        zero = constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if weight is None or scale is None or (len(node.input) > 2 and zero is None):
            continue
        zero = np.zeros((), np.uint8) if zero is None else zero
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        graph.initializer.append(
            numpy_helper.from_array(_quantize(weight, scale, zero, axis), node.output[0]))
        folded.append(node)
    for node in folded:
        graph.node.remove(node)
    drop_unused(graph)
    return len(folded)


def _quantize(weight: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int) -> np.ndarray:
    if scale.ndim == 1 and weight.ndim > 1:  # per-channel along `axis`
        shape = [1] * weight.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    info = np.iinfo(zero.dtype)
    q = np.rint(weight.astype(np.float32) / scale.astype(np.float32)) + zero.astype(np.float32)
    return np.clip(q, info.min, info.max).astype(zero.dtype)


def drop_unused(graph: Any) -> None:
    """Remove initializers and Identity nodes that nothing reads any more."""
    while True:
        used = {name for node in graph.node for name in node.input}
        used |= {out.name for out in graph.output}
        dead = [n for n in graph.node if n.op_type == "Identity" and n.output[0] not in used]
        for node in dead:
            graph.node.remove(node)
        if not dead:
            break
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
