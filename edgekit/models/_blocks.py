"""Building blocks shared by several model families.

Every block is made of ops that quantize and convert cleanly (Conv2d + BatchNorm2d +
ReLU/ReLU6/Hardswish modules, Linear, average pooling), so quantizers see each
activation as a module and TFLite/TensorRT converters meet no exotic op.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.core.errors import InvalidInputError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never below 90% of ``value``."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def stem_stride(input_size: int) -> int:
    """Stride of the stem: 2 for ImageNet-like inputs, 1 below 64 px (see docs/models.md)."""
    return 2 if input_size >= 64 else 1


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional activation module; 'same' padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, dilation: int = 1, act: str | None = "relu") -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding=(kernel - 1) // 2 * dilation,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(ACTIVATIONS[act]())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with a Hardsigmoid gate (MobileNetV3 style)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle written with 4-D tensors only.

    reshape (N, g, C/g, H*W) -> transpose(1, 2) -> reshape (N, C, H, W): the usual 5-D
    view/transpose breaks TFLite and TensorRT converters, this form does not.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.reshape(n, self.groups, c // self.groups, h * w)
        return x.transpose(1, 2).reshape(n, c, h, w)


class InputCheck(nn.Module):
    """Raise InvalidInputError on a wrongly shaped input, before any conv fails obscurely.

    Compares static shapes only and is skipped while tracing (ONNX export), so the
    exported graph holds no trace of it.
    """

    def __init__(self, in_channels: int, multiple: int = 1, min_size: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.multiple = multiple
        self.min_size = min_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return x
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InvalidInputError(
                f"expected input N x {self.in_channels} x H x W, got {tuple(x.shape)}")
        h, w = x.shape[2], x.shape[3]
        if min(h, w) < self.min_size or h % self.multiple or w % self.multiple:
            need = f" and a multiple of {self.multiple}" if self.multiple > 1 else ""
            raise InvalidInputError(
                f"input H and W must be >= {self.min_size}{need}, got {h}x{w}")
        return x

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, multiple={self.multiple}, min={self.min_size}"


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs, unit BN, small-normal linears (the torchvision recipe)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def thin_conv(conv: nn.Conv2d, out: torch.Tensor | None = None,
              inp: torch.Tensor | None = None) -> None:
    """Keep output channels ``out`` and/or, in every group, input channels ``inp`` of
    ``conv`` in place (a depthwise conv keeps ``out`` as its inputs and groups too)."""
    weight = conv.weight.detach()
    if out is not None:
        if conv.groups == conv.in_channels == conv.out_channels:  # depthwise
            conv.in_channels = conv.groups = len(out)
        weight = weight[out]
        if conv.bias is not None:
            conv.bias = nn.Parameter(conv.bias.detach()[out].clone())
        conv.out_channels = len(out)
    if inp is not None:
        weight = weight[:, inp]
        conv.in_channels = conv.groups * len(inp)
    conv.weight = nn.Parameter(weight.clone())


@torch.no_grad()
def thin_batchnorm(bn: nn.BatchNorm2d, keep: torch.Tensor) -> None:
    """Keep channels ``keep`` of ``bn`` in place (affine parameters and running stats)."""
    bn.weight = nn.Parameter(bn.weight.detach()[keep].clone())
    bn.bias = nn.Parameter(bn.bias.detach()[keep].clone())
    bn.running_mean = bn.running_mean[keep].clone()
    bn.running_var = bn.running_var[keep].clone()
    bn.num_features = len(keep)
