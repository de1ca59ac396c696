"""Rewrite an int8 QDQ ONNX file so onnxruntime's x86 CPU provider fuses every int8 op.

Both rewrites keep the file's arithmetic exactly; they only change how the same grid is
written:

* ``signed_activations_as_uint8``: an int8 activation Q/DQ pair (zero point z, scale s)
  becomes uint8 with zero point z + 128. ``saturate_u8(round(x/s) + z + 128)`` is the int8
  value plus 128 and dequantizes to the same float. onnxruntime fuses Conv/Add into
  QLinearConv/QLinearAdd only when input and output have one type; with post-ReLU tensors
  in uint8 and signed ones in int8, MobileNetV2 kept many of its convs in float, between
  Q/DQ and layout transposes (docs/results.md, "One-off checks").
* ``requantize_after_data_movement``: after each op that only moves quantized values
  (Reshape, Transpose, Slice, Concat of one grid, MaxPool, ...), a Q/DQ pair with the
  source grid.
  Re-quantizing a value already on the grid returns it unchanged, and the pair lets
  onnxruntime run the op on uint8 and fuse the conv behind it (ShuffleNet's channel
  shuffle and split sit between a DQ and the next conv).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.quantization.qdq.onnx_fold import drop_unused

# ops whose data output holds (a selection or rearrangement of) their data inputs' values;
# a max of values on one grid is one of them. (LeNet-5 at 224 px: DQ → MaxPool → Flatten →
# Gemm kept its 70 MB fc1 in float, dequantizing the weights on every call, 2026-12-07.)
DATA_MOVEMENT = {"Reshape", "Transpose", "Slice", "Flatten", "Squeeze", "Unsqueeze",
                 "Split", "Concat", "MaxPool", "GlobalMaxPool"}


class GraphIndex:
    """Index of a GraphProto: producers, consumers and constant initializers."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.graph = graph
        inits = {init.name: init for init in graph.initializer}
        # torch.onnx routes shared zero points through Identity nodes of one initializer
        alias = {n.output[0]: n.input[0] for n in graph.node
                 if n.op_type == "Identity" and n.input[0] in inits}
        self.constants = {name: numpy_helper.to_array(init) for name, init in inits.items()}
        self.constants.update({out: self.constants[src] for out, src in alias.items()})
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {out.name for out in graph.output}

    def grid(self, node: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """(scale, zero point) of a per-tensor Q or DQ node with constant parameters."""
        if len(node.input) < 3:
            return None
        scale, zero = self.constants.get(node.input[1]), self.constants.get(node.input[2])
        if scale is None or zero is None or scale.size != 1 or zero.size != 1:
            return None
        return scale, zero

    def add_constant(self, array: np.ndarray, name: str) -> str:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(array, name))
        self.constants[name] = array
        return name


def signed_activations_as_uint8(proto: Any) -> int:
    """Re-type int8 activation Q/DQ pairs as uint8 (zero point + 128); return how many."""
    g = GraphIndex(proto.graph)
    converted = 0
    for node in list(proto.graph.node):
        if node.op_type != "QuantizeLinear" or node.input[0] in g.constants:
            continue  # weights (constant input) stay int8, as the int8 kernels expect
        grid = g.grid(node)
        if grid is None or grid[1].dtype != np.int8 or node.output[0] in g.outputs:
            continue
        readers = g.consumers.get(node.output[0], [])
        if not all(r.op_type == "DequantizeLinear" and g.grid(r) is not None
                   and _same(g.grid(r), grid) for r in readers):
            continue  # every reader must dequantize this grid, or the types would clash
        zero = g.add_constant((grid[1].astype(np.int16) + 128).astype(np.uint8),
                              f"{node.output[0]}_zero_point_uint8")
        for reader in (node, *readers):
            reader.input[2] = zero
        converted += 1
    drop_unused(proto.graph)
    return converted


def requantize_after_data_movement(proto: Any) -> int:
    """Insert a Q/DQ pair of the source grid after each data-movement op fed only by
    dequantized values of one grid; return how many pairs were inserted."""
    g = GraphIndex(proto.graph)
    grid_of: dict[str, tuple[np.ndarray, np.ndarray, str, str]] = {}  # tensor -> its grid
    for node in proto.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] not in g.constants:
            grid = g.grid(node)
            if grid is not None:
                grid_of[node.output[0]] = (*grid, node.input[1], node.input[2])
    inserted = 0
    for node in list(proto.graph.node):
        if node.op_type not in DATA_MOVEMENT:
            continue
        data = node.input if node.op_type == "Concat" else node.input[:1]
        grids = [grid_of.get(name) for name in data]
        if not grids or any(gr is None or not _same(gr[:2], grids[0][:2]) for gr in grids):
            continue
        _, _, scale, zero = grids[0]
        # Split's outputs are all data; MaxPool's second one (if any) holds indices
        for out in node.output if node.op_type == "Split" else node.output[:1]:
            if out in g.outputs:
                continue
            readers = g.consumers.get(out, [])
            if not readers or all(r.op_type == "QuantizeLinear" for r in readers):
                continue  # nothing reads it in float, or it is quantized already
            inserted += 1
            _insert_qdq(proto.graph, node, out, readers, scale, zero)
            grid_of[f"{out}_requantized"] = grids[0]
    return inserted


def shapes_from_quantized(proto: Any) -> int:
    """Let each Shape node that reads a dequantized activation read the quantized tensor
    (same shape), and drop the DequantizeLinear nodes nothing reads any more; return how
    many Shape nodes were rewired.

    A dynamic-batch export computes reshape targets at run time (``b, c, h, w = x.shape``
    in ShuffleNet's channel shuffle). A Shape fed by a DequantizeLinear makes onnxruntime
    dequantize the whole tensor for its shape alone: ShuffleNetV2 at 224 px ran 79
    DequantizeLinear nodes against the vendor file's 30, 14% of its time (2026-12-07).
    """
    g = GraphIndex(proto.graph)
    rewired = 0
    for node in proto.graph.node:
        source = g.producer.get(node.input[0]) if node.op_type == "Shape" else None
        if source is None or source.op_type != "DequantizeLinear" \
                or source.input[0] in g.constants:
            continue
        node.input[0] = source.input[0]
        rewired += 1
    while True:
        read = {name for n in proto.graph.node for name in n.input} | g.outputs
        dead = [n for n in proto.graph.node
                if n.op_type == "DequantizeLinear" and n.output[0] not in read]
        for n in dead:
            proto.graph.node.remove(n)
        if not dead:
            break
    drop_unused(proto.graph)
    return rewired


def _insert_qdq(graph: Any, after: Any, tensor: str, readers: list[Any], scale: str,
                zero: str) -> None:
    from onnx import helper

    quantized, restored = f"{tensor}_quantized", f"{tensor}_requantized"
    for reader in readers:
        reader.input[:] = [restored if name == tensor else name for name in reader.input]
    position = list(graph.node).index(after) + 1
    graph.node.insert(position, helper.make_node(
        "DequantizeLinear", [quantized, scale, zero], [restored], name=f"{tensor}_dq"))
    graph.node.insert(position, helper.make_node(
        "QuantizeLinear", [tensor, scale, zero], [quantized], name=f"{tensor}_q"))


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    """Two (scale, zero point) grids are one: same values and integer type."""
    return all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b, strict=True))
