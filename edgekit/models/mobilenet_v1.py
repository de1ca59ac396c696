"""MobileNetV1: depthwise-separable convolutions (Howard et al., 2017).

Width multiplier ``width_mult`` (alpha) thins every layer; resolution is ``input_size``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models._blocks import ConvBNAct, InputCheck, check_positive, init_weights, stem_stride
from edgekit.models.registry import register_model

# (output channels, stride) of the 13 depthwise-separable layers, paper Table 1.
_LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]

# ---- blocks ----------------------------------------------------------------------------


class DepthwiseSeparable(nn.Sequential):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__(
            ConvBNAct(in_ch, in_ch, 3, stride, groups=in_ch),
            ConvBNAct(in_ch, out_ch, 1),
        )


# ---- model class -----------------------------------------------------------------------


class MobileNetV1(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size: int,
                 width_mult: float) -> None:
        super().__init__()
        first = max(8, int(32 * width_mult))
        layers: list[nn.Module] = [InputCheck(in_channels),
                                   ConvBNAct(in_channels, first, 3, stem_stride(input_size))]
        ch = first
        for out, stride in _LAYERS:
            out = max(8, int(out * width_mult))
            layers.append(DepthwiseSeparable(ch, out, stride))
            ch = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(ch, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ---- builder ---------------------------------------------------------------------------


def _build(num_classes: int, in_channels: int, input_size: int, width_mult: float) -> nn.Module:
    check_positive("width_mult", width_mult)
    return MobileNetV1(num_classes, in_channels, input_size, width_mult)


# ---- registered variants ---------------------------------------------------------------


# Howard et al. 2017, Table 8: 1.0 MobileNet-224: 569 M mult-adds, 4.2 M parameters.
@register_model(family="mobilenet_v1", paper={"params": 4.2e6, "macs": 569e6},
                small_defaults={"width_mult": 0.5})
def mobilenet_v1(*, num_classes: int, in_channels: int, input_size: int,
                 width_mult: float = 1.0) -> nn.Module:
    """MobileNetV1 (depthwise-separable convs; width_mult = alpha)."""
    return _build(num_classes, in_channels, input_size, width_mult)
