"""`edgekit compress` on models that are not in the zoo: a module object, a factory in a
file with a state-dict .pt, user data folders and preprocessing; and bad input, which must
fail in one line (exit 2 on the CLI) with nothing written to --out."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

import edgekit  # noqa: E402
from edgekit.core.errors import CheckpointError, DataError, InvalidInputError  # noqa: E402

QUICK = {"qat_epochs": 1, "calibration_size": 32, "bench_runs": 3, "bench_power": "none",
         "fp32_baseline": False, "batch_size": 32}

NETS = textwrap.dedent('''
    import torch
    from torch import nn

    class Wrapper(nn.Module):
        """Holds the network as self.model; its forward adds a scale of its own."""
        def __init__(self, num_classes=3):
            super().__init__()
            self.model = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.Hardswish(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
                nn.Linear(8, num_classes))
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return self.model(x) * self.scale

    def wrapper(num_classes=3):
        return Wrapper(num_classes)

    def sequential(num_classes=3):
        return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten(),
                             nn.Dropout(0.2), nn.LazyLinear(num_classes))

    def broken(num_classes=3):
        raise ValueError("unsupported width")

    def wants_64px(num_classes=3):
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 62 * 62, 3))
''')


def _folder(root, n_per_class=40, classes=3, size=24, mixed=False):
    """RGB PNGs: each class a bright square at its own corner, on noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(n_per_class):
            s = size + (8 if mixed and i % 2 else 0)
            img = (rng.random((s, s, 3)) * 80).astype(np.uint8)
            q = s // 3
            img[(c % 2) * q:(c % 2) * q + q, (c // 2) * q:(c // 2) * q + q] = 255
            Image.fromarray(img).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    path = tmp_path_factory.mktemp("nets") / "nets.py"
    path.write_text(NETS)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("data") / "shapes")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgekit", "compress", *args],
                          capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["jetson", "raspberry-pi-5"])
def test_a_module_object_with_a_wrapper_child_compresses(nets, folder, target, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("byo_nets", nets)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.wrapper(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = edgekit.compress(model, target, data=str(folder), epochs=2, out=tmp_path / "o",
                              log=lambda _: None, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25],
                              **QUICK)
    assert result.verification.passed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert manifest["input"]["model"]["class"].endswith("Wrapper")
    assert manifest["input"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert "range" not in manifest["input"]  # normalized inputs are not in [0, 1]
    assert (result.out_dir / "fp32.safetensors").is_file()


@pytest.mark.slow
def test_cli_factory_with_state_dict_weights_and_no_fp32_training(nets, folder, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("byo_nets2", nets)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.sequential(3)
    model(torch.zeros(1, 3, 24, 24))  # materialize the LazyLinear
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "o"
    run = _cli("--model", f"{nets}:sequential", "--model-args", '{"num_classes": 3}',
               "--weights", str(tmp_path / "w.pt"), "--data", str(folder), "--target",
               "x86-cpu", "--qat-epochs", "1", "--bench-runs", "3", "--power", "none",
               "--out", str(out))
    assert run.returncode == 0, run.stderr[-1500:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["epochs"] == 0 and "loaded" in run.stderr
    assert manifest["input"]["model"]["source"] == f"{nets}:sequential"
    assert manifest["metrics"]["parity"]["passed"]


def test_bad_factory_is_one_line_exit_2_and_writes_nothing(nets, folder, tmp_path):
    out = tmp_path / "o"
    run = _cli("--model", f"{nets}:broken", "--data", str(folder), "--out", str(out))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f"edgekit: error: --model '{nets}:broken': the factory raised ValueError: "
        "unsupported width")
    assert "Traceback" not in run.stderr and not out.exists()


@pytest.mark.parametrize("case, error, message", [
    ("forward fails", InvalidInputError, r"forward fails on inputs of shape \(2, 3, 24, 24\)"),
    ("other weights", CheckpointError, r"weights do not fit the model \(Sequential\); "
                                       r"missing: 0.bias, 0.weight, 4.bias, 4.weight; "
                                       r"unexpected: fc.weight"),
    ("one class", DataError, r"needs >= 2 classes"),
    ("mixed sizes", DataError, r"input_size"),
    ("mean length", InvalidInputError, r"mean"),
])
def test_bad_input_fails_before_any_output(case, error, message, nets, folder, tmp_path):
    model, kw = f"{nets}:sequential", {"data": str(folder), "epochs": 1}
    if case == "forward fails":
        model = f"{nets}:wants_64px"
    elif case == "other weights":
        torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "w.pt")
        kw["weights"] = str(tmp_path / "w.pt")
    elif case == "one class":
        root = _folder(tmp_path / "one", classes=1)
        kw["data"] = str(root)
    elif case == "mixed sizes":
        kw["data"] = str(_folder(tmp_path / "mixed", mixed=True))
    else:
        kw["mean"] = [0.5, 0.5]
    out = tmp_path / "o"
    with pytest.raises(error, match=message) as info:
        edgekit.compress(model, "jetson", out=out, log=lambda _: None, **kw, **QUICK)
    assert "\n" not in str(info.value) and not out.exists()


def test_training_on_a_dataloader_of_inputs_alone_is_refused_in_one_line(tmp_path):
    """(x,) samples are inputs without labels: enough to calibrate a trained model, not to
    train one from scratch."""
    from torch.utils.data import DataLoader, TensorDataset

    bad = DataLoader(TensorDataset(torch.zeros(8, 3, 24, 24)), batch_size=4)  # no labels
    with pytest.raises(InvalidInputError, match="no labels") as info:
        edgekit.compress("mobilenet_v1", "jetson", data=bad, out=tmp_path / "o",
                         log=lambda _: None, **QUICK)
    assert "\n" not in str(info.value) and not (tmp_path / "o").exists()
