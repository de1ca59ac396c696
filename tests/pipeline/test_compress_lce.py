"""`edgekit compress` of binary and ternary nets for the Raspberry Pi (TFLite targets).

Binary nets deploy as LCE files and are verified in Larq Compute Engine's real interpreter
(``.venv-lce``: ``make lce-env``, or ``ln -s /work/venv-lce .venv-lce``); nothing here
re-implements LCE. The board side (LiteRT on an LCE file, no LCE runtime) runs here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgekit  # noqa: E402
from edgekit.bench.expected import read_reference, verify_expected  # noqa: E402
from edgekit.core.errors import (  # noqa: E402
    BenchError,
    MissingBackendError,
    UnsupportedOpError,
)
from edgekit.export.lce import export_lce  # noqa: E402
from edgekit.export.lce_flatbuffer import LCE_BCONV2D, _schema  # noqa: E402
from edgekit.export.tflite_flatbuffer import _read, _write  # noqa: E402
from edgekit.models.lowbit import layers as L  # noqa: E402
from edgekit.runtime.lce import LCE_PYTHON_ENV  # noqa: E402
from edgekit.runtime.registry import open_runner  # noqa: E402
from tests.helpers import calibrated_lowbit, needs_lce  # noqa: E402

QUICK = {"epochs": 1, "train_limit": 400, "bench_runs": 5, "log": lambda _: None}




def _custom_ops(path) -> set[str]:
    model = _read(path.read_bytes())
    return {c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
            for c in model.operatorCodes if c.builtinCode == _schema().BuiltinOperator.CUSTOM}


@pytest.fixture(scope="module")
def binary_mlp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lce") / "run"
    return edgekit.compress("binary_mlp", "raspberry-pi-5", out=out, **QUICK)


@needs_lce
@pytest.mark.slow
def test_binary_mlp_for_the_pi_deploys_an_lce_file_verified_in_lce(binary_mlp_run):
    result = binary_mlp_run
    out = result.out_dir
    assert result.deployed == out / "bundle" / "model_lce.tflite"
    assert {LCE_BCONV2D, "LceQuantize"} <= _custom_ops(result.deployed)
    verify = json.loads((out / "verify.json").read_text())
    assert verify["runtime"] == "lce" and verify["passed"] and verify["agreement"] >= 0.995
    assert result.manifest["recipe"]["qat_epochs"] == 0  # no int8 QAT of a binary net
    # the board's bundle names the runtime; its check ran in LCE too, the runtime unnamed
    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    assert bundle["deployed"] == "model_lce.tflite"
    assert bundle["runtimes"] == {"model_lce.tflite": "lce"}
    _, record = read_reference(out / "bundle" / "reference.npz")
    assert record["files"]["model_lce.tflite"]["runtime"] == "lce"
    assert result.metrics["bundle_check"]["runtime"] == "lce"
    assert result.metrics["bundle_check"]["passed"]
    guide = (out / "bundle" / "DEVICE.md").read_text()
    assert "model_lce.tflite --runtime lce --expected" in guide
    # host timing: only the fp32 .tflite in LiteRT; no estimate of a 1-bit file
    assert set(result.benchmarks) == {"fp32"}
    assert [r["precision"] for r in result.metrics["latency_rows"]] == ["fp32"]
    assert result.estimates == []
    report = (out / "report.md").read_text()
    assert "no 1-bit kernels" in report and "not timed on this host" in report
    sizes = {k: v["bytes"] for k, v in result.manifest["artifacts"].items()}
    assert result.metrics["size_ratio"] == pytest.approx(sizes["fp32"] / sizes["lce"])
    assert result.metrics["size_ratio"] > 3


def _flip_filter_bits(src, dst) -> None:
    """``src`` with the packed signs of half the output channels of its first bconv
    filter flipped (every weight of those channels negated), written to ``dst``."""
    model = _read(src.read_bytes())
    tensors = model.subgraphs[0].tensors
    name = lambda t: t.name.decode() if isinstance(t.name, bytes) else t.name  # noqa: E731
    filt = next(t for t in tensors if name(t).startswith("bconv_filter"))
    data = model.buffers[filt.buffer].data
    half = len(data) // 2
    data[:half] = np.bitwise_xor(data[:half], 0xFF)
    dst.write_bytes(_write(model))


@needs_lce
@pytest.mark.slow
def test_planted_fault_in_the_packed_filters_fails_verification(binary_mlp_run, tmp_path):
    bundle = binary_mlp_run.out_dir / "bundle"
    faulty = tmp_path / "model_lce.tflite"
    _flip_filter_bits(bundle / "model_lce.tflite", faulty)
    report = verify_expected(faulty, bundle / "reference.npz", allow_modified=True)
    assert report.runtime == "lce"  # from the reference's entry: LiteRT could not run it
    assert not report.passed and report.agreement < 0.995


@needs_lce
@pytest.mark.slow
def test_xnor_convnet_for_the_pi_deploys_an_lce_file_verified_in_lce(tmp_path):
    result = edgekit.compress("xnor_convnet", "raspberry-pi-5", out=tmp_path / "run", **QUICK)
    assert result.deployed.name == "model_lce.tflite"
    assert LCE_BCONV2D in _custom_ops(result.deployed)
    assert result.verification.runtime == "lce" and result.verification.passed
    assert result.verification.agreement >= 0.995


@needs_lce
@pytest.mark.slow
def test_user_sequential_binary_conv_net_deploys_as_lce(tmp_path):
    """Decided by the layers: a user's nn.Sequential of edgekit's binary layers."""
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), L.BinaryActivation(), nn.MaxPool2d(2),
        L.BinaryConv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        L.BinaryActivation(), nn.MaxPool2d(2), nn.Flatten(),
        L.BinaryLinear(16 * 7 * 7, 10), nn.BatchNorm1d(10))
    result = edgekit.compress(model, "raspberry-pi-5", out=tmp_path / "run", **QUICK)
    assert result.deployed.name == "model_lce.tflite"
    assert LCE_BCONV2D in _custom_ops(result.deployed)
    assert result.verification.runtime == "lce" and result.verification.passed


@needs_lce
def test_binary_layer_lce_cannot_take_is_refused_in_one_line_before_work(tmp_path):
    from torch import nn

    model = nn.Sequential(nn.Conv2d(1, 8, 3), L.BinaryActivation(), nn.AvgPool2d(2),
                          nn.Flatten(), L.BinaryLinear(8 * 13 * 13, 10))
    out = tmp_path / "run"
    with pytest.raises(UnsupportedOpError, match=r"raspberry-pi-5 deploys binary nets as LCE "
                       r"files: .*AvgPool2d.*\(layer 2\)"):
        edgekit.compress(model, "raspberry-pi-5", out=out, **QUICK)
    assert not out.exists()


@needs_lce
def test_binary_layers_in_a_module_with_its_own_forward_are_refused(tmp_path):
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.act, self.fc2 = L.BinaryLinear(784, 32), L.BinaryActivation(), \
                L.BinaryLinear(32, 10)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x.flatten(1))))

    with pytest.raises(UnsupportedOpError, match="forward of its own"):
        edgekit.compress(Net(), "raspberry-pi-5", out=tmp_path / "run", **QUICK)


def test_missing_lce_environment_is_one_line_before_any_work(tmp_path):
    out = tmp_path / "run"
    env = {"EDGEKIT_LCE_PYTHON": str(tmp_path / "no-python")}
    proc = subprocess.run([sys.executable, "-m", "edgekit", "compress", "--model", "binary_mlp",
                           "--target", "raspberry-pi-5", "--epochs", "1", "--train-limit", "200",
                           "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, **env})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    # the data's progress line, then the error in one line, before training ([2/6])
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("edgekit: error:") and "make lce-env" in error
    assert "[2/6]" not in proc.stdout + proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_ternary_net_for_the_pi_deploys_int8_keeping_three_levels(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    result = edgekit.compress("ternary_lenet5", "raspberry-pi-5", out=tmp_path / "run", **QUICK)
    assert result.deployed.name == "model_int8.tflite"
    assert result.verification.runtime == "litert" and result.verification.passed
    assert result.manifest["recipe"]["qat_epochs"] == 0
    interpreter = Interpreter(model_path=str(result.deployed))
    checked = 0
    for detail in interpreter.get_tensor_details():
        q = detail["quantization_parameters"]
        if detail["dtype"] != np.int8 or q["scales"].size < 2 or q["quantized_dimension"]:
            continue  # per-channel int8 weights only
        w = interpreter.get_tensor(detail["index"])
        rows = w.reshape(len(w), -1)
        # TWN: each output channel holds {-a, 0, +a}: one nonzero magnitude in int8
        assert all(len(np.unique(np.abs(r[r != 0]))) <= 1 for r in rows), detail["name"]
        checked += 1
    assert checked >= 3


def test_litert_names_the_lce_ops_it_cannot_run(tmp_path):
    """The board without LCE: the file is not loaded as a plain .tflite in silence."""
    path = export_lce(calibrated_lowbit("binary_mlp"), tmp_path / "m.tflite").path
    with pytest.raises(BenchError, match=r"Larq Compute Engine ops \(Lce\w+\).*--runtime lce"):
        open_runner(path)


def test_board_without_lce_runtime_gets_one_line(tmp_path, monkeypatch):
    """`edgekit bench FILE --runtime lce` on a board where LCE's Python is not installed."""
    path = export_lce(calibrated_lowbit("binary_mlp"), tmp_path / "m.tflite").path
    monkeypatch.setenv(LCE_PYTHON_ENV, str(tmp_path / "no-python"))
    with pytest.raises(MissingBackendError, match=LCE_PYTHON_ENV):
        open_runner(path, runtime="lce")
    proc = subprocess.run([sys.executable, "-m", "edgekit", "bench", str(path), "--runtime",
                           "lce", "--runs", "2"], capture_output=True, text=True,
                          env={**os.environ, LCE_PYTHON_ENV: str(tmp_path / "no-python")})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and LCE_PYTHON_ENV in proc.stderr


