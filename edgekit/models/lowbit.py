"""Binary, ternary and hashed networks for 28x28 single-channel digits (mnist5k).

Every family is built by one private builder that takes ``weights``: the low-bit kind
(``binary``, ``xnor``, ``twn``, ``ttq``, ``hashed``) or ``"fp32"`` for its full-precision
twin with the same topology (ReLU where the low-bit net has binary activations), which
is what the benchmark compares against. Registered variants are at the bottom:

=====================  ==========================================================  ========
name                   layers                                                      weights
=====================  ==========================================================  ========
binary_mlp             784-256-256-10, BN + sign activations (BNN)                 binary
xnor_convnet           conv32-conv64-fc128-fc10, BN, XNOR binary inputs after L1   xnor
ternary_lenet5         LeNet-5 (conv6-conv16-fc120-fc84-fc10) with BN               twn
ttq_resnet8            ResNet-8 (16/32/64, one basic block per stage); first conv  ttq
                       and classifier full precision, as in the TTQ paper
hashed_mlp             784-1000-10 (the paper's 3-layer net), compression 1/8      hashed
hashed_mlp_64          same at compression 1/64                                    hashed
=====================  ==========================================================  ========
"""

from __future__ import annotations

from typing import Any

from torch import nn

from edgekit.compress.lowbit import layers as L
from edgekit.errors import InvalidInputError

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
    """A feature stack and a classifier; ``weights`` names the kind of its weight layers."""

    def __init__(self, features: nn.Module, classifier: nn.Module, weights: str) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.weights = weights

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def _binary_mlp(weights: str = "binary", hidden: int = 256, num_classes: int = 10) -> LowBitNet:
    _check_kind(weights, ("binary", "fp32"))
    # BNN: the first layer sees real pixels; a final BN keeps logits well scaled.
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for _ in range(2):
        layers += [_linear(weights, width, hidden), nn.BatchNorm1d(hidden), _activation(weights)]
        width = hidden
    classifier = nn.Sequential(_linear(weights, width, num_classes), nn.BatchNorm1d(num_classes))
    return LowBitNet(nn.Sequential(*layers), classifier, weights)


def _xnor_convnet(weights: str = "xnor", num_classes: int = 10) -> LowBitNet:
    _check_kind(weights, ("xnor", "fp32"))
    relu_or_id = nn.ReLU if weights == "fp32" else nn.Identity  # XNOR layers binarize input
    features = nn.Sequential(
        _conv(weights, 1, 32, 3, padding=1, binary_input=False), nn.BatchNorm2d(32),
        relu_or_id(), nn.MaxPool2d(2),
        _conv(weights, 32, 64, 3, padding=1), nn.BatchNorm2d(64), relu_or_id(), nn.MaxPool2d(2),
    )
    classifier = nn.Sequential(
        _linear(weights, 64 * 7 * 7, 128), nn.BatchNorm1d(128), relu_or_id(),
        _linear(weights, 128, num_classes), nn.BatchNorm1d(num_classes),
    )
    return LowBitNet(features, classifier, weights)


def _lenet5(weights: str = "twn", num_classes: int = 10) -> LowBitNet:
    _check_kind(weights, ("twn", "ttq", "fp32"))
    features = nn.Sequential(
        _conv(weights, 1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        _conv(weights, 6, 16, 5), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    )
    classifier = nn.Sequential(
        _linear(weights, 16 * 5 * 5, 120), nn.ReLU(), _linear(weights, 120, 84), nn.ReLU(),
        _linear(weights, 84, num_classes),
    )
    return LowBitNet(features, classifier, weights)


def _resnet8(weights: str = "ttq", num_classes: int = 10) -> LowBitNet:
    _check_kind(weights, ("twn", "ttq", "fp32"))
    features = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        _BasicBlock(weights, 16, 16, 1), _BasicBlock(weights, 16, 32, 2),
        _BasicBlock(weights, 32, 64, 2), nn.AdaptiveAvgPool2d(1),
    )
    return LowBitNet(features, nn.Linear(64, num_classes), weights)


def _hashed_mlp(weights: str = "hashed", hidden: int = 1000, compression: float = 1 / 8,
                seed: int = 0, num_classes: int = 10) -> LowBitNet:
    """HashedNets 3-layer net; each layer gets its own seed so layers do not share a map."""
    _check_kind(weights, ("hashed", "fp32"))
    if weights == "fp32":
        hidden_layer, out_layer = nn.Linear(784, hidden), nn.Linear(hidden, num_classes)
    else:
        hidden_layer = L.HashedLinear(784, hidden, compression=compression, seed=seed)
        out_layer = L.HashedLinear(hidden, num_classes, compression=compression, seed=seed + 1)
    return LowBitNet(nn.Sequential(nn.Flatten(), hidden_layer, nn.ReLU()), out_layer, weights)


def dense_equivalent_hidden(hidden: int, compression: float, n_in: int = 784,
                            n_out: int = 10) -> int:
    """Hidden width of a plain MLP with as many weights as a hashed one has buckets."""
    budget = compression * hidden * (n_in + n_out)
    return max(1, round(budget / (n_in + n_out)))


BUILDERS = {
    "binary_mlp": (_binary_mlp, {}),
    "xnor_convnet": (_xnor_convnet, {}),
    "ternary_lenet5": (_lenet5, {}),
    "ttq_resnet8": (_resnet8, {}),
    "hashed_mlp": (_hashed_mlp, {"compression": 1 / 8}),
    "hashed_mlp_64": (_hashed_mlp, {"compression": 1 / 64}),
}


def build_lowbit(name: str, **kwargs: Any) -> LowBitNet:
    """Build a low-bit model (or, with ``weights="fp32"``, its full-precision twin)."""
    if name not in BUILDERS:
        raise InvalidInputError(f"unknown low-bit model {name!r}; known: {sorted(BUILDERS)}")
    builder, defaults = BUILDERS[name]
    model = builder(**{**defaults, **kwargs})
    model.edgekit_config = {"name": name, "input_shape": (1, 1, 28, 28), "num_classes": 10,
                            **defaults, **kwargs}
    return model
