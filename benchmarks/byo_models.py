"""Three small CNNs from outside edgekit's zoo, for ``benchmarks/byo.py`` ("bring your own").

Each is plain PyTorch written the way users write theirs, with the constructs that trip
up quantizers and exporters:

* ``mnv3_se``: MobileNetV3-style inverted residuals — residual adds, hard-swish, and
  squeeze-excite with a hard-sigmoid gate (written by hand; torchvision is not used);
* ``shuffle_cat``: ShuffleNetV2-style units — a channel split, two branches joined by
  ``torch.cat``, and a channel shuffle (view / transpose / view);
* ``seq_dropout``: a top-level ``nn.Sequential`` ending in Flatten, Dropout and Linear.

RGB input (3 channels), any square size of at least 32 px; tens of thousands of
parameters each. Factories take ``num_classes`` and ``width`` (a channel multiplier):

    edgekit compress --model benchmarks/byo_models.py:mnv3_se --model-args '{"num_classes": 10}'
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FACTORIES", "mnv3_se", "seq_dropout", "shuffle_cat"]


def _ch(channels: int, width: float) -> int:
    """``channels`` times ``width``, rounded to a multiple of 4 (at least 4)."""
    return max(4, round(channels * width / 4) * 4)


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1
             ) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout)]


# -- model 1: residual adds, hard-swish, squeeze-excite (MobileNetV3 blocks) -------------------

class SqueezeExcite(nn.Module):
    """Channel gate: global average → 1×1 reduce → ReLU → 1×1 expand → hard-sigmoid → scale."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    """Expand 1×1 → depthwise k×k → (SE) → project 1×1; a residual add at stride 1."""

    def __init__(self, cin: int, expanded: int, cout: int, kernel: int, stride: int,
                 se: bool, act: type[nn.Module]) -> None:
        super().__init__()
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expanded != cin:
            layers += [*_conv_bn(cin, expanded), act()]
        layers += [*_conv_bn(expanded, expanded, kernel, stride, groups=expanded), act()]
        if se:
            layers.append(SqueezeExcite(expanded, max(8, _ch(expanded, 0.25))))
        layers += _conv_bn(expanded, cout)
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV3Tiny(nn.Module):
    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        c = [_ch(n, width) for n in (16, 24, 40, 64)]
        hs, relu = nn.Hardswish, nn.ReLU
        self.stem = nn.Sequential(*_conv_bn(3, c[0], 3, 2), hs())
        self.blocks = nn.Sequential(
            InvertedResidual(c[0], c[0], c[0], 3, 1, True, relu),       # residual add
            InvertedResidual(c[0], c[0] * 4, c[1], 3, 2, False, relu),
            InvertedResidual(c[1], c[1] * 3, c[1], 3, 1, False, relu),  # residual add
            InvertedResidual(c[1], c[1] * 3, c[2], 5, 2, True, hs),
            InvertedResidual(c[2], c[2] * 3, c[2], 5, 1, True, hs),     # residual add
        )
        self.head = nn.Sequential(*_conv_bn(c[2], c[3]), hs(), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c[3], 64), hs(),
                                        nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.blocks(self.stem(x))))


def mnv3_se(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """Model 1: residual adds + hard-swish + squeeze-excite with a hard-sigmoid gate."""
    return MobileNetV3Tiny(num_classes, width)


# -- model 2: channel split, two branches, torch.cat, channel shuffle (ShuffleNetV2) -----------

def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Stride 1: split the channels, transform one half, concat, shuffle. Stride 2: both
    branches see the whole input (one depthwise-strided, one full), concat, shuffle."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        branch_in = cin if stride == 2 else cin // 2
        self.branch2 = nn.Sequential(
            *_conv_bn(branch_in, half), nn.ReLU(inplace=True),
            *_conv_bn(half, half, 3, stride, groups=half),
            *_conv_bn(half, half), nn.ReLU(inplace=True))
        self.branch1 = nn.Sequential(
            *_conv_bn(cin, cin, 3, stride, groups=cin),
            *_conv_bn(cin, half), nn.ReLU(inplace=True)) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
            out = torch.cat((left, self.branch2(right)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetTiny(nn.Module):
    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        c = [_ch(n, width) for n in (16, 32, 64, 96)]
        self.stem = nn.Sequential(*_conv_bn(3, c[0], 3, 2), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(
            ShuffleUnit(c[0], c[1], 2), ShuffleUnit(c[1], c[1], 1),
            ShuffleUnit(c[1], c[2], 2), ShuffleUnit(c[2], c[2], 1))
        self.head = nn.Sequential(*_conv_bn(c[2], c[3]), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.stages(self.stem(x))))
        return self.fc(torch.flatten(x, 1))


def shuffle_cat(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """Model 2: channel split + two branches joined by torch.cat + channel shuffle."""
    return ShuffleNetTiny(num_classes, width)


# -- model 3: a top-level nn.Sequential with Dropout --------------------------------------------

def seq_dropout(num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """Model 3: nn.Sequential(conv-bn-relu ×4 with pooling, Flatten, Dropout(0.2), Linear)."""
    c = [_ch(n, width) for n in (16, 32, 48, 64)]
    return nn.Sequential(
        *_conv_bn(3, c[0], 3, 2), nn.ReLU(inplace=True),
        *_conv_bn(c[0], c[1], 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        *_conv_bn(c[1], c[2], 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        *_conv_bn(c[2], c[3], 3), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(c[3], num_classes))


# name -> factory, in the order the benchmark runs them
FACTORIES = {"mnv3_se": mnv3_se, "shuffle_cat": shuffle_cat, "seq_dropout": seq_dropout}
