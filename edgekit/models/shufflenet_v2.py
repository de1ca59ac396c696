"""ShuffleNetV2: channel split, shuffle and equal-width branches (Ma et al., 2018)."""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models._blocks import ChannelShuffle, ConvBNAct, InputCheck, init_weights
from edgekit.models.registry import register_model

_REPEATS = (4, 8, 4)
# stage 2-4 widths and final 1x1 conv width per scale (paper Table 5)
_WIDTHS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
           1.5: (176, 352, 704, 1024), 2.0: (244, 488, 976, 2048)}

# ---- blocks ----------------------------------------------------------------------------


class ShuffleV2Unit(nn.Module):
    """Stride 1: split channels, transform one half. Stride 2: two downsampling branches."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        half = out_ch // 2
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(
                ConvBNAct(in_ch, in_ch, 3, 2, groups=in_ch, act=None),
                ConvBNAct(in_ch, half, 1),
            )
        branch_in = in_ch if stride == 2 else half
        self.branch2 = nn.Sequential(
            ConvBNAct(branch_in, half, 1),
            ConvBNAct(half, half, 3, stride, groups=half, act=None),
            ConvBNAct(half, half, 1),
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            keep, transform = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(transform)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return self.shuffle(out)


# ---- model class -----------------------------------------------------------------------


class ShuffleNetV2(nn.Module):
    def __init__(self, widths: tuple[int, ...], num_classes: int, in_channels: int,
                 input_size: int) -> None:
        super().__init__()
        # Small inputs (< 64 px) drop the stem max-pool: total stride 16 instead of 32.
        self.stem = nn.Sequential(
            InputCheck(in_channels), ConvBNAct(in_channels, 24, 3, 2),
            nn.MaxPool2d(3, 2, 1) if input_size >= 64 else nn.Identity(),
        )
        units: list[nn.Module] = []
        ch = 24
        for out, repeats in zip(widths[:3], _REPEATS, strict=True):
            for i in range(repeats):
                units.append(ShuffleV2Unit(ch, out, 2 if i == 0 else 1))
                ch = out
        units.append(ConvBNAct(ch, widths[3], 1))
        self.stages = nn.Sequential(*units)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[3], num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


# ---- builder ---------------------------------------------------------------------------


def _build(scale: float, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    return ShuffleNetV2(_WIDTHS[scale], num_classes, in_channels, input_size)


# ---- registered variants ---------------------------------------------------------------
# Ma et al. 2018, Table 8 (complexity in FLOPs = multiply-adds) and the authors' release
# (megvii ShuffleNet-Series, ShuffleNetV2 README) for parameters.


@register_model(family="shufflenet_v2", paper={"params": 1.4e6, "macs": 41e6})
def shufflenet_v2_x0_5(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """ShuffleNetV2 0.5x."""
    return _build(0.5, num_classes, in_channels, input_size)


@register_model(family="shufflenet_v2", paper={"params": 2.3e6, "macs": 146e6})
def shufflenet_v2_x1_0(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """ShuffleNetV2 1.0x."""
    return _build(1.0, num_classes, in_channels, input_size)


@register_model(family="shufflenet_v2", paper={"params": 3.5e6, "macs": 299e6})
def shufflenet_v2_x1_5(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """ShuffleNetV2 1.5x."""
    return _build(1.5, num_classes, in_channels, input_size)


@register_model(family="shufflenet_v2", paper={"params": 7.4e6, "macs": 591e6})
def shufflenet_v2_x2_0(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """ShuffleNetV2 2.0x."""
    return _build(2.0, num_classes, in_channels, input_size)
