"""Shared test set-up: one core and one intra-op thread per pytest-xdist worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# Lists every skip and fails the run on one that is not for missing hardware.
pytest_plugins = ("tests.skip_policy",)


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker():
    # Each xdist worker gets a core of its own (affinity, which compress reads to size its
    # training threads), so two workers never run four threads on two cores.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[int(worker[2:]) % len(cpus)]})
    if "torch" in sys.modules or _importable("torch"):
        import torch

        torch.set_num_threads(1)
    yield


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# Fixtures shared across folders; the nets and data behind them are in tests/helpers.py.
# Each imports torch and edgekit inside, so collecting a test imports neither.

@pytest.fixture(scope="module")
def mnist():
    """(train, test) splits of the embedded mnist5k."""
    from edgekit.calibration import load_dataset

    return load_dataset("mnist5k", split="train"), load_dataset("mnist5k", split="test")


@pytest.fixture(scope="session")
def trained_net():
    import torch

    from edgekit.training import TrainConfig, train
    from tests.helpers import SmallNet, block_data

    torch.manual_seed(0)
    net = SmallNet()
    train(net, block_data(512), TrainConfig(epochs=3, lr=1e-2, batch_size=64, progress=False))
    return net.eval()


@pytest.fixture(scope="session")
def quantized_net(trained_net):
    from tests.helpers import block_data
    pytest.importorskip("nncf")
    from edgekit.quantization import QuantConfig, quantize

    return quantize(trained_net, QuantConfig(epochs=1, calibration_size=128),
                    train_data=block_data(512), val_data=block_data(128, seed=1))


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Path:
    import torch

    from tests.helpers import TINY_SHAPE, tiny_net

    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    torch.onnx.export(tiny_net(), (torch.zeros(TINY_SHAPE),), str(path), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory) -> Path:
    import litert_torch
    import torch

    from tests.helpers import TINY_SHAPE, tiny_net

    path = tmp_path_factory.mktemp("models") / "tiny.tflite"
    litert_torch.convert(tiny_net(), (torch.zeros(TINY_SHAPE),)).export(str(path))
    return path


@pytest.fixture(scope="session")
def reference_output(tmp_path_factory) -> tuple[Path, Path]:
    from tests.helpers import TINY_SHAPE, tiny_net
    """A fixed input and the torch model's output for it (the reference check's truth)."""
    import torch

    folder = tmp_path_factory.mktemp("data")
    x = np.random.default_rng(1).standard_normal(TINY_SHAPE).astype(np.float32)
    with torch.no_grad():
        y = tiny_net()(torch.from_numpy(x)).numpy()
    np.save(folder / "input.npy", x)
    np.save(folder / "expected.npy", y)
    return folder / "input.npy", folder / "expected.npy"


@pytest.fixture(scope="session")
def tiny_net_outputs():
    from tests.helpers import tiny_net
    """numpy N×3×16×16 -> the tiny net's float32 outputs in torch (the files' truth)."""
    import torch

    net = tiny_net()

    def outputs(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    return outputs


@pytest.fixture(scope="session")
def fixed_batch_onnx_model(tmp_path_factory) -> Path:
    from tests.helpers import TINY_SHAPE, tiny_net
    """The tiny net with a fixed batch of 4 (no dynamic axis)."""
    import torch

    path = tmp_path_factory.mktemp("models") / "tiny_b4.onnx"
    torch.onnx.export(tiny_net(), (torch.zeros(4, *TINY_SHAPE[1:]),), str(path), dynamo=False,
                      opset_version=17, input_names=["input"], output_names=["output"])
    return path


@pytest.fixture(scope="session")
def nhwc_tflite_model(tmp_path_factory) -> Path:
    from tests.helpers import TINY_SHAPE, tiny_net
    """The tiny net taking a channel-last batch of 4, as TFLite files often do."""
    import litert_torch
    import torch

    class ChannelLast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_net()

        def forward(self, x):
            return self.net(x.permute(0, 3, 1, 2))

    path = tmp_path_factory.mktemp("models") / "tiny_nhwc.tflite"
    example = torch.zeros(4, TINY_SHAPE[2], TINY_SHAPE[3], TINY_SHAPE[1])
    litert_torch.convert(ChannelLast().eval(), (example,)).export(str(path))
    return path


@pytest.fixture(scope="session")
def int8_tflite_model(tmp_path_factory) -> Path:
    from tests.helpers import TINY_SHAPE, tiny_net
    """A full-integer .tflite (int8 input and output) of the tiny net, from edgekit's PTQ."""
    from edgekit.export.tflite import export_tflite
    from edgekit.quantization import QuantConfig
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    calib = np.random.default_rng(2).standard_normal((32, *TINY_SHAPE[1:])).astype(np.float32)
    cfg = QuantConfig(target="tflite", mode="ptq", epochs=0, calibration_size=32, batch_size=16)
    qm = quantize_for_tflite(tiny_net(), cfg, calib_data=calib)
    path = tmp_path_factory.mktemp("models") / "tiny_int8.tflite"
    return export_tflite(qm, path, calibration=calib[:4]).path


@pytest.fixture(name="small_model")
def small_model_fixture():
    from tests.helpers import small_model

    return small_model


@pytest.fixture(scope="session")
def board_python(tmp_path_factory):
    """The python of a board-like venv: numpy + onnxruntime + LiteRT, no torch/onnx/edgekit."""
    from tests.board_env import make_board_env

    return make_board_env(tmp_path_factory.mktemp("board") / "venv")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 (tests/sshd.py); skips where OpenSSH is missing."""
    from tests.sshd import running_sshd

    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


# One quick compress run per target (lenet300_100), shared by the bundle, verify --expected
# and deploy tests, which all carry xdist_group("bundle") so one worker makes the runs.
QUICK_COMPRESS = {"epochs": 1, "qat_epochs": 1, "train_limit": 400, "bench_runs": 10,
                  "bench_power": "none"}


@pytest.fixture(scope="session")
def quick_compress(tmp_path_factory):
    """``quick_compress(target)``: the CompressResult of that run, made on first use."""
    import edgekit

    runs = {}

    def run(target: str):
        if target not in runs:
            out = tmp_path_factory.mktemp("quick-compress") / target
            runs[target] = edgekit.compress("lenet300_100", target, out=out,
                                            log=lambda _: None, **QUICK_COMPRESS)
        return runs[target]

    return run
