"""Tiny real models for the harness tests: an ONNX file and a TFLite file of the same net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHAPE = (1, 3, 16, 16)


def _tiny_net():
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    torch.manual_seed(0)
    return Tiny().eval()


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    torch.onnx.export(_tiny_net(), (torch.zeros(SHAPE),), str(path), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory) -> Path:
    import litert_torch
    import torch

    path = tmp_path_factory.mktemp("models") / "tiny.tflite"
    litert_torch.convert(_tiny_net(), (torch.zeros(SHAPE),)).export(str(path))
    return path


@pytest.fixture(scope="session")
def reference_output(tmp_path_factory) -> tuple[Path, Path]:
    """A fixed input and the torch model's output for it (the reference check's truth)."""
    import torch

    folder = tmp_path_factory.mktemp("data")
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        y = _tiny_net()(torch.from_numpy(x)).numpy()
    np.save(folder / "input.npy", x)
    np.save(folder / "expected.npy", y)
    return folder / "input.npy", folder / "expected.npy"
