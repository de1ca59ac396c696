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


@pytest.fixture(scope="session")
def tiny_net_outputs():
    """numpy N×3×16×16 -> the tiny net's float32 outputs in torch (the files' truth)."""
    import torch

    net = _tiny_net()

    def outputs(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    return outputs


@pytest.fixture(scope="session")
def fixed_batch_onnx_model(tmp_path_factory) -> Path:
    """The tiny net with a fixed batch of 4 (no dynamic axis)."""
    import torch

    path = tmp_path_factory.mktemp("models") / "tiny_b4.onnx"
    torch.onnx.export(_tiny_net(), (torch.zeros(4, *SHAPE[1:]),), str(path), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["output"])
    return path


@pytest.fixture(scope="session")
def nhwc_tflite_model(tmp_path_factory) -> Path:
    """The tiny net taking a channel-last batch of 4, as TFLite files often do."""
    import litert_torch
    import torch

    class ChannelLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _tiny_net()

        def forward(self, x):
            return self.net(x.permute(0, 3, 1, 2))

    path = tmp_path_factory.mktemp("models") / "tiny_nhwc.tflite"
    example = torch.zeros(4, SHAPE[2], SHAPE[3], SHAPE[1])
    litert_torch.convert(ChannelLast().eval(), (example,)).export(str(path))
    return path


@pytest.fixture(scope="session")
def int8_tflite_model(tmp_path_factory) -> Path:
    """A full-integer .tflite (int8 input and output) of the tiny net, from edgekit's PTQ."""
    from edgekit.compress.qat import QuantConfig
    from edgekit.compress.qat_tflite import quantize_for_tflite
    from edgekit.export.tflite import export_tflite

    calib = np.random.default_rng(2).standard_normal((32, *SHAPE[1:])).astype(np.float32)
    cfg = QuantConfig(target="tflite", mode="ptq", epochs=0, calibration_size=32, batch_size=16)
    qm = quantize_for_tflite(_tiny_net(), cfg, calib_data=calib)
    path = tmp_path_factory.mktemp("models") / "tiny_int8.tflite"
    return export_tflite(qm, path, calibration=calib[:4]).path
