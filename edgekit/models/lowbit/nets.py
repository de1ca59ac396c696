"""Binary, ternary and hashed networks, sized for 28x28 single-channel digits (mnist5k).

Every variant takes ``weights``: its low-bit kind (``binary``, ``xnor``, ``twn``, ``ttq``,
``hashed``) or ``"fp32"`` for the full-precision twin with the same topology (ReLU where
the low-bit net has binary activations), which the benchmark compares against:
``create_model("ternary_lenet5", weights="fp32")``. ``materialized=True`` builds the
export form (see ``edgekit.models.lowbit.materialization``). Registered variants (bottom):

=====================  ==========================================================  ========
name                   layers                                                      weights
=====================  ==========================================================  ========
binary_mlp             784-256-256-10, BN + sign activations (BNN)                 binary
xnor_convnet           conv32-conv64-fc128-fc10, BN, XNOR binary inputs after L1   xnor
ternary_lenet5         LeNet-5 (conv6-conv16-fc120-fc84-fc10) with BN               twn
ttq_resnet8            ResNet-8 (16/32/64, one basic block per stage); first conv  ttq
                       and classifier full precision, as in the TTQ paper
hashed_mlp             784-1000-10 (the paper's 3-layer net), ``compression=1/8``  hashed
                       (any factor in (0, 1], e.g. ``compression=1/64``)
=====================  ==========================================================  ========
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.core.errors import InvalidInputError
from edgekit.models._blocks import InputCheck
from edgekit.models.lowbit import layers as L
from edgekit.models.registry import register_model

WEIGHT_KINDS = ("fp32", "binary", "xnor", "twn", "ttq", "hashed")

_CONV = {"fp32": nn.Conv2d, "binary": L.BinaryConv2d, "twn": L.TernaryConv2d,
         "ttq": L.TTQConv2d}
_LINEAR = {"fp32": nn.Linear, "binary": L.BinaryLinear, "twn": L.TernaryLinear,
           "ttq": L.TTQLinear}


def _check_kind(weights: str, allowed: tuple[str, ...]) -> None:
    if weights not in allowed:
        raise InvalidInputError(f"weights must be one of {allowed}, got {weights!r}")


def _conv(weights: str, cin: int, cout: int, k: int, *, stride: int = 1, padding: int = 0,
          bias: bool = False, binary_input: bool = True) -> nn.Module:
    if weights == "xnor":
        return L.XnorConv2d(cin, cout, k, stride=stride, padding=padding, bias=bias,
                            binary_input=binary_input)
    return _CONV[weights](cin, cout, k, stride=stride, padding=padding, bias=bias)


def _linear(weights: str, fin: int, fout: int, *, bias: bool = True,
            binary_input: bool = True) -> nn.Module:
    if weights == "xnor":
        return L.XnorLinear(fin, fout, bias=bias, binary_input=binary_input)
    return _LINEAR[weights](fin, fout, bias=bias)


def _activation(weights: str) -> nn.Module:
    """Binary nets use sign activations; their fp32 twins use ReLU."""
    return L.BinaryActivation() if weights == "binary" else nn.ReLU()


# ---------------------------------------------------------------- blocks


class _BasicBlock(nn.Module):
    """ResNet basic block; the 1x1 projection shortcut (when needed) is low-bit too."""

    def __init__(self, weights: str, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv(weights, cin, cout, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv(weights, cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(_conv(weights, cin, cout, 1, stride=stride),
                                          nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


# ---------------------------------------------------------------- models


class LowBitNet(nn.Module):
    """Input check, a feature stack and a classifier; ``weights`` names the layer kind."""

    def __init__(self, features: nn.Module, classifier: nn.Module, weights: str,
                 in_channels: int) -> None:
        super().__init__()
        self.check = InputCheck(in_channels)
        self.features = features
        self.classifier = classifier
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(self.check(x)), 1))


def _finish(model: LowBitNet, materialized: bool) -> nn.Module:
    """``materialized=True`` builds the export architecture (standard Conv/Linear) that
    ``.ekz`` files of low-bit models store, so ``create_model(**file_config)`` loads them."""
    if not materialized:
        return model
    from edgekit.models.lowbit.materialization import materialize

    return materialize(model)


def _mlp_in(in_channels: int, input_size: int) -> int:
    return in_channels * input_size * input_size


# ---- registered variants ---------------------------------------------------------------

_MNIST = {"family": "lowbit", "num_classes": 10, "in_channels": 1, "input_size": 28}


@register_model(min_input_size=1, **_MNIST)
def binary_mlp(*, num_classes: int, in_channels: int, input_size: int, weights: str = "binary",
               hidden: int = 256, materialized: bool = False) -> nn.Module:
    """BNN MLP in-256-256-classes: binary weights, BN + sign activations (real-valued input)."""
    _check_kind(weights, ("binary", "fp32"))
    layers: list[nn.Module] = []
    width = _mlp_in(in_channels, input_size)
    for _ in range(2):
        layers += [_linear(weights, width, hidden), nn.BatchNorm1d(hidden), _activation(weights)]
        width = hidden
    # A final BN keeps the logits of a binary classifier well scaled (BNN paper).
    classifier = nn.Sequential(_linear(weights, width, num_classes), nn.BatchNorm1d(num_classes))
    return _finish(LowBitNet(nn.Sequential(nn.Flatten(), *layers), classifier, weights,
                             in_channels), materialized)


@register_model(min_input_size=4, **_MNIST)
def xnor_convnet(*, num_classes: int, in_channels: int, input_size: int,
                 weights: str = "xnor", materialized: bool = False) -> nn.Module:
    """XNOR-Net ConvNet conv32-pool-conv64-pool-fc128-fc: binary inputs after layer 1."""
    _check_kind(weights, ("xnor", "fp32"))
    act = nn.ReLU if weights == "fp32" else nn.Identity  # XNOR layers binarize their input
    features = nn.Sequential(
        _conv(weights, in_channels, 32, 3, padding=1, binary_input=False), nn.BatchNorm2d(32),
        act(), nn.MaxPool2d(2),
        _conv(weights, 32, 64, 3, padding=1), nn.BatchNorm2d(64), act(), nn.MaxPool2d(2),
    )
    side = input_size // 2 // 2
    classifier = nn.Sequential(
        _linear(weights, 64 * side * side, 128), nn.BatchNorm1d(128), act(),
        _linear(weights, 128, num_classes), nn.BatchNorm1d(num_classes),
    )
    return _finish(LowBitNet(features, classifier, weights, in_channels), materialized)


@register_model(min_input_size=12, **_MNIST)
def ternary_lenet5(*, num_classes: int, in_channels: int, input_size: int,
                   weights: str = "twn", materialized: bool = False) -> nn.Module:
    """Ternary (TWN) LeNet-5: conv6-pool-conv16-pool-fc120-fc84-fc, BN after the convs."""
    _check_kind(weights, ("twn", "ttq", "fp32"))
    features = nn.Sequential(
        _conv(weights, in_channels, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),
        nn.MaxPool2d(2),
        _conv(weights, 6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    )
    side = (input_size // 2 - 4) // 2
    classifier = nn.Sequential(
        _linear(weights, 16 * side * side, 120), nn.ReLU(), _linear(weights, 120, 84), nn.ReLU(),
        _linear(weights, 84, num_classes),
    )
    return _finish(LowBitNet(features, classifier, weights, in_channels), materialized)


@register_model(min_input_size=4, **_MNIST)
def ttq_resnet8(*, num_classes: int, in_channels: int, input_size: int,
                weights: str = "ttq", materialized: bool = False) -> nn.Module:
    """Ternary (TTQ) ResNet-8, 16/32/64 channels; first conv and classifier stay fp32."""
    _check_kind(weights, ("twn", "ttq", "fp32"))
    features = nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        _BasicBlock(weights, 16, 16, 1), _BasicBlock(weights, 16, 32, 2),
        _BasicBlock(weights, 32, 64, 2), nn.AdaptiveAvgPool2d(1),
    )
    return _finish(LowBitNet(features, nn.Linear(64, num_classes), weights, in_channels),
                   materialized)


@register_model(min_input_size=1, **_MNIST)
def hashed_mlp(*, num_classes: int, in_channels: int, input_size: int, weights: str = "hashed",
               compression: float = 1 / 8, hidden: int = 1000, seed: int = 0,
               materialized: bool = False) -> nn.Module:
    """HashedNets 3-layer MLP in-1000-classes; ``compression`` = buckets / virtual weights."""
    _check_kind(weights, ("hashed", "fp32"))
    n_in = _mlp_in(in_channels, input_size)
    if weights == "fp32":
        first, last = nn.Linear(n_in, hidden), nn.Linear(hidden, num_classes)
    else:  # one seed per layer so the two layers do not share a hash map
        first = L.HashedLinear(n_in, hidden, compression=compression, seed=seed)
        last = L.HashedLinear(hidden, num_classes, compression=compression, seed=seed + 1)
    return _finish(LowBitNet(nn.Sequential(nn.Flatten(), first, nn.ReLU()), last, weights,
                             in_channels), materialized)


def dense_equivalent_hidden(hidden: int, compression: float) -> int:
    """Hidden width of a plain in-h-out MLP with as many weights as a hashed in-hidden-out
    MLP has buckets (h * (in + out) = compression * hidden * (in + out)): the paper's
    "equivalent size" baseline."""
    return max(1, round(compression * hidden))
