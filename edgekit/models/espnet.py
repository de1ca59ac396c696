"""ESPNet (v1): efficient spatial pyramid of dilated convolutions (Mehta et al., ECCV 2018).

An ESP module reduces channels with a 1x1 conv (or a strided 3x3 when downsampling),
splits into K = 5 parallel 3x3 convs with dilation 1, 2, 4, 8, 16, fuses them
hierarchically (each branch adds the previous sum before concatenation, which removes
gridding artifacts) and adds the input back. Layout follows the authors' release
(sacmehta/ESPNet, ``Model.py``): ESPNet-C encoder with input reinforcement, alpha2 = 2,
alpha3 = 8, and the light decoder with transposed convs. Deviation: PReLU is replaced by
ReLU (integer quantizers and TensorRT/TFLite fusions handle Conv+BN+ReLU best), except
after the decoder's last conv, which has no activation: it has only ``num_classes``
channels and feeds the (linear) classifier directly, and a ReLU there, unlike the
original's PReLU, zeroes half of them; on mnist5k_seg the net then hardly learned which
digit a pixel belongs to (test mIoU 0.16 after 15 epochs with class weights; 0.60 without
that ReLU).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.core.errors import InvalidInputError
from edgekit.models._blocks import ConvBNAct, InputCheck, init_weights
from edgekit.models.registry import register_model

_DILATIONS = (1, 2, 4, 8, 16)

# ---- blocks ----------------------------------------------------------------------------


class BNAct(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU())


class ESPModule(nn.Module):
    """Reduce -> split into 5 dilated 3x3 branches -> hierarchical fusion -> concat [+ input]."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        n = out_ch // 5
        n1 = out_ch - 4 * n
        kernel = 3 if stride == 2 else 1
        self.reduce = nn.Conv2d(in_ch, n, kernel, stride, kernel // 2, bias=False)
        self.branches = nn.ModuleList(
            nn.Conv2d(n, n1 if d == 1 else n, 3, 1, d, dilation=d, bias=False)
            for d in _DILATIONS)
        self.residual = residual and stride == 1 and in_ch == out_ch
        self.out = BNAct(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reduce(x)
        outs = [self.branches[0](r)]
        fused = self.branches[1](r)
        outs.append(fused)
        for branch in self.branches[2:]:  # hierarchical feature fusion
            fused = fused + branch(r)
            outs.append(fused)
        y = torch.cat(outs, 1)
        return self.out(x + y if self.residual else y)


class InputProjection(nn.Sequential):
    """The input image average-pooled ``times`` times by 2 (input reinforcement)."""

    def __init__(self, times: int) -> None:
        super().__init__(*[nn.AvgPool2d(3, 2, 1) for _ in range(times)])


class ESPEncoder(nn.Module):
    """ESPNet-C: returns the stride-2, stride-4 and stride-8 feature maps."""

    def __init__(self, in_channels: int, alpha2: int, alpha3: int) -> None:
        super().__init__()
        self.level1 = ConvBNAct(in_channels, 16, 3, 2)
        self.sample1, self.sample2 = InputProjection(1), InputProjection(2)
        self.b1 = BNAct(16 + in_channels)
        self.level2_0 = ESPModule(16 + in_channels, 64, stride=2)
        self.level2 = nn.Sequential(*[ESPModule(64, 64) for _ in range(alpha2)])
        self.b2 = BNAct(128 + in_channels)
        self.level3_0 = ESPModule(128 + in_channels, 128, stride=2)
        self.level3 = nn.Sequential(*[ESPModule(128, 128) for _ in range(alpha3)])
        self.b3 = BNAct(256)
        self.out_channels = (16 + in_channels, 128 + in_channels, 256)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s1 = self.b1(torch.cat([self.level1(x), self.sample1(x)], 1))
        l2_0 = self.level2_0(s1)
        s2 = self.b2(torch.cat([self.level2(l2_0), l2_0, self.sample2(x)], 1))
        l3_0 = self.level3_0(s2)
        s3 = self.b3(torch.cat([l3_0, self.level3(l3_0)], 1))
        return s1, s2, s3


# ---- model classes ---------------------------------------------------------------------


class ESPNetClassifier(nn.Module):
    """ESPNet-C encoder, global average pooling, linear classifier."""

    def __init__(self, num_classes: int, in_channels: int, alpha2: int, alpha3: int) -> None:
        super().__init__()
        self.check = InputCheck(in_channels)
        self.encoder = ESPEncoder(in_channels, alpha2, alpha3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(256, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(self.check(x))[2]
        return self.classifier(torch.flatten(self.pool(features), 1))


class ESPNet(nn.Module):
    """ESPNet segmentation: encoder + light decoder, N x classes x H x W logits (H, W % 8 == 0)."""

    def __init__(self, num_classes: int, in_channels: int, alpha2: int, alpha3: int) -> None:
        super().__init__()
        c = num_classes
        self.check = InputCheck(in_channels, multiple=8)
        self.encoder = ESPEncoder(in_channels, alpha2, alpha3)
        c1, c2, c3 = self.encoder.out_channels
        self.project_l3 = nn.Conv2d(c3, c, 1, bias=False)
        self.bn_l3 = nn.BatchNorm2d(c)
        self.up_l3 = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)
        self.project_l2 = nn.Conv2d(c2, c, 1, bias=False)
        self.combine_l2_l3 = nn.Sequential(BNAct(2 * c), ESPModule(2 * c, c, residual=False))
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, stride=2, bias=False), BNAct(c))
        self.fuse_l1 = ConvBNAct(c1 + c, c, 3, act=None)  # see the module docstring
        self.classifier = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1, s2, s3 = self.encoder(self.check(x))
        l3 = self.up_l3(self.bn_l3(self.project_l3(s3)))
        l23 = self.up_l2(self.combine_l2_l3(torch.cat([self.project_l2(s2), l3], 1)))
        return self.classifier(self.fuse_l1(torch.cat([l23, s1], 1)))


# ---- builder ---------------------------------------------------------------------------


def _check_alphas(alpha2: int, alpha3: int) -> None:
    for name, value in (("alpha2", alpha2), ("alpha3", alpha3)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}")


# ---- registered variants ---------------------------------------------------------------


# Mehta et al. 2018, Table 1 / Sec. 4: ESPNet (Cityscapes, 20 classes) has 0.364 M params.
@register_model(family="espnet", task="segmentation", num_classes=20,
                paper={"params": 0.364e6}, min_input_size=16, input_multiple=8,
                small_defaults={"alpha3": 3})
def espnet(*, num_classes: int, in_channels: int, input_size: int, alpha2: int = 2,
           alpha3: int = 8) -> nn.Module:
    """ESPNet segmentation (ESP modules, hierarchical feature fusion, light decoder)."""
    _check_alphas(alpha2, alpha3)
    if num_classes < 5:
        raise InvalidInputError(
            f"espnet needs num_classes >= 5 (its decoder ESP module splits the classes into "
            f"5 dilated branches), got {num_classes}")
    return ESPNet(num_classes, in_channels, alpha2, alpha3)


@register_model(family="espnet", min_input_size=16, small_defaults={"alpha3": 3})
def espnet_cls(*, num_classes: int, in_channels: int, input_size: int, alpha2: int = 2,
               alpha3: int = 8) -> nn.Module:
    """ESPNet-C classification (encoder + global pooling + linear)."""
    _check_alphas(alpha2, alpha3)
    return ESPNetClassifier(num_classes, in_channels, alpha2, alpha3)
