"""nncf quantizers whose forward computes what the exported ONNX Q/DQ pair computes.

``nncf.strip`` turns each nncf quantizer into torch's ``FakeQuantize``, which the ONNX
exporter writes as QuantizeLinear/DequantizeLinear. The ONNX operators define the
deployed arithmetic: ``q = saturate(round_half_even(x / scale) + zero_point)``, then
``(q - zero_point) * scale`` (onnxruntime computes exactly this). nncf's own kernel
reaches the same grid by another float formula (it shifts by the range's low end and
multiplies by levels/range), and torch's fake-quant multiplies by 1/scale instead of
dividing. Near a rounding boundary either one lands a step away from the file, and in a
deep residual net those steps compound (a PTQ ESPNetv2 lost about a pixel in a hundred to
them; docs/results.md, "One-off checks", has the figures).

So each quantizer's forward value here is the ONNX formula, with the scale and zero point
that strip writes. Its gradients stay nncf's: straight-through to the input, and to the
learnable range. QAT therefore trains with the arithmetic of the exported file.

Three paths compute that value. With gradients on (QAT steps) one autograd node computes
only the ONNX value and hands nncf's backward the tensors nncf's own node saves: the same
gradients, in less time than nncf's node. While nncf traces its graph (``strip``, graph
checks) nncf's own op runs and its output is overwritten, so the trace sees the quantizer:
``strip`` finds each weight through it to clamp the weight into the narrow range, and
without that the file stored -128 where QAT had used -127, and the file verified below
100%. Any other evaluation computes the ONNX value alone (nncf's op was a large part of
the cost of evaluating the QAT model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from nncf.torch.function_hook.graph.build_graph_mode import GraphBuilderMode
from nncf.torch.quantization.layers import SymmetricQuantizer
from nncf.torch.quantization.quantize_functions import QuantizeSymmetric
from torch._C import DisableTorchFunction

from edgekit.core.errors import ExportError


def onnx_qdq(quantizer: Any, x: torch.Tensor) -> torch.Tensor:
    """``x`` through the QuantizeLinear/DequantizeLinear pair exported for ``quantizer``
    (outside autograd: the result is computed in place)."""
    if quantizer.clamps_to_range:  # as strip does to the weights it rewrites
        low, high = quantizer.get_input_low_input_high()
        x = torch.min(torch.max(x, low), high)
    quant_min, quant_max, scale, zero_point = quantizer.get_parameters_for_torch_fq()
    if quantizer.per_channel:  # nncf.strip's axis rule
        shape = [1] * x.dim()
        shape[int(np.argmax(quantizer.scale_shape))] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    else:
        scale, zero_point = scale.squeeze(), zero_point.squeeze()
    q = x / scale
    q.round_()
    if zero_point.any():  # nncf's symmetric quantizers have none; kept for the formula
        zero_point = zero_point.to(x.dtype)
        return (q.add_(zero_point).clamp_(quant_min, quant_max) - zero_point) * scale
    return q.clamp_(quant_min, quant_max).mul_(scale)  # in place: a quarter of QAT's time


class _TrainingQDQ(torch.autograd.Function):
    """Forward: the ONNX Q/DQ value. Backward: nncf's ``QuantizeSymmetric.backward`` on the
    tensors its forward saves (the input, the range's low end and width)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor, quantizer: Any) -> torch.Tensor:
        input_low = scale * (quantizer.level_low / quantizer.level_high)  # as nncf computes it
        ctx.save_for_backward(x, input_low, scale - input_low)
        ctx.levels = quantizer.levels
        ctx.level_low, ctx.level_high = quantizer.level_low, quantizer.level_high
        return onnx_qdq(quantizer, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        grad_input, grad_scale = QuantizeSymmetric.backward(ctx, grad)[:2]
        return grad_input, grad_scale, None


class QDQSymmetricQuantizer(SymmetricQuantizer):
    """nncf's symmetric quantizer (the only kind edgekit's nncf schemes use) with the ONNX
    Q/DQ forward."""

    clamps_to_range = False  # set by use_qdq_forward

    def quantize(self, x: torch.Tensor, execute_traced_op_as_identity: bool = False
                 ) -> torch.Tensor:
        if execute_traced_op_as_identity or _graph_tracing():
            out = super().quantize(x, execute_traced_op_as_identity)
            if not execute_traced_op_as_identity:
                # the tensor the trace follows keeps its node; only its values change
                with torch.no_grad(), DisableTorchFunction():
                    out.copy_(onnx_qdq(self, x.detach()))
            return out
        # outside nncf's function hooks, as nncf's own call is: these ops are the
        # quantizer's, not the model's
        with DisableTorchFunction():
            self.to(x.device)  # as nncf does: quantizers loaded onto another device
            if torch.is_grad_enabled():  # a QAT step
                return _TrainingQDQ.apply(x, abs(self.scale) + self.eps, self)
            return onnx_qdq(self, x)


def _graph_tracing() -> bool:
    """Whether nncf is tracing the model's graph (its hooks run inside its mode, on the
    stack nncf reads the same way)."""
    return any(isinstance(mode, GraphBuilderMode)
               for mode in torch.overrides._get_current_function_mode_stack())


def use_qdq_forward(qmodel: torch.nn.Module) -> int:
    """Give every symmetric nncf quantizer of ``qmodel`` the ONNX Q/DQ forward; return how
    many."""
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.wrapper import get_hook_storage

    changed = 0
    for name, module in get_hook_storage(qmodel).named_hooks():
        if type(module) is not SymmetricQuantizer:
            continue
        is_weight = decode_hook_name(name)[0] == "pre_hooks"
        if module.is_half_range and not is_weight:  # nncf uses it for weights only
            raise ExportError(f"nncf quantizer {name} quantizes an activation in half range")
        module.__class__ = QDQSymmetricQuantizer
        # strip clamps the weights under a narrow-range or half-range (7-bit) pre-hook
        # before converting them
        module.clamps_to_range = is_weight and (module.narrow_range or module.is_half_range)
        changed += 1
    return changed
