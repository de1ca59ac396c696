"""Faults planted in a deployed int8 ONNX file, for checking that verification catches them.

Each takes the file's ``onnx.ModelProto`` and returns a damaged copy; the weights are the
int8 initializers that feed a DequantizeLinear into a Conv or Gemm.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np


def _weight_dequantizers(model) -> list:
    """The DequantizeLinear nodes whose input is an int8 initializer (weights), in order."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits \
                and numpy_helper.to_array(inits[node.input[0]]).dtype == np.int8:
            found.append(node)
    return found


def _init(model, name: str):
    return next(i for i in model.graph.initializer if i.name == name)


def _replace(model, name: str, array: np.ndarray) -> None:
    from onnx import numpy_helper

    _init(model, name).CopyFrom(numpy_helper.from_array(array, name))


def wrong_scale(model, layer: int = 3, factor: float = 2.0):
    """One layer's weight scales multiplied by ``factor`` (a calibration bug)."""
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    node = _weight_dequantizers(model)[layer]
    scale = numpy_helper.to_array(_init(model, node.input[1]))
    _replace(model, node.input[1], (scale * factor).astype(scale.dtype))
    return model


def swapped_layers(model):
    """The int8 weights (and scales) of two layers of the same shape exchanged."""
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    nodes = _weight_dequantizers(model)
    shapes: dict[tuple, list] = {}
    for node in nodes:
        shape = numpy_helper.to_array(_init(model, node.input[0])).shape
        shapes.setdefault(shape, []).append(node)
    a, b = next(group for group in shapes.values() if len(group) >= 2)[:2]
    for k in (0, 1):
        first = numpy_helper.to_array(_init(model, a.input[k])).copy()
        second = numpy_helper.to_array(_init(model, b.input[k])).copy()
        _replace(model, a.input[k], second)
        _replace(model, b.input[k], first)
    return model


def corrupted_weight(model, layer: int = 1):
    """One output channel of a layer's int8 weights negated (a damaged row)."""
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    node = _weight_dequantizers(model)[layer]
    weights = numpy_helper.to_array(_init(model, node.input[0])).copy()
    row = int(np.abs(weights.reshape(len(weights), -1)).sum(1).argmax())
    weights[row] = -np.maximum(weights[row], -127)
    _replace(model, node.input[0], weights)
    return model


FAULTS: dict[str, Callable] = {"wrong_scale": wrong_scale, "swapped_layers": swapped_layers,
                               "corrupted_weight": corrupted_weight}
