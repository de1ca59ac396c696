"""What tests share: small nets, small data, and the zoo's cheap variants. Fixtures built from
these live in ``tests/conftest.py``; tests import the plain helpers from here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

TINY_SHAPE = (1, 3, 16, 16)  # the tiny net's input (one sample)


class SmallNet(torch.nn.Module):
    """Conv+BN, depthwise, h-swish, a residual add and a linear head: the MobileNet ops."""

    def __init__(self, channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        nn = torch.nn
        self.stem = nn.Sequential(nn.Conv2d(channels, 8, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                                nn.BatchNorm2d(8), nn.Hardswish())
        self.head = nn.Linear(8 * 16, classes)

    def forward(self, x):
        y = self.stem(x)
        y = y + self.dw(y)
        return self.head(torch.nn.functional.adaptive_avg_pool2d(y, 4).flatten(1))


def block_data(n: int = 256, seed: int = 0, size: int = 16):
    """Ten classes, each a bright 4x4 block at its own place: learnable in a few epochs."""
    from edgekit.calibration import ArrayDataset

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int64)
    x = rng.random((n, 1, size, size), dtype=np.float32) * 0.3
    for i, label in enumerate(y):
        row, col = divmod(int(label), 4)
        x[i, 0, 4 * row:4 * row + 4, 4 * col:4 * col + 4] = 1.0
    return ArrayDataset(x=x, y=y, task="classification", num_classes=10, name="blocks")


OUTLIER = 60.0  # ~200x the trained weights: at 7 bits their step rounds the rest to 0


class FragileNet(torch.nn.Module):
    """Stem and body convs (most MACs), a small 1x1 ``mix`` conv, a linear head.

    ``body``'s output channel 0 is dead (zero weights, negative bias: always 0 after ReLU),
    and after training ``mix`` gets an outlier weight on that input channel in every output
    channel. The float model computes the same (the channel is 0), but the per-channel int8
    step of ``mix`` is set by the outlier, and its real weights round to zero.
    """

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.body = nn.Conv2d(16, 32, 3, padding=1)
        self.mix = nn.Conv2d(32, 16, 1)
        self.head = nn.Linear(16 * 16, 10)
        with torch.no_grad():
            self.body.weight[0].zero_()
            self.body.bias[0] = -1.0  # ReLU gives 0, and no gradient revives it

    def forward(self, x):
        y = torch.relu(self.body(torch.relu(self.stem(x))))
        y = torch.relu(self.mix(torch.nn.functional.adaptive_avg_pool2d(y, 4)))
        return self.head(y.flatten(1))


def fragile_net() -> torch.nn.Module:
    """A trained ``FragileNet`` (blocks data) with its outlier weights, in eval mode: plain
    int8 loses most of its accuracy, ``mix`` left float gives it back (issue 39; also
    ``benchmarks/precision.py --max-drop``)."""
    from edgekit.training import TrainConfig, train

    torch.manual_seed(0)
    net = FragileNet()
    train(net, block_data(512), TrainConfig(epochs=3, lr=1e-2, batch_size=64, progress=False))
    with torch.no_grad():
        net.mix.weight[:, 0] = OUTLIER
    return net.eval()


def tiny_net():
    """A conv + linear net for the runtime and harness tests, seeded (same weights each call)."""
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    return Tiny().eval()


def small_model(name: str):
    """The cheap variant each family is trained with: 1 channel, 28 px (64 px for segmentation)."""
    from edgekit.models import create_model, get_model_spec

    spec = get_model_spec(name)
    classes = 11 if spec.task == "segmentation" else 10
    size = max(spec.small_input_size, spec.min_input_size)
    return create_model(name, num_classes=classes, in_channels=1, input_size=size)


def calibrated_lowbit(name: str, **args):
    """A low-bit zoo model whose BN statistics come from real-looking data, in eval mode."""
    import torch

    from edgekit.models import create_model

    torch.manual_seed(0)
    model = create_model(name, **args)
    with torch.no_grad():
        model.train()(torch.rand(64, 1, 28, 28))
    return model.eval()


def lce_available() -> bool:
    """Whether LCE's interpreter environment (``make lce-env``) is there for the tests."""
    from edgekit.core.errors import MissingBackendError
    from edgekit.runtime.lce import lce_python

    try:
        lce_python()
    except MissingBackendError:
        return False
    return True


# Not a hardware skip: tests/skip_policy.py fails the run on it, so a run without .venv-lce
# lists these tests and fails (`make test` builds .venv-lce first).
needs_lce = pytest.mark.skipif(not lce_available(), reason="no LCE environment (make lce-env)")
