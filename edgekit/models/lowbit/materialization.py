"""Turn a low-bit model into a standard float model for export (ONNX, TFLite, TensorRT).

Each low-bit layer becomes an ``nn.Conv2d`` / ``nn.Linear`` whose weight is exactly the
tensor the low-bit layer computes with (``quantized_weight()``), so the exported graph
contains only Conv/Gemm plus, for binary activations, a Where op (XNOR layers with
binary inputs add the Mul by alpha * K, and keep alpha as a buffer). State-dict keys stay
the same (``<layer>.weight``, ``<layer>.bias``), which is what the storage records use.
The declarative map below says which layer becomes what.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgekit.models.lowbit import layers as L
from edgekit.models.lowbit.quantizers import channel_mean_abs, sign_pm1


class XnorScaledConv2d(nn.Conv2d):
    """Standard conv (weight sign(W)) on sign(x), times alpha * K, plus bias."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("alpha", torch.ones(self.out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return L.xnor_conv(x, self.weight, self.alpha.view(1, -1, 1, 1), self.bias, self.stride,
                           self.padding, self.kernel_size, sign_pm1)


class XnorScaledLinear(nn.Linear):
    """Standard linear (weight sign(W)) on sign(x), times alpha * beta, plus bias."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("alpha", torch.ones(self.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return L.xnor_linear(x, self.weight, self.alpha.view(1, -1), self.bias, sign_pm1)


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
    config = getattr(out, "edgekit_config", None)
    if isinstance(config, dict) and "materialized" in config:
        out.edgekit_config = {**config, "materialized": True}
    for name, module in list(out.named_modules()):
        replacement = _standard_for(module)
        if replacement is None:
            continue
        if hasattr(module, "quantized_weight"):
            export_weight = getattr(module, "export_weight", module.quantized_weight)
            replacement.weight.copy_(export_weight())
            if module.bias is not None:
                replacement.bias.copy_(module.bias)
        if isinstance(replacement, (XnorScaledConv2d, XnorScaledLinear)):
            replacement.alpha.copy_(channel_mean_abs(module.weight).flatten())
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
