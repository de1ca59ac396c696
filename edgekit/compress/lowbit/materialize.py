"""Turn a low-bit model into a standard float model for export (ONNX, TFLite, TensorRT).

Each low-bit layer becomes an ``nn.Conv2d`` / ``nn.Linear`` whose weight is exactly the
tensor the low-bit layer computes with (``quantized_weight()``), so the exported graph
contains only Conv/Gemm plus, for binary activations, a Where op. State-dict keys stay
the same (``<layer>.weight``, ``<layer>.bias``), which is what the storage records use.
The declarative map below says which layer becomes what.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.compress.lowbit import layers as L
from edgekit.compress.lowbit.quantizers import sign_pm1


class XnorScaledConv2d(nn.Conv2d):
    """Standard conv on sign(x), times the XNOR activation scale K, plus bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = L.xnor_input_scale_conv(x, self.kernel_size, self.stride, self.padding)
        out = self._conv_forward(sign_pm1(x), self.weight, None) * scale
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class XnorScaledLinear(nn.Linear):
    """Standard linear on sign(x), times beta = mean |x| per sample, plus bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(sign_pm1(x), self.weight, None) * x.abs().mean(dim=-1, keepdim=True)
        return out if self.bias is None else out + self.bias


def _conv_like(layer: nn.Module, cls: type[nn.Conv2d] = nn.Conv2d) -> nn.Conv2d:
    return cls(
        layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
        padding=layer.padding, dilation=getattr(layer, "dilation", 1),
        groups=getattr(layer, "groups", 1), bias=layer.bias is not None,
    )


def _linear_like(layer: nn.Module, cls: type[nn.Linear] = nn.Linear) -> nn.Linear:
    return cls(layer.in_features, layer.out_features, bias=layer.bias is not None)


def _standard_for(layer: nn.Module) -> nn.Module | None:
    """The export module for ``layer`` (weights not yet copied), or None to keep it."""
    if isinstance(layer, L.BinaryActivation):
        return L.SignActivation()
    if isinstance(layer, L.XnorConv2d):
        return _conv_like(layer, XnorScaledConv2d if layer.binary_input else nn.Conv2d)
    if isinstance(layer, L.XnorLinear):
        return _linear_like(layer, XnorScaledLinear if layer.binary_input else nn.Linear)
    if isinstance(layer, (L.BinaryConv2d, L.TernaryConv2d, L.TTQConv2d, L.HashedConv2d)):
        return _conv_like(layer)
    if isinstance(layer, (L.BinaryLinear, L.TernaryLinear, L.TTQLinear, L.HashedLinear)):
        return _linear_like(layer)
    return None


@torch.no_grad()
def materialize(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every low-bit layer made standard.

    The original model is not modified. Attributes such as ``edgekit_config`` are kept.
    """
    out = copy.deepcopy(model).eval()
    for name, module in list(out.named_modules()):
        replacement = _standard_for(module)
        if replacement is None:
            continue
        if hasattr(module, "quantized_weight"):
            replacement.weight.copy_(module.quantized_weight())
            if module.bias is not None:
                replacement.bias.copy_(module.bias)
        if not name:  # the model itself is a single low-bit layer
            return replacement.eval()
        _set_submodule(out, name, replacement.eval())
    return out


def _set_submodule(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def lowbit_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every low-bit weight layer, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, L.LOWBIT_LAYER_TYPES)]
