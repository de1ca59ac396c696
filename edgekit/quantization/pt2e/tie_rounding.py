"""Pools, means and resizes trained with the tie rounding of LiteRT's int8 kernels.

These int8 kernels work on the raw int8 values (zero point included) and keep the
input's scale; the Q/DQ graph computes in float and rounds half to even. Where the
kernel's exact result lands on a half step the two differ by one step:

- AVERAGE_POOL_2D divides the raw sum with rounding half away from zero. A 2×2 pool's
  mean is a k/4 fraction, a tie on about 1 in 8 outputs.
- RESIZE_BILINEAR: XNNPACK's ``s8-ibilinear`` (the default CPU path) interpolates with
  Q11 weights and rounds half up (``asr(acc + 2^21, 22)``). A ×2 half-pixel resize has
  weights 1/4 and 3/4, so its outputs are k/16 fractions and ties are common. (TFLite's
  builtin kernel rounds half away from zero; negative ties then differ by one step.)
- MEAN (global average pooling, ``mean`` over H×W and ``adaptive_avg_pool2d(1)``):
  XNNPACK rounds the raw mean half to even. The Q/DQ graph rounds half to even too, but
  after subtracting the zero point, so with an odd zero point every tie lands one step
  apart; and its float sum of N dequantized values puts a tie a few ulps to either side.
  Over 2×2 a quarter of the means are ties. The builtin kernel rounds differently again
  (no rule we tried matched it). Figures: docs/results.md, "One-off checks".

During QAT a ``TieBreak`` module sits between each such op and its output quantizer
(which shares the input's scale): it moves an exact tie a hundredth of a step in the
kernel's direction, so the quantizer rounds it as the kernel does. Away from ties it
changes nothing. A mean over N values is a k/N fraction, so its tie tolerance is
kept below 1/(4N). ``qat_tflite._convert`` removes the modules before ``convert_pt2e``; the
file's kernels do the rounding themselves.
"""

from __future__ import annotations

import torch
from torch.fx import GraphModule, Node

TIE_TOLERANCE = 1e-3  # in output steps: the exact results are k/4 or k/16 fractions
NUDGE = 1e-2  # in output steps

AWAY_FROM_ZERO = "away_from_zero"
HALF_UP = "half_up"
HALF_EVEN = "half_even"
_RULES = (AWAY_FROM_ZERO, HALF_UP, HALF_EVEN)

# the kernel's tie rule for each op whose int8 kernel rounds a raw-integer result
TIE_RULES = {
    torch.ops.aten.avg_pool2d.default: AWAY_FROM_ZERO,
    torch.ops.aten.upsample_bilinear2d.vec: HALF_UP,
    torch.ops.aten.mean.dim: HALF_EVEN,
    torch.ops.aten.adaptive_avg_pool2d.default: HALF_EVEN,  # global only: lowered to MEAN
}
_MEANS = (torch.ops.aten.mean.dim, torch.ops.aten.adaptive_avg_pool2d.default)


class TieBreak(torch.nn.Module):
    """Identity except at exact half steps of ``quantizer``'s grid (straight-through),
    which it moves by ``rule`` in the raw integer domain."""

    def __init__(self, quantizer: torch.nn.Module, rule: str = AWAY_FROM_ZERO,
                 tolerance: float = TIE_TOLERANCE) -> None:
        super().__init__()
        if rule not in _RULES:
            raise ValueError(f"unknown tie rule {rule!r}")
        self._quantizer = [quantizer]  # a list: not a second owner of the quantizer's buffers
        self.rule = rule
        self.tolerance = tolerance

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quantizer = self._quantizer[0]
        with torch.no_grad():
            scale = quantizer.scale.reshape(())
            raw = x / scale + quantizer.zero_point.reshape(()).to(x.dtype)
            below = torch.floor(raw)
            tie = (raw - below - 0.5).abs() < self.tolerance
            if self.rule == AWAY_FROM_ZERO:
                direction = torch.sign(raw)
            elif self.rule == HALF_UP:
                direction = torch.ones_like(x)
            else:  # toward the even neighbour
                direction = torch.where(torch.remainder(below, 2) == 0, -1.0, 1.0).to(x.dtype)
            nudge = torch.where(tie, direction * (NUDGE * scale), torch.zeros_like(x))
        return x + nudge

    def extra_repr(self) -> str:
        return f"rule={self.rule}, tolerance={self.tolerance:g}"


def insert_tie_breaks(prepared: GraphModule) -> None:
    """Put a ``TieBreak`` before the output quantizer of every op in ``TIE_RULES``."""
    count = 0
    for node in list(prepared.graph.nodes):
        if node.op != "call_function" or node.target not in TIE_RULES:
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module":
            continue
        quantizer = prepared.get_submodule(users[0].target)
        if not hasattr(quantizer, "scale") or quantizer.scale.numel() != 1:
            continue
        tolerance = TIE_TOLERANCE
        if node.target in _MEANS:
            count_per_mean = _reduced_count(node)
            if count_per_mean is None:
                continue
            tolerance = min(TIE_TOLERANCE, 0.25 / count_per_mean)
        name = f"tie_break_{count}"
        prepared.add_submodule(name, TieBreak(quantizer, TIE_RULES[node.target], tolerance))
        with prepared.graph.inserting_after(node):
            tie_break = prepared.graph.call_module(name, (node,))
        users[0].replace_input_with(node, tie_break)
        count += 1
    prepared.graph.lint()
    prepared.recompile()


def _reduced_count(node: Node) -> int | None:
    """Values averaged into each output of a global spatial mean; None for other pools."""
    source = node.args[0]
    while isinstance(source, Node) and source.op == "call_module":  # the input's quantizer
        source = source.args[0]
    src, out = (n.meta.get("val") if isinstance(n, Node) else None for n in (source, node))
    if not isinstance(src, torch.Tensor) or not isinstance(out, torch.Tensor) or src.dim() != 4:
        return None
    channels = src.shape[1]
    if tuple(out.shape[1:]) not in ((channels, 1, 1), (channels,)):  # keepdim or not
        return None  # not a global spatial mean (LiteRT lowers other pools differently)
    return int(src.shape[2]) * int(src.shape[3])
