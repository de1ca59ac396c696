"""A binary conv net in the style of Bi-Real-Net (Liu et al. 2018), sized for 28x28 digits.

Every binary 3x3 conv sees sign(x) and has a real-valued shortcut around it
(``x + BN(bconv(sign(x)))``), Bi-Real-Net's point: the shortcut carries the real-valued
activations past the 1-bit conv. Where the width doubles the shortcut is ``[x, x]`` (no
weights); max-pooling halves the resolution between stages. The stem and the classifier
have binary weights on real-valued inputs (as ``binary_mlp``'s first layer), so they store
as 1-bit (``.ekz``) or exact int8 codes (LCE export, ``edgekit.export.lce``), while the
binary convs become Larq Compute Engine ``LceBconv2d`` ops.

=============  ==============================================================  =======
name           layers                                                          weights
=============  ==============================================================  =======
bireal_net     stem 3x3/2 64 | block 64 | pool | 64->128, 128 | pool |          binary
               128->256, 256 | global avg pool | fc (1.14 M binary weights)     (twn)
=============  ==============================================================  =======
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.models.lowbit import layers as L
from edgekit.models.lowbit.nets import _CONV, _LINEAR, LowBitNet, _check_kind, _finish
from edgekit.models.registry import register_model


class BiRealBlock(nn.Module):
    """``shortcut(x) + BN(conv3x3(act(x)))``; act is sign (binary) or ReLU (ternary weights,
    and the fp32 twin); the shortcut is ``x``, or ``[x, x]`` where the width doubles."""

    def __init__(self, weights: str, cin: int, cout: int) -> None:
        super().__init__()
        if cout not in (cin, 2 * cin):
            raise ValueError(f"a block keeps or doubles the width, got {cin} -> {cout}")
        self.act = L.BinaryActivation() if weights == "binary" else nn.ReLU()
        self.conv = _CONV[weights](cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.doubles = cout == 2 * cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = torch.cat([x, x], dim=1) if self.doubles else x
        return shortcut + self.bn(self.conv(self.act(x)))


@register_model(min_input_size=8, family="lowbit", num_classes=10, in_channels=1,
                input_size=28)
def bireal_net(*, num_classes: int, in_channels: int, input_size: int, weights: str = "binary",
               width: int = 64, materialized: bool = False) -> nn.Module:
    """Bi-Real-style binary conv net: binary-weight stem, 5 binary blocks, binary-weight fc.
    ``weights="twn"``: the same net with ternary (TWN) weights and ReLU activations."""
    _check_kind(weights, ("binary", "twn", "fp32"))
    conv, linear = _CONV[weights], _LINEAR[weights]
    w1, w2, w3 = width, 2 * width, 4 * width
    features = nn.Sequential(
        conv(in_channels, w1, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w1),
        BiRealBlock(weights, w1, w1), nn.MaxPool2d(2),
        BiRealBlock(weights, w1, w2), BiRealBlock(weights, w2, w2), nn.MaxPool2d(2),
        BiRealBlock(weights, w2, w3), BiRealBlock(weights, w3, w3),
        nn.AdaptiveAvgPool2d(1),
    )
    # A final BN keeps the logits of a binary-weight classifier well scaled (as binary_mlp).
    classifier = nn.Sequential(linear(w3, num_classes), nn.BatchNorm1d(num_classes))
    return _finish(LowBitNet(features, classifier, weights, in_channels), materialized)
