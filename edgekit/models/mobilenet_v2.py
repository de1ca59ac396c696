"""MobileNetV2: inverted residuals with linear bottlenecks (Sandler et al., 2018)."""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models._blocks import (
    ConvBNAct,
    InputCheck,
    check_positive,
    init_weights,
    make_divisible,
    stem_stride,
)
from edgekit.models.registry import register_model

# expansion t, output channels c, repeats n, first stride s (paper Table 2)
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

# ---- blocks ----------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    """1x1 expand + ReLU6, 3x3 depthwise + ReLU6, 1x1 linear projection (+ residual)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(in_ch, hidden, 1, act="relu6"))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act="relu6"),
                   ConvBNAct(hidden, out_ch, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


# ---- model class -----------------------------------------------------------------------


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size: int,
                 width_mult: float, dropout: float = 0.2) -> None:
        super().__init__()
        ch = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [
            InputCheck(in_channels),
            ConvBNAct(in_channels, ch, 3, stem_stride(input_size), act="relu6"),
        ]
        for t, c, n, s in _SETTINGS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(ch, out, s if i == 0 else 1, t))
                ch = out
        layers.append(ConvBNAct(ch, last, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ---- builder ---------------------------------------------------------------------------


def _build(num_classes: int, in_channels: int, input_size: int, width_mult: float) -> nn.Module:
    check_positive("width_mult", width_mult)
    return MobileNetV2(num_classes, in_channels, input_size, width_mult)


# ---- registered variants ---------------------------------------------------------------


# Sandler et al. 2018, Table 4: 300 M MAdds, "3.4 M" params; the authors' TF-slim release
# (mobilenet_v2_1.0_224 in tensorflow/models research/slim/nets/mobilenet) lists 3.47 M.
@register_model(family="mobilenet_v2", paper={"params": 3.47e6, "macs": 300e6},
                small_defaults={"width_mult": 0.5})
def mobilenet_v2(*, num_classes: int, in_channels: int, input_size: int,
                 width_mult: float = 1.0) -> nn.Module:
    """MobileNetV2 (inverted residuals, linear bottlenecks, ReLU6)."""
    return _build(num_classes, in_channels, input_size, width_mult)
