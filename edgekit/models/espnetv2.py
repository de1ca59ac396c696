"""ESPNetv2: EESP units (Mehta et al., CVPR 2019).

An EESP unit projects with a grouped 1x1 conv, runs K depthwise dilated 3x3 convs in
parallel, fuses them hierarchically, expands with a grouped 1x1 conv and adds the input.
Strided units concatenate an average-pooled shortcut and add a projection of the
average-pooled input image (input reinforcement). Layout follows the authors' release
(sacmehta/EdgeNets, ``model/classification/espnetv2.py``, ``segmentation/espnetv2.py``).
Deviations, for clean export and integer quantization: PReLU -> ReLU; the segmentation
decoder's pyramid pooling uses integer scales (x2, x1, /2, global) with average pooling
and bilinear (align_corners=False) resizing instead of fractional adaptive pooling; the
last pyramid's merge conv has no activation (it has at most ``num_classes // 2`` channels
and feeds the classifier conv; a ReLU there, unlike the original's PReLU, zeroes half of
them, and on mnist5k_seg the net then hardly learned which digit a pixel belongs to: test
mIoU 0.15 after 15 epochs with class weights, 0.41 without that ReLU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.models._blocks import (
    ChannelShuffle,
    ConvBNAct,
    InputCheck,
    check_positive,
    init_weights,
    stem_stride,
    thin_batchnorm,
    thin_conv,
)
from edgekit.models.registry import register_model

_K = 4  # parallel branches per EESP unit
_REPS = (3, 7, 3)  # EESP units in levels 3, 4, 5
_R_LIM = (13, 11, 9, 7, 5)  # receptive-field limit per level
_KSIZE_TO_DILATION = {3: 1, 5: 2, 7: 3, 9: 4, 11: 5, 13: 6, 15: 7, 17: 8}

# ---- blocks ----------------------------------------------------------------------------


class EESP(nn.Module):
    """Extremely efficient spatial pyramid unit (stride 1: residual; stride 2: no act)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, r_lim: int = 7) -> None:
        super().__init__()
        n = out_ch // _K
        self.stride = stride
        self.project = ConvBNAct(in_ch, n, 1, groups=_K)
        ksizes = sorted(k if k <= r_lim else 3 for k in (3 + 2 * i for i in range(_K)))
        self.branches = nn.ModuleList(
            nn.Conv2d(n, n, 3, stride, _KSIZE_TO_DILATION[k], dilation=_KSIZE_TO_DILATION[k],
                      groups=n, bias=False) for k in ksizes)
        self.bn_act = nn.Sequential(nn.BatchNorm2d(n * _K), nn.ReLU())
        self.expand = ConvBNAct(n * _K, out_ch, 1, groups=_K, act=None)
        self.residual = stride == 1 and in_ch == out_ch
        self.act = nn.ReLU()

    # The inner width n is one channel group that torch-pruning maps wrongly (a grouped 1x1
    # projection read by depthwise branches summed hierarchically, concatenated and read by
    # a grouped 1x1 expansion): edgekit.pruning.inner thins it through these.
    inner_groups = _K  # the projection's groups: each loses as many channels

    def inner_layers(self) -> list[nn.Module]:
        """The layers whose output channels are the inner width."""
        return [self.project[0], *self.branches]

    def inner_importance(self) -> torch.Tensor:
        """Per inner channel, the L2 norm of every weight it touches (its projection and
        branch filters, its input column of the expansion in each group)."""
        weights = [self.project[0].weight, *(b.weight for b in self.branches)]
        squares = sum(w.detach().flatten(1).pow(2).sum(1) for w in weights)
        return (squares + self.expand[0].weight.detach().pow(2).sum((0, 2, 3))).sqrt()

    def keep_inner(self, keep: torch.Tensor) -> None:
        """Keep inner channels ``keep`` (sorted, as many in each projection group)."""
        n = self.project[0].out_channels
        thin_conv(self.project[0], out=keep)
        thin_batchnorm(self.project[1], keep)
        for branch in self.branches:
            thin_conv(branch, out=keep)
        thin_batchnorm(self.bn_act[0], torch.cat([keep + i * n for i in range(_K)]))
        thin_conv(self.expand[0], inp=keep)  # group i reads branch i's n channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.project(x)
        fused = self.branches[0](p)
        outs = [fused]
        for branch in self.branches[1:]:  # hierarchical feature fusion
            fused = fused + branch(p)
            outs.append(fused)
        y = self.expand(self.bn_act(torch.cat(outs, 1)))
        if self.stride == 2:
            return y
        return self.act(x + y if self.residual else y)


