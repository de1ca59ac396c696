"""Small nets and data shared by the export tests (real nncf, onnx, onnxruntime)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


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


@pytest.fixture(scope="session")
def trained_net():
    from edgekit.training import TrainConfig, train

    torch.manual_seed(0)
    net = SmallNet()
    train(net, block_data(512), TrainConfig(epochs=3, lr=1e-2, batch_size=64, progress=False))
    return net.eval()


@pytest.fixture(scope="session")
def quantized_net(trained_net):
    pytest.importorskip("nncf")
    from edgekit.compress.qat import QuantConfig, quantize

    return quantize(trained_net, QuantConfig(epochs=1, calibration_size=128),
                    train_data=block_data(512), val_data=block_data(128, seed=1))
