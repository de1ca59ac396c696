"""SqueezeNet 1.0 and 1.1: Fire modules (Iandola et al., 2016).

Faithful to the paper and the authors' Caffe release: no batch norm, ReLU after each
conv, a 1x1 conv classifier followed by global average pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models._blocks import InputCheck
from edgekit.models.registry import register_model

# ---- blocks ----------------------------------------------------------------------------


class Fire(nn.Module):
    """1x1 squeeze conv, then parallel 1x1 and 3x3 expand convs concatenated."""

    def __init__(self, in_ch: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(in_ch, squeeze, 1), nn.ReLU())
        self.expand1x1 = nn.Sequential(nn.Conv2d(squeeze, expand1x1, 1), nn.ReLU())
        self.expand3x3 = nn.Sequential(nn.Conv2d(squeeze, expand3x3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], 1)


# ---- model class -----------------------------------------------------------------------


class SqueezeNet(nn.Module):
    def __init__(self, version: str, num_classes: int, in_channels: int, input_size: int,
                 dropout: float = 0.5) -> None:
        super().__init__()
        small = input_size < 64  # stride-1 'same' stem below 64 px: total stride 8, not 16

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, ceil_mode=True)

        if version == "1_0":
            kernel, stem = 7, 96
            fires: list[nn.Module] = [
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), pool(), Fire(512, 64, 256, 256),
            ]
        else:
            kernel, stem = 3, 64
            fires = [
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), Fire(512, 64, 256, 256),
            ]
        self.features = nn.Sequential(
            InputCheck(in_channels),
            nn.Conv2d(in_channels, stem, kernel, stride=1 if small else 2,
                      padding=kernel // 2 if small else 0),
            nn.ReLU(), pool(), *fires,
        )
        final_conv = nn.Conv2d(512, num_classes, 1)  # one name only: no aliased weights
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        for m in self.modules():  # the torchvision/Caffe initialisation
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


# ---- registered variants ---------------------------------------------------------------


# Iandola et al. 2016, Table 1: SqueezeNet 1.0 has 1,248,424 parameters ("1.25 M"). The
# paper gives no MAC count; 819 M is torchvision's published figure for the same layout.
@register_model(family="squeezenet", paper={"params": 1.248424e6, "macs": 819e6})
def squeezenet1_0(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """SqueezeNet 1.0 (Fire modules, 7x7 stem)."""
    return SqueezeNet("1_0", num_classes, in_channels, input_size)


# SqueezeNet 1.1 (authors' release, forresti/SqueezeNet README: "2.4x less computation"
# than 1.0, slightly fewer parameters). 1,235,496 params and 352 M MACs are torchvision's
# published figures for the released Caffe model.
@register_model(family="squeezenet", paper={"params": 1.235496e6, "macs": 352e6})
def squeezenet1_1(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """SqueezeNet 1.1 (3x3 stem, earlier pooling)."""
    return SqueezeNet("1_1", num_classes, in_channels, input_size)