class DownSampler(nn.Module):
    """Strided EESP concatenated with an average-pooled shortcut, plus input reinforcement."""

    def __init__(self, in_ch: int, out_ch: int, image_channels: int, r_lim: int) -> None:
        super().__init__()
        self.eesp = EESP(in_ch, out_ch - in_ch, stride=2, r_lim=r_lim)
        self.avg = nn.AvgPool2d(3, 2, 1)
        self.reinforce = nn.Sequential(
            ConvBNAct(image_channels, image_channels, 3),
            ConvBNAct(image_channels, out_ch, 1, act=None))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``image`` is the input image already pooled to this unit's output size."""
        out = torch.cat([self.avg(x), self.eesp(x)], 1)
        return self.act(out + self.reinforce(image))


class ESPNetv2Encoder(nn.Module):
    """Levels 1-5 of EESPNet; returns every level's output (level 5 only if ``levels == 5``)."""

    def __init__(self, in_channels: int, width_mult: float, first_stride: int,
                 levels: int = 5) -> None:
        super().__init__()
        scaled = math.ceil(int(32 * width_mult) / _K) * _K
        widths = [min(32, scaled)] + [scaled * 2**i for i in range(1, 5)]
        self.widths = widths
        self.levels = levels
        self.image_pool = nn.AvgPool2d(3, 2, 1)
        self.first_stride = first_stride
        self.level1 = ConvBNAct(in_channels, widths[0], 3, first_stride)
        self.level2_0 = DownSampler(widths[0], widths[1], in_channels, _R_LIM[0])
        self.level3_0 = DownSampler(widths[1], widths[2], in_channels, _R_LIM[1])
        self.level3 = nn.Sequential(*[EESP(widths[2], widths[2], r_lim=_R_LIM[2])
                                      for _ in range(_REPS[0])])
        self.level4_0 = DownSampler(widths[2], widths[3], in_channels, _R_LIM[2])
        self.level4 = nn.Sequential(*[EESP(widths[3], widths[3], r_lim=_R_LIM[3])
                                      for _ in range(_REPS[1])])
        if levels == 5:
            self.level5_0 = DownSampler(widths[3], widths[4], in_channels, _R_LIM[3])
            self.level5 = nn.Sequential(*[EESP(widths[4], widths[4], r_lim=_R_LIM[4])
                                          for _ in range(_REPS[2])])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out1 = self.level1(x)
        image = self.image_pool(x) if self.first_stride == 2 else x
        outs = [out1]
        stages = [(self.level2_0, None), (self.level3_0, self.level3), (self.level4_0, self.level4)]
        if self.levels == 5:
            stages.append((self.level5_0, self.level5))
        for down, units in stages:
            image = self.image_pool(image)
            out = down(outs[-1], image)
            outs.append(units(out) if units is not None else out)
        return outs


