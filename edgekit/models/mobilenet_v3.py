"""MobileNetV3-Large and -Small (Howard et al., "Searching for MobileNetV3", 2019).

Inverted residuals with squeeze-and-excitation (Hardsigmoid gate) and h-swish, both as
``nn.Hardswish`` / ``nn.Hardsigmoid`` modules so quantizers can see them.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models._blocks import (
    ConvBNAct,
    InputCheck,
    SqueezeExcite,
    check_positive,
    init_weights,
    make_divisible,
    stem_stride,
)
from edgekit.models.registry import register_model

# kernel, expanded, out, squeeze-excite, activation, stride (paper Tables 1 and 2)
_LARGE = [
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1), (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
]
_SMALL = [
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1), (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2), (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
]

# ---- blocks ----------------------------------------------------------------------------


class Bneck(nn.Module):
    """MobileNetV3 bottleneck: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 linear project."""

    def __init__(self, in_ch: int, kernel: int, hidden: int, out_ch: int, use_se: bool,
                 act: str, stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != in_ch:
            layers.append(ConvBNAct(in_ch, hidden, 1, act=act))
        layers.append(ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if use_se:
            layers.append(SqueezeExcite(hidden, make_divisible(hidden // 4)))
        layers.append(ConvBNAct(hidden, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


# ---- model class -----------------------------------------------------------------------


class MobileNetV3(nn.Module):
    def __init__(self, config: list[tuple], last_channel: int, num_classes: int,
                 in_channels: int, input_size: int, width_mult: float,
                 dropout: float = 0.2) -> None:
        super().__init__()
        ch = make_divisible(16 * width_mult)
        layers: list[nn.Module] = [
            InputCheck(in_channels),
            ConvBNAct(in_channels, ch, 3, stem_stride(input_size), act="hswish"),
        ]
        for kernel, hidden, out, use_se, act, stride in config:
            hidden, out = make_divisible(hidden * width_mult), make_divisible(out * width_mult)
            layers.append(Bneck(ch, kernel, hidden, out, use_se, act, stride))
            ch = out
        layers.append(ConvBNAct(ch, 6 * ch, 1, act="hswish"))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * ch, last_channel), nn.Hardswish(), nn.Dropout(dropout),
            nn.Linear(last_channel, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ---- builder ---------------------------------------------------------------------------


def _build(config: list[tuple], last: int, num_classes: int, in_channels: int,
           input_size: int, width_mult: float) -> nn.Module:
    check_positive("width_mult", width_mult)
    last = make_divisible(last * width_mult) if width_mult > 1.0 else last
    return MobileNetV3(config, last, num_classes, in_channels, input_size, width_mult)


# ---- registered variants ---------------------------------------------------------------


# Howard et al. 2019, Table 3: MobileNetV3-Large 1.0: 219 M MAdds, 5.4 M params.
@register_model(family="mobilenet_v3", paper={"params": 5.4e6, "macs": 219e6},
                small_defaults={"width_mult": 0.5})
def mobilenet_v3_large(*, num_classes: int, in_channels: int, input_size: int,
                       width_mult: float = 1.0) -> nn.Module:
    """MobileNetV3-Large (h-swish, squeeze-excite)."""
    return _build(_LARGE, 1280, num_classes, in_channels, input_size, width_mult)


# Howard et al. 2019, Table 4: MobileNetV3-Small 1.0: 56 M MAdds, 2.5 M params.
@register_model(family="mobilenet_v3", paper={"params": 2.5e6, "macs": 56e6},
                small_defaults={"width_mult": 0.5})
def mobilenet_v3_small(*, num_classes: int, in_channels: int, input_size: int,
                       width_mult: float = 1.0) -> nn.Module:
    """MobileNetV3-Small (h-swish, squeeze-excite)."""
    return _build(_SMALL, 1024, num_classes, in_channels, input_size, width_mult)