@needs_lce
@pytest.mark.slow
@pytest.mark.ssh
def test_deploy_to_a_board_without_lce_says_so_and_does_not_run_it_in_litert(
        binary_mlp_run, sshd, board_python, tmp_path, capsys):
    """`edgekit deploy` to the torch-free board venv (numpy + onnxruntime + LiteRT, no LCE):
    verify and bench of the LCE file are asked for runtime lce and fail in one line each."""
    from edgekit.cli import main

    run = binary_mlp_run.out_dir
    main(["deploy", str(run), "--remote", f"{sshd['user']}@127.0.0.1:{sshd['port']}",
          "--known-hosts", str(sshd["known_hosts"]), "--identity", str(sshd["identity"]),
          "--ssh-config", "/dev/null", "--remote-python", str(board_python), "--runs", "3",
          "--power", "none", "--remote-dir", str(tmp_path / "board")])
    capsys.readouterr()
    manifest = json.loads((run / "manifest.json").read_text())
    [record] = manifest["device_runs"].values()
    for failed in (record["verify"], record["bench"]["lce"]):
        assert LCE_PYTHON_ENV in failed["error"] and "LiteRT cannot" not in failed["error"]
    assert record["bench"]["fp32"]["runtime"]["name"] == "litert"  # the float twin runs
    report = (run / "report.md").read_text().split("## Measured on")[1]
    assert "Verification could not run" in report and LCE_PYTHON_ENV in report
