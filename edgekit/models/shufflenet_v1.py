"""ShuffleNetV1: grouped pointwise convs and channel shuffle (Zhang et al., 2018).

Layout and channel table follow the paper (Table 1) and the authors' release
(megvii-model/ShuffleNet-Series): the first pointwise conv of stage 2 is not grouped
(only 24 input channels), the bottleneck is a quarter of the output channels, and a
stride-2 unit concatenates a 3x3 average-pooled shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.core.errors import InvalidInputError
from edgekit.models._blocks import (
    ChannelShuffle,
    ConvBNAct,
    InputCheck,
    check_positive,
    init_weights,
    make_divisible,
)
from edgekit.models.registry import register_model

# output channels of stages 2-4 at scale factor 1.0, per group count (paper Table 1)
_STAGE_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                   4: (272, 544, 1088), 8: (384, 768, 1536)}
_REPEATS = (4, 8, 4)

# ---- blocks ----------------------------------------------------------------------------


class ShuffleUnit(nn.Module):
    """1x1 group conv -> shuffle -> 3x3 depthwise -> 1x1 group conv; add or concat shortcut."""

    def __init__(self, in_ch: int, out_ch: int, groups: int, stride: int,
                 group_first: bool) -> None:
        super().__init__()
        mid = out_ch // 4
        branch_out = out_ch - in_ch if stride == 2 else out_ch
        self.compress = ConvBNAct(in_ch, mid, 1, groups=groups if group_first else 1)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, 3, stride, groups=mid, act=None)
        self.expand = ConvBNAct(mid, branch_out, 1, groups=groups, act=None)
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.depthwise(self.shuffle(self.compress(x))))
        if self.shortcut is None:
            return self.act(x + out)
        return torch.cat([self.shortcut(x), self.act(out)], 1)


# ---- model class -----------------------------------------------------------------------


class ShuffleNetV1(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size: int, groups: int,
                 width_mult: float) -> None:
        super().__init__()
        divisor = 4 * groups  # keeps the bottleneck (out/4) divisible by the group count
        stem = make_divisible(24 * width_mult, groups if groups > 1 else 4)
        # Small inputs (< 64 px) drop the stem max-pool: total stride 16 instead of 32.
        self.stem = nn.Sequential(
            InputCheck(in_channels), ConvBNAct(in_channels, stem, 3, 2),
            nn.MaxPool2d(3, 2, 1) if input_size >= 64 else nn.Identity(),
        )
        units: list[nn.Module] = []
        ch = stem
        widths = _STAGE_CHANNELS[groups]
        for stage, (base, repeats) in enumerate(zip(widths, _REPEATS, strict=True)):
            out = make_divisible(base * width_mult, divisor)
            for i in range(repeats):
                units.append(ShuffleUnit(ch, out, groups, 2 if i == 0 else 1,
                                         group_first=not (stage == 0 and i == 0)))
                ch = out
        self.stages = nn.Sequential(*units)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(ch, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


# ---- builder ---------------------------------------------------------------------------


def _build(num_classes: int, in_channels: int, input_size: int, groups: int,
           width_mult: float) -> nn.Module:
    if isinstance(groups, bool) or groups not in _STAGE_CHANNELS:
        raise InvalidInputError(
            f"shufflenet_v1 groups must be one of {sorted(_STAGE_CHANNELS)}, got {groups!r}")
    check_positive("width_mult", width_mult)
    return ShuffleNetV1(num_classes, in_channels, input_size, groups, width_mult)


# ---- registered variants ---------------------------------------------------------------


# Zhang et al. 2018, Table 2: ShuffleNet 1x (g = 3): 140 MFLOPs (multiply-adds). Params:
# the authors' release (megvii ShuffleNet-Series, ShuffleNetV1 README) lists 1.9 M for 1.0x g3.
@register_model(family="shufflenet_v1", paper={"params": 1.9e6, "macs": 140e6},
                small_defaults={"width_mult": 0.5})
def shufflenet_v1(*, num_classes: int, in_channels: int, input_size: int, groups: int = 3,
                  width_mult: float = 1.0) -> nn.Module:
    """ShuffleNetV1 (group conv + channel shuffle; groups in {1, 2, 3, 4, 8})."""
    return _build(num_classes, in_channels, input_size, groups, width_mult)
