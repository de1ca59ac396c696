"""The architectures of the models in published device measurements (MLPerf Inference),
written here in torch (torchvision is not a dependency), to export and read their layers.

Weights are random: the layer records (MACs, bytes, op kinds) do not depend on them.
Detection models stop at the heads' outputs: box decoding and NMS, which the published
latencies include, are not modelled.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _cbr(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: Any = nn.ReLU
         ) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act())


def _div(v: float, d: int = 8) -> int:
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


class _Classifier(nn.Module):
    def __init__(self, features: nn.Module, channels: int, classes: int) -> None:
        super().__init__()
        self.features, self.fc = features, nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def mobilenet_v1_features(alpha: float) -> tuple[nn.Sequential, list[int]]:
    c = [int(32 * alpha)]
    layers = [_cbr(3, c[0], 3, 2, act=nn.ReLU6)]
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
        [(1024, 2), (1024, 1)]
    for out, stride in plan:
        cin, cout = c[-1], int(out * alpha)
        layers.append(nn.Sequential(_cbr(cin, cin, 3, stride, groups=cin, act=nn.ReLU6),
                                    _cbr(cin, cout, 1, act=nn.ReLU6)))
        c.append(cout)
    return nn.Sequential(*layers), c


def mobilenet_v1(alpha: float, classes: int = 1001) -> nn.Module:
    features, c = mobilenet_v1_features(alpha)
    return _Classifier(features, c[-1], classes)


class _Inverted(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [_cbr(cin, hidden, 1, act=nn.ReLU6)]
        layers += [_cbr(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body, self.residual = nn.Sequential(*layers), stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def mobilenet_v2(alpha: float, classes: int = 1001) -> nn.Module:
    cin = _div(32 * alpha)
    layers: list[nn.Module] = [_cbr(3, cin, 3, 2, act=nn.ReLU6)]
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            cout = _div(c * alpha)
            layers.append(_Inverted(cin, cout, s if i == 0 else 1, t))
            cin = cout
    last = _div(1280 * max(1.0, alpha))  # TF keeps 1280 for alpha < 1
    layers.append(_cbr(cin, last, 1, act=nn.ReLU6))
    return _Classifier(nn.Sequential(*layers), last, classes)


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        cout = width * 4 if groups == 1 else width * 2
        self.body = nn.Sequential(_cbr(cin, width, 1), _cbr(width, width, 3, stride, groups),
                                  nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))


def _resnet_stages(groups: int = 1, base: int = 64) -> tuple[nn.Module, list[nn.Sequential]]:
    """ResNet-50 v1.5 (groups 1, widths 64..512) or ResNeXt-50 32x4d (groups 32, 128..1024)."""
    stem = nn.Sequential(_cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
    stages, cin = [], 64
    for i, n in enumerate((3, 4, 6, 3)):
        width = base * 2 ** i
        blocks = []
        for j in range(n):
            blocks.append(_Bottleneck(cin, width, 2 if j == 0 and i > 0 else 1, groups))
            cin = width * 4 if groups == 1 else width * 2
        stages.append(nn.Sequential(*blocks))
    return stem, stages


def resnet50(classes: int = 1000) -> nn.Module:
    stem, stages = _resnet_stages()
    return _Classifier(nn.Sequential(stem, *stages), 2048, classes)


class SSDMobileNetV1(nn.Module):
    """TF object-detection API ssd_mobilenet_v1 (COCO, 300x300): 6 maps, 1x1 box heads."""

    def __init__(self, classes: int = 91) -> None:
        super().__init__()
        self.features, c = mobilenet_v1_features(1.0)
        extras, cin = [], c[-1]
        for mid, out in ((256, 512), (128, 256), (128, 256), (64, 128)):
            extras.append(nn.Sequential(_cbr(cin, mid, 1, act=nn.ReLU6),
                                        _cbr(mid, out, 3, 2, act=nn.ReLU6)))
            cin = out
        self.extras = nn.ModuleList(extras)
        maps = [512, 1024, 512, 256, 256, 128]
        anchors = [3, 6, 6, 6, 6, 6]
        self.box = nn.ModuleList(nn.Conv2d(m, a * 4, 1) for m, a in zip(maps, anchors,
                                                                           strict=True))
        self.cls = nn.ModuleList(nn.Conv2d(m, a * classes, 1) for m, a in zip(maps, anchors,
                                                                                 strict=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (11, 13):  # conv11 (512 ch, 19x19) and conv13 (1024 ch, 10x10)
                maps.append(x)
        for layer in self.extras:
            x = layer(x)
            maps.append(x)
        return [head(m) for heads in (self.box, self.cls) for head, m in zip(heads, maps,
                                                                               strict=True)]


class RetinaNet(nn.Module):
    """MLPerf's RetinaNet (torchvision design): ResNeXt-50 32x4d + FPN P3-P7, 800x800,
    264 OpenImages classes, 9 anchors, 4-conv heads shared across levels."""

    def __init__(self, classes: int = 264, anchors: int = 9) -> None:
        super().__init__()
        self.stem, stages = _resnet_stages(groups=32, base=128)
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv2d(c, 256, 1) for c in (512, 1024, 2048))
        self.smooth = nn.ModuleList(nn.Conv2d(256, 256, 3, padding=1) for _ in range(3))
        self.p6, self.p7 = nn.Conv2d(256, 256, 3, 2, 1), nn.Conv2d(256, 256, 3, 2, 1)

        def head(out: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(4):
                layers += [nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()]
            return nn.Sequential(*layers, nn.Conv2d(256, out, 3, padding=1))

        self.cls, self.reg = head(anchors * classes), head(anchors * 4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i > 0:
                feats.append(x)
        lat = [conv(f) for conv, f in zip(self.lateral, feats, strict=True)]
        for i in (1, 0):  # top-down
            lat[i] = lat[i] + nn.functional.interpolate(lat[i + 1], size=lat[i].shape[-2:])
        p = [conv(t) for conv, t in zip(self.smooth, lat, strict=True)]
        p.append(self.p6(p[-1]))
        p.append(self.p7(torch.relu(p[-1])))
        return [h(level) for level in p for h in (self.cls, self.reg)]


def build(name: str) -> tuple[nn.Module, int]:
    """``name`` -> (model, input size): resnet50, ssd_mobilenet_v1, retinanet,
    mobilenet_v1_<alpha>_<res>, mobilenet_v2_<alpha>_<res>."""
    if name == "resnet50":
        return resnet50(), 224
    if name == "ssd_mobilenet_v1":
        return SSDMobileNetV1(), 300
    if name == "retinanet":
        return RetinaNet(), 800
    family, alpha, res = name.rsplit("_", 2)
    maker = {"mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2}[family]
    return maker(float(alpha)), int(res)
