"""Graph rewrites that run before int8 annotation, so the graph only holds ops that TFLite
has int8 kernels for.

* ``hardsigmoid(x)`` → ``relu6(x + 3) * (1/6)`` (TFLite has no HARD_SIGMOID);
* ``prelu(x, a)`` → ``relu(x) + a * (x - relu(x))`` (litert lowers PReLU to RELU, MUL, MUL,
  SUB and leaves them in float);
* ``split``/``chunk`` + ``getitem`` → one ``slice`` per chunk (observers need tensor
  outputs).
"""

from __future__ import annotations

import operator

import torch
from torch.fx import GraphModule, Node

aten = torch.ops.aten

_SPLITS = {aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default}


def rewrite_for_int8_kernels(gm: GraphModule) -> None:
    """Apply every rewrite to ``gm`` in place (hardsigmoid, PReLU, then splits)."""
    _decompose_hardsigmoid(gm)
    _decompose_prelu(gm)
    _splits_to_slices(gm)


def _constant(gm: GraphModule, value: float, name: str) -> Node:
    attr = name
    i = 0
    while hasattr(gm, attr):
        i += 1
        attr = f"{name}_{i}"
    gm.register_buffer(attr, torch.tensor(value))
    return gm.graph.create_node("get_attr", attr)


def _decompose_hardsigmoid(gm: GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != aten.hardsigmoid.default:
            continue
        with gm.graph.inserting_before(node):
            three = _constant(gm, 3.0, "_hsig_three")
            sixth = _constant(gm, 1.0 / 6.0, "_hsig_sixth")
            shifted = gm.graph.call_function(aten.add.Tensor, (node.args[0], three))
            clipped = gm.graph.call_function(aten.hardtanh.default, (shifted, 0.0, 6.0))
            scaled = gm.graph.call_function(aten.mul.Tensor, (clipped, sixth))
        for new in (shifted, clipped, scaled):
            new.meta["val"] = node.meta.get("val")
        node.replace_all_uses_with(scaled)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()


def _fake_view(val: torch.Tensor, shape: list[int]) -> torch.Tensor:
    mode = getattr(val, "fake_mode", None)
    if mode is None:
        return val.reshape(shape)
    with mode:
        return val.reshape(shape)


def _decompose_prelu(gm: GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target != aten.prelu.default:
            continue
        x, slope = node.args[0], node.args[1]
        x_val, slope_val = x.meta.get("val"), slope.meta.get("val")
        if x_val is None or slope_val is None:
            continue
        channels = slope_val.numel()
        shape = [channels] + [1] * (x_val.dim() - 2) if channels > 1 else [1]
        graph = gm.graph
        with graph.inserting_before(node):
            alpha = graph.call_function(aten.view.default, (slope, shape))
            pos = graph.call_function(aten.relu.default, (x,))
            neg = graph.call_function(aten.sub.Tensor, (x, pos))
            scaled = graph.call_function(aten.mul.Tensor, (neg, alpha))
            out = graph.call_function(aten.add.Tensor, (pos, scaled))
        # observers are only inserted on nodes whose meta says they output a tensor
        for new in (pos, neg, scaled, out):
            new.meta["val"] = node.meta.get("val")
        alpha.meta["val"] = _fake_view(slope_val, shape)
        node.replace_all_uses_with(out)
        graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()


def _splits_to_slices(gm: GraphModule) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in _SPLITS:
            continue
        users = list(node.users)
        if not all(u.op == "call_function" and u.target is operator.getitem for u in users):
            continue
        pieces = node.meta.get("val")
        if not pieces:
            continue
        dim = node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
        ndim = pieces[0].dim()
        dim = dim % ndim
        starts = [0]
        for piece in pieces:
            starts.append(starts[-1] + int(piece.shape[dim]))
        for user in users:
            idx = user.args[1]
            with gm.graph.inserting_before(user):
                sliced = gm.graph.call_function(
                    aten.slice.Tensor, (node.args[0], dim, starts[idx], starts[idx + 1])
                )
            sliced.meta["val"] = user.meta.get("val")
            user.replace_all_uses_with(sliced)
            gm.graph.erase_node(user)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
