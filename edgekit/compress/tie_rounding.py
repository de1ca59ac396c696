"""Average pools trained with the tie rounding of LiteRT's int8 AVERAGE_POOL_2D.

The int8 kernel sums the raw int8 inputs (zero point included) and divides with rounding
half away from zero; the Q/DQ graph rounds the float average half to even. A 2×2 pool
lands exactly on a half step for a quarter of its outputs, so the two differ by one step
on about 1 in 8 outputs (one-off probe, 2026-11-23: 12.6% of a 2×2 pool's outputs with
half-to-even, 0 in XNNPACK and 0.04% in the builtin kernels with half away from zero).

During QAT a ``TiesAwayFromZero`` module sits between each ``avg_pool2d`` and its output
quantizer (which shares the input's scale): it moves an exact tie a hundredth of a step
away from zero in the raw integer domain, so the quantizer rounds it as the kernel does.
Away from ties it changes nothing. ``drop_tie_breaks`` removes the modules before
``convert_pt2e``; the file's kernel does the same rounding itself.
"""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Node

TIE_TOLERANCE = 1e-3  # in output steps: averages of int8 values are exact k/count fractions
NUDGE = 1e-2  # in output steps


class TiesAwayFromZero(torch.nn.Module):
    """Identity except at exact half steps of ``quantizer``'s grid (straight-through)."""

    def __init__(self, quantizer: torch.nn.Module) -> None:
        super().__init__()
        self._quantizer = [quantizer]  # a list: not a second owner of the quantizer's buffers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quantizer = self._quantizer[0]
        with torch.no_grad():
            scale = quantizer.scale.reshape(())
            raw = x / scale + quantizer.zero_point.reshape(()).to(x.dtype)
            tie = (raw - torch.floor(raw) - 0.5).abs() < TIE_TOLERANCE
            nudge = torch.where(tie, torch.sign(raw) * (NUDGE * scale), torch.zeros_like(x))
        return x + nudge


def insert_tie_breaks(prepared: GraphModule) -> None:
    """Put a ``TiesAwayFromZero`` before the output quantizer of every avg_pool2d."""
    count = 0
    for node in list(prepared.graph.nodes):
        if node.op != "call_function" or node.target != torch.ops.aten.avg_pool2d.default:
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module":
            continue
        quantizer = prepared.get_submodule(users[0].target)
        if not hasattr(quantizer, "scale") or quantizer.scale.numel() != 1:
            continue
        name = f"tie_break_{count}"
        prepared.add_submodule(name, TiesAwayFromZero(quantizer))
        with prepared.graph.inserting_after(node):
            tie_break = prepared.graph.call_module(name, (node,))
        users[0].replace_input_with(node, tie_break)
        count += 1
    prepared.graph.lint()
    prepared.recompile()


def drop_tie_breaks(prepared: GraphModule) -> None:
    """Remove the tie-break modules (before ``convert_pt2e``)."""
    for node in list(prepared.graph.nodes):
        if _is_tie_break(node, prepared):
            node.replace_all_uses_with(node.args[0])
            prepared.graph.erase_node(node)
            prepared.delete_submodule(node.target)
    prepared.graph.lint()
    prepared.recompile()


def _is_tie_break(node: Node, prepared: GraphModule) -> bool:
    return node.op == "call_module" and isinstance(prepared.get_submodule(node.target),
                                                   TiesAwayFromZero)