class PyramidPool(nn.Module):
    """Decoder pyramid: depthwise 3x3 at scales x2, x1, /2 and global; shuffle; merge."""

    def __init__(self, in_ch: int, proj: int, out_ch: int, last: bool = False) -> None:
        super().__init__()
        self.project = ConvBNAct(in_ch, proj, 1)
        self.stages = nn.ModuleList(
            nn.Conv2d(proj, proj, 3, 1, 1, groups=proj, bias=False) for _ in range(4))
        self.merge = nn.Sequential(
            nn.BatchNorm2d(4 * proj), nn.ReLU(), ChannelShuffle(4),
            ConvBNAct(4 * proj, proj, 3, groups=proj, act=None if last else "relu"),
            nn.Conv2d(proj, out_ch, 1, bias=last),
        )
        self.out = nn.Identity() if last else nn.Sequential(nn.BatchNorm2d(out_ch), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project(x)
        up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        hs = [F.avg_pool2d(self.stages[0](up), 2), self.stages[1](x)]
        down = self.stages[2](F.avg_pool2d(x, 2))
        hs.append(F.interpolate(down, scale_factor=2.0, mode="bilinear", align_corners=False))
        # global context broadcast back to HxW; nearest resize of the 1x1 map rather than
        # expand_as, which litert lowers to a BROADCAST_TO that fails to prepare in LiteRT
        pooled = self.stages[3](x.mean((2, 3), keepdim=True))
        hs.append(F.interpolate(pooled, size=x.shape[-2:], mode="nearest"))
        return self.out(self.merge(torch.cat(hs, 1)))


class EfficientPWConv(nn.Module):
    """Grouped 3x3 conv gated by a sigmoid of globally pooled input (encoder->decoder merge)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        groups = math.gcd(in_ch, out_ch)
        self.weight = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                    nn.Conv2d(in_ch, out_ch, 1, groups=groups, bias=False),
                                    nn.Sigmoid())
        self.expand = ConvBNAct(in_ch, out_ch, 3, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(x) * self.weight(x)


# ---- model classes ---------------------------------------------------------------------


class ESPNetv2Classifier(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, input_size: int,
                 width_mult: float, dropout: float = 0.2) -> None:
        super().__init__()
        self.check = InputCheck(in_channels)
        self.encoder = ESPNetv2Encoder(in_channels, width_mult, stem_stride(input_size))
        c5 = self.encoder.widths[4]
        last = 1024 if width_mult <= 1.5 else 1280
        self.head = nn.Sequential(ConvBNAct(c5, c5, 3, groups=c5),
                                  ConvBNAct(c5, last, 1, groups=_K))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.encoder(self.check(x))[-1])
        return self.classifier(torch.flatten(self.pool(features), 1))


class ESPNetv2(nn.Module):
    """Segmentation: 4-level encoder, bottom-up decoder, logits at input size (H, W % 16 == 0)."""

    def __init__(self, num_classes: int, in_channels: int, width_mult: float,
                 decoder_base: int = 16) -> None:
        super().__init__()
        self.check = InputCheck(in_channels, multiple=16)
        self.encoder = ESPNetv2Encoder(in_channels, width_mult, 2, levels=4)
        w = self.encoder.widths
        dec = (4 * decoder_base, 3 * decoder_base, 2 * decoder_base)
        proj = max(1, min(num_classes // 2, decoder_base))
        self.dec_l4 = PyramidPool(w[3], proj, dec[0])
        self.merge_l3 = EfficientPWConv(w[2], dec[0])
        self.br_l3 = nn.Sequential(nn.BatchNorm2d(dec[0]), nn.ReLU())
        self.dec_l3 = PyramidPool(dec[0], proj, dec[1])
        self.merge_l2 = EfficientPWConv(w[1], dec[1])
        self.br_l2 = nn.Sequential(nn.BatchNorm2d(dec[1]), nn.ReLU())
        self.dec_l2 = PyramidPool(dec[1], proj, dec[2])
        self.merge_l1 = EfficientPWConv(w[0], dec[2])
        self.br_l1 = nn.Sequential(nn.BatchNorm2d(dec[2]), nn.ReLU())
        self.dec_l1 = PyramidPool(dec[2], proj, num_classes, last=True)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1, l2, l3, l4 = self.encoder(self.check(x))
        y = self.dec_l4(l4)
        for merge, br, dec, skip in ((self.merge_l3, self.br_l3, self.dec_l3, l3),
                                     (self.merge_l2, self.br_l2, self.dec_l2, l2),
                                     (self.merge_l1, self.br_l1, self.dec_l1, l1)):
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = dec(br(y + merge(skip)))
        return F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)


# ---- registered variants ---------------------------------------------------------------


# Mehta et al. 2019, ImageNet comparison: ESPNetv2 at 284 M FLOPs (multiply-adds), ~3.5 M
# parameters; that is the width scale s = 2.0 of the authors' release (s = 1.0 is ~86 M,
# the default here because it is the plain 1x network).
@register_model(family="espnetv2", paper={"params": 3.5e6, "macs": 284e6},
                paper_args={"width_mult": 2.0}, small_defaults={"width_mult": 0.5})
def espnetv2_cls(*, num_classes: int, in_channels: int, input_size: int,
                 width_mult: float = 1.0) -> nn.Module:
    """ESPNetv2 classification (EESP units, input reinforcement)."""
    check_positive("width_mult", width_mult)
    return ESPNetv2Classifier(num_classes, in_channels, input_size, width_mult)


@register_model(family="espnetv2", task="segmentation", num_classes=20, min_input_size=32,
                input_multiple=16, small_defaults={"width_mult": 0.5})
def espnetv2(*, num_classes: int, in_channels: int, input_size: int,
             width_mult: float = 1.0) -> nn.Module:
    """ESPNetv2 segmentation (EESP encoder, pyramid-pooling decoder)."""
    check_positive("width_mult", width_mult)
    return ESPNetv2(num_classes, in_channels, width_mult)
