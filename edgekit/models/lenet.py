"""LeNet-300-100 and LeNet-5 (Caffe variant), the MNIST baselines of Deep Compression.

Han et al., "Deep Compression" (ICLR 2016), Table 2/3: LeNet-300-100 has 267K weights,
LeNet-5 431K. Both take N x C x S x S images (28 x 28 x 1 by default).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models._blocks import InputCheck
from edgekit.models.registry import register_model

# ---- model classes ---------------------------------------------------------------------


class LeNet300100(nn.Module):
    """Fully connected 784-300-100-10 network; flattens image input."""

    def __init__(self, num_classes: int, in_channels: int, input_size: int) -> None:
        super().__init__()
        self.check = InputCheck(in_channels)
        self.fc1 = nn.Linear(in_channels * input_size * input_size, 300)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(300, 100)
        self.act2 = nn.ReLU()
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.check(x), 1)
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))


class LeNet5(nn.Module):
    """Caffe LeNet-5: conv 20 5x5, max-pool, conv 50 5x5, max-pool, fc 500, fc classes."""

    def __init__(self, num_classes: int, in_channels: int, input_size: int) -> None:
        super().__init__()
        self.check = InputCheck(in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, 5), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        )
        side = ((input_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(self.check(x)), 1)
        return self.fc2(self.act(self.fc1(x)))


# ---- registered variants ---------------------------------------------------------------

_MNIST = {"num_classes": 10, "in_channels": 1, "input_size": 28}


# Deep Compression, Table 2: LeNet-300-100 "267K" weights.
@register_model(family="lenet", paper={"params": 267e3}, min_input_size=1, **_MNIST)
def lenet300_100(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """LeNet-300-100: MLP 784-300-100-10 (Deep Compression's MNIST baseline)."""
    return LeNet300100(num_classes, in_channels, input_size)


# Deep Compression, Table 3: LeNet-5 "431K" weights.
@register_model(family="lenet", paper={"params": 431e3}, min_input_size=16, **_MNIST)
def lenet5(*, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """LeNet-5 (Caffe): conv20-pool-conv50-pool-fc500-fc10."""
    return LeNet5(num_classes, in_channels, input_size)
