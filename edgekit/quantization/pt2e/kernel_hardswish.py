"""Hard-swish trained with the integer arithmetic of LiteRT's int8 HARD_SWISH kernel.

The Q/DQ graph computes ``x * relu6(x + 3) / 6`` in float and rounds once. LiteRT runs
int8 HARD_SWISH with TFLite's own kernel (XNNPACK does not take it: its outputs were the
builtin kernels' on every input), which works in 16-bit fixed point
(``tflite::reference_ops::HardSwish``): the input on a 2^7 finer scale, its output-scale
value and its "relu-ish" gate each from a rounded 16-bit multiplier, their product
truncated, then a rounding shift. On a few int8 inputs its result is a step away from the
float formula's, and over MobileNetV3-large's hard-swishes those steps compounded to half
its logits (docs/results.md, "One-off checks").
``tflite_hardswish`` reproduces the kernel: it matches LiteRT on all 256 inputs of a one-op
file at every range tried (tests/quantization/pt2e/test_kernel_hardswish.py runs four).

During QAT a ``KernelHardswish`` sits between each hard-swish and its output quantizer:
its value is the kernel's result on the quantized input, its gradient the float
hard-swish's (straight-through). ``quantize_for_tflite`` inserts it after calibration:
the kernel needs the output quantizer's calibrated scale (inserted before, it skewed
MobileNetV3-small's calibrated ranges and its accuracy after QAT).
``qat_tflite._convert`` removes it before ``convert_pt2e``; the file's kernel computes it.
"""

from __future__ import annotations

import math

import torch
from torch.fx import GraphModule

HARDSWISH_OPS = (torch.ops.aten.hardswish.default, torch.ops.aten.hardswish_.default)
_I16_MIN, _I16_MAX = -(1 << 15), (1 << 15) - 1


class KernelHardswish(torch.nn.Module):
    """Straight-through: the float hard-swish's gradient, the kernel's int8 result as value."""

    def __init__(self, input_quantizer: torch.nn.Module,
                 output_quantizer: torch.nn.Module) -> None:
        super().__init__()
        # a list: not a second owner of the quantizers' buffers
        self._quantizers = [input_quantizer, output_quantizer]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x``: the hard-swish's (fake-quantized) input; ``y``: its float output, the
        value ``qat_tflite._convert`` puts back when it removes this module."""
        (s_in, zp_in), (s_out, zp_out) = ((float(q.scale.reshape(())),
                                           int(q.zero_point.reshape(())))
                                          for q in self._quantizers)
        with torch.no_grad():
            codes = torch.clamp(torch.round(x / s_in) + zp_in, -128, 127).to(torch.int64)
            target = ((tflite_hardswish(codes, s_in, zp_in, s_out, zp_out) - zp_out)
                      * s_out).to(y.dtype)
        return y + (target - y).detach()


def tflite_hardswish(codes: torch.Tensor, s_in: float, zp_in: int, s_out: float,
                     zp_out: int) -> torch.Tensor:
    """TFLite's int8 HARD_SWISH of the int8 ``codes`` (int64 tensor in, int64 codes out),
    with its parameters prepared as the kernel's ``HardSwishPrepare`` does (float32)."""
    f32 = torch.float32
    hires = torch.tensor(1.0 / 128.0, dtype=f32) * torch.tensor(s_in, dtype=f32)
    out_mult, out_exp = _multiplier16(float(hires / torch.tensor(s_out, dtype=f32)))
    relu_mult, relu_exp = _multiplier16(float(hires / torch.tensor(3.0 / 32768.0, dtype=f32)))
    value = (codes - zp_in) * 128  # the input on the "hires" scale
    on_output_scale = _rounding_doubling_high_mul(value, out_mult)
    reluish = value
    if relu_exp > 0:
        reluish = torch.clamp(reluish * (1 << (relu_exp - 1)), _I16_MIN, _I16_MAX)
    reluish = _rounding_doubling_high_mul(reluish, relu_mult)
    if relu_exp > 0:
        reluish = torch.clamp(reluish * 2, _I16_MIN, _I16_MAX)
    elif relu_exp < 0:
        reluish = _rounding_divide_by_pot(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1  # [-1, 1] -> [0, 1] in Q15
    product = _truncating_div(reluish * on_output_scale, 1 << 15)  # SaturatingDoublingHighMul
    out = _rounding_divide_by_pot(product, -out_exp) + zp_out
    return torch.clamp(out, -128, 127)


def _multiplier16(multiplier: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier then DownScaleInt32ToInt16Multiplier: (Q15, exponent)."""
    if multiplier == 0:
        return 0, 0
    fraction, exponent = math.frexp(multiplier)
    q31 = math.floor(fraction * (1 << 31) + 0.5)  # TfLiteRound, half away from zero
    if q31 == 1 << 31:
        q31, exponent = q31 // 2, exponent + 1
    if exponent < -31:
        return 0, 0
    if q31 >= (1 << 31) - 1 - (1 << 15):
        return _I16_MAX, exponent
    return (q31 + (1 << 15)) >> 16, exponent


def _truncating_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="trunc")  # C integer division


def _rounding_doubling_high_mul(a: torch.Tensor, b: int) -> torch.Tensor:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16 values (held in int64)."""
    product = a * b
    nudge = torch.where(product >= 0, 1 << 14, 1 - (1 << 14))
    high = _truncating_div(product + nudge, 1 << 15)
    return torch.where((a == b) & (a == _I16_MIN), _I16_MAX, high)


def _rounding_divide_by_pot(x: torch.Tensor, exponent: int) -> torch.Tensor:
    """gemmlowp's RoundingDivideByPOT: round half away from zero."""
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (x < 0).to(x.dtype)
    return (x >> exponent) + ((x & mask) > threshold).to(x.dtype)


def insert_kernel_hardswish(prepared: GraphModule) -> int:
    """Put a ``KernelHardswish`` before the output quantizer of every per-tensor-quantized
    hard-swish; return how many."""
    count = 0
    for node in list(prepared.graph.nodes):
        if node.op != "call_function" or node.target not in HARDSWISH_OPS:
            continue
        source, users = node.args[0], list(node.users)
        if (len(users) != 1 or users[0].op != "call_module"
                or getattr(source, "op", None) != "call_module"):
            continue
        quantizers = [prepared.get_submodule(n.target) for n in (source, users[0])]
        if not all(hasattr(q, "scale") and q.scale.numel() == 1 for q in quantizers):
            continue
        name = f"kernel_hardswish_{count}"
        prepared.add_submodule(name, KernelHardswish(*quantizers))
        with prepared.graph.inserting_after(node):
            emulated = prepared.graph.call_module(name, (source, node))
        users[0].replace_input_with(node, emulated)
        count += 1
    prepared.graph.lint()
    prepared.recompile()
    return count
