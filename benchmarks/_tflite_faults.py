"""Faults planted in a deployed int8 .tflite file: the ONNX faults of ``_faults``, in the
flatbuffer.

Each takes the file's bytes and returns damaged bytes of the same length: the weights and
their per-channel scales are edited in place inside the flatbuffer (numpy views on a
``bytearray``, located through LiteRT's own schema module), so the file stays valid and
runs in the real LiteRT interpreter. The weights are the int8 tensors that hold constant
data and per-channel scales, in tensor order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class _Weight:
    values: np.ndarray  # int8 view into the file's bytes, in the tensor's shape
    scales: np.ndarray  # float32 view into the file's bytes
    axis: int  # the quantized (output-channel) dimension


def _weights(data: bytearray) -> list[_Weight]:
    """Views on every int8 weight tensor of the first subgraph (edits write into ``data``)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    graph = model.Subgraphs(0)
    found = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        quant = tensor.Quantization()
        buffer = model.Buffers(tensor.Buffer())
        if tensor.Type() != schema.TensorType.INT8 or quant is None \
                or quant.ScaleLength() == 0:
            continue
        if buffer.Offset() > 1:  # stored after the flatbuffer (files over 2 GB)
            raw = np.frombuffer(data, np.int8, count=buffer.Size(), offset=buffer.Offset())
        elif buffer.DataLength() > 0:
            raw = buffer.DataAsNumpy().view(np.int8)
        else:  # an activation: no constant data
            continue
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
        found.append(_Weight(raw.reshape(shape), quant.ScaleAsNumpy(),
                             quant.QuantizedDimension()))
    return found


def wrong_scale(data: bytes, layer: int = 3, factor: float = 2.0) -> bytes:
    """One layer's weight scales multiplied by ``factor`` (a calibration bug)."""
    data = bytearray(data)
    weight = _weights(data)[layer]
    weight.scales[:] = weight.scales * factor
    return bytes(data)


def swapped_layers(data: bytes) -> bytes:
    """The int8 weights (and scales) of the first two layers of the same shape exchanged."""
    data = bytearray(data)
    by_shape: dict[tuple, list[_Weight]] = {}
    for weight in _weights(data):
        by_shape.setdefault((weight.values.shape, weight.axis), []).append(weight)
    a, b = next(group for group in by_shape.values() if len(group) >= 2)[:2]
    for first, second in ((a.values, b.values), (a.scales, b.scales)):
        kept = first.copy()
        first[...] = second
        second[...] = kept
    return bytes(data)


def corrupted_weight(data: bytes, layer: int = 1) -> bytes:
    """One output channel of a layer's int8 weights negated (a damaged row)."""
    data = bytearray(data)
    weight = _weights(data)[layer]
    rows = np.moveaxis(weight.values, weight.axis, 0)  # a view: writes reach the file
    row = int(np.abs(rows.reshape(len(rows), -1).astype(np.int32)).sum(1).argmax())
    rows[row] = -np.maximum(rows[row], -127)
    return bytes(data)


FAULTS: dict[str, Callable[[bytes], bytes]] = {
    "wrong_scale": wrong_scale, "swapped_layers": swapped_layers,
    "corrupted_weight": corrupted_weight}
