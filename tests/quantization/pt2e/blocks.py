"""Small stand-ins for the zoo's patterns, shared by the TFLite int8 tests of this folder.

Conversion of the full zoo nets takes about a minute each (benchmarks/tflite_int8.py covers
them); these blocks exercise the same ops in a second.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _bn(ch: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(ch)
    with torch.no_grad():  # non-trivial statistics so folding is actually exercised
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return bn


class MobileNetV3Block(nn.Module):
    """Inverted residual with hardswish and squeeze-excite (hardsigmoid gate)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1, bias=False), _bn(8), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), _bn(8),
                                nn.Hardswish())
        self.se_reduce, self.se_expand = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.project = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), _bn(8))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(x)
        s = F.adaptive_avg_pool2d(y, 1)
        s = F.hardsigmoid(self.se_expand(F.relu(self.se_reduce(s))))
        x = x + self.project(y * s)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ShuffleNetUnit(nn.Module):
    """Channel split (chunk), branch, concat, channel shuffle (view/transpose/view)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1, bias=False), _bn(8), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), _bn(4), nn.ReLU(),
                                    nn.Conv2d(4, 4, 3, 1, 1, groups=4, bias=False), _bn(4))
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        a, b = x.chunk(2, dim=1)
        x = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        return self.fc(self.pool(x).mean((2, 3)))


class ESPNetModule(nn.Module):
    """Dilated-conv pyramid, hierarchical sums, concat, then BN + PReLU on the concat."""

    def __init__(self) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(1, 4, 3, 2, 1, bias=False)
        self.d = nn.ModuleList(nn.Conv2d(4, 4, 3, 1, r, dilation=r, bias=False) for r in (1, 2, 4))
        self.bn, self.act = _bn(12), nn.PReLU(12)
        self.head = nn.Conv2d(12, 10, 1)

    def forward(self, x):
        x = self.reduce(x)
        d1, d2, d4 = (conv(x) for conv in self.d)
        x = self.act(self.bn(torch.cat([d1, d1 + d2, d1 + d2 + d4], 1)))
        return F.adaptive_avg_pool2d(self.head(x), 1).flatten(1)


class FireNet(nn.Module):
    """SqueezeNet fire module: squeeze 1x1, expand 1x1 and 3x3, concat; then a conv head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 2), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, ceil_mode=True))
        self.squeeze = nn.Conv2d(8, 4, 1)
        self.e1, self.e3 = nn.Conv2d(4, 8, 1), nn.Conv2d(4, 8, 3, padding=1)
        self.head = nn.Conv2d(16, 10, 1)

    def forward(self, x):
        x = F.relu(self.squeeze(self.stem(x)))
        x = torch.cat([F.relu(self.e1(x)), F.relu(self.e3(x))], 1)
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.head(x)), 1), 1)


class MobileNetV2Block(nn.Module):
    """Expand / depthwise / project with ReLU6 and a residual add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1, bias=False), _bn(8), nn.ReLU6())
        self.block = nn.Sequential(
            nn.Conv2d(8, 16, 1, bias=False), _bn(16), nn.ReLU6(),
            nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), _bn(16), nn.ReLU6(),
            nn.Conv2d(16, 8, 1, bias=False), _bn(8))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.block(x)
        return self.fc(x.mean((2, 3)))


FAMILIES = {
    "mobilenet_v3": MobileNetV3Block,
    "shufflenet": ShuffleNetUnit,
    "espnet": ESPNetModule,
    "squeezenet": FireNet,
    "mobilenet_v2": MobileNetV2Block,
}
