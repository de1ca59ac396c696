"""A device with only the .ekz file rebuilds the model: torch, ONNX (onnxruntime), CLI."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgekit.calibration import load_dataset  # noqa: E402
from edgekit.cli import main  # noqa: E402
from edgekit.deep_compression.ekz import load_ekz  # noqa: E402
from edgekit.deep_compression.ekz.pack import pack_model  # noqa: E402
from edgekit.deep_compression.ekz.report import format_table, layer_table, stream_stats  # noqa: E402
from edgekit.deep_compression.prune import MaskEnforcer, std_masks  # noqa: E402
from edgekit.deep_compression.share import ShareConfig, share_weights  # noqa: E402
from edgekit.export.ekz import (  # noqa: E402
    ekz_model,
    ekz_state_dict,
    ekz_to_onnx,
    ekz_to_safetensors,
    fill_onnx_initializers,
)
from edgekit.models import create_model  # noqa: E402


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_channels=1, input_size=28).eval()
    MaskEnforcer(model, std_masks(model, 1.0)).after_step(model)
    shared = share_weights(model, ShareConfig())
    path = tmp_path_factory.mktemp("ekz") / "lenet5.ekz"
    pack_model(model, path, shared=shared, codec="auto")
    return model, path


def test_state_dict_and_model_round_trip_exactly(packed):
    model, path = packed
    state = ekz_state_dict(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name
    rebuilt = ekz_model(path)
    x = torch.from_numpy(load_dataset("mnist5k", split="test").x[:32])
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_rebuilt_onnx_runs_in_onnxruntime_like_the_compressed_model(packed, tmp_path):
    model, path = packed
    onnx_path = ekz_to_onnx(path, tmp_path / "m.onnx")
    x = load_dataset("mnist5k", split="test").x[:64]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert (out.argmax(1) == ref.argmax(1)).all()


def test_filling_initializers_of_a_dense_graph(packed, tmp_path):
    model, path = packed
    dense = create_model("lenet5", num_classes=10, in_channels=1, input_size=28).eval()
    torch.onnx.export(dense, (torch.zeros(1, 1, 28, 28),), str(tmp_path / "dense.onnx"),
                      dynamo=False, opset_version=17, input_names=["input"],
                      do_constant_folding=False, dynamic_axes={"input": {0: "n"}})
    filled = fill_onnx_initializers(tmp_path / "dense.onnx", path, tmp_path / "filled.onnx")
    x = load_dataset("mnist5k", split="test").x[:16]
    session = ort.InferenceSession(str(filled), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)


def test_safetensors_output(packed, tmp_path):
    from safetensors.numpy import load_file

    _, path = packed
    out = ekz_to_safetensors(path, tmp_path / "m.safetensors")
    tensors = load_file(str(out))
    assert np.array_equal(tensors["fc1.weight"], load_ekz(path).tensors()["fc1.weight"])


def test_report_columns(packed):
    _, path = packed
    ekz = load_ekz(path)
    rows = {r["name"]: r for r in layer_table(ekz)}
    conv = rows["features.0.weight"]
    assert conv["weight_bits_pq"] <= 8 and rows["fc1.weight"]["weight_bits_pq"] <= 5
    assert 20 < rows["fc1.weight"]["kept_pct"] < 45
    assert "total:" in format_table(ekz)
    stats = stream_stats(ekz)
    assert 1.0 <= stats["bits_over_entropy"] < 1.05


def test_cli_inspect_unpack_and_bad_files(packed, tmp_path, capsys):
    _, path = packed
    assert main(["inspect", str(path), "--streams", "--json", str(tmp_path / "r.json")]) == 0
    assert "fc1.weight" in capsys.readouterr().out
    assert main(["unpack", str(path), "--to", "onnx", "--out", str(tmp_path / "c.onnx")]) == 0
    assert (tmp_path / "c.onnx").stat().st_size > 0
    broken = tmp_path / "broken.ekz"
    broken.write_bytes(path.read_bytes()[:-7])
    out_path = tmp_path / "never.onnx"
    assert main(["unpack", str(broken), "--to", "onnx", "--out", str(out_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgekit: error:") and "\n" not in err
    assert not out_path.exists()


def test_cli_refuses_unwritable_outputs_before_reading_inputs(tmp_path, capsys):
    missing = str(tmp_path / "missing")  # reading it would fail too, but later
    for argv in (["prune", missing, "--out", "/proc/p"], ["pack", missing, "--out", "/proc/m.ekz"],
                 ["unpack", missing, "--to", "checkpoint", "--out", "/proc/c"],
                 ["inspect", missing, "--json", "/proc/i.json"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot create files in /proc" in err, (argv, err)


@pytest.mark.slow
def test_cli_prune_then_pack(tmp_path, capsys):
    from edgekit.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, in_channels=1, input_size=28)
    save_checkpoint(model, tmp_path / "dense")
    assert main(["prune", str(tmp_path / "dense"), "--quality", "1.0", "--steps", "1",
                 "--epochs", "1", "--out", str(tmp_path / "pruned")]) == 0
    assert main(["pack", str(tmp_path / "pruned"), "--out", str(tmp_path / "m.ekz")]) == 0
    assert "total:" in capsys.readouterr().out
    state = ekz_state_dict(tmp_path / "m.ekz")
    assert 0.2 < float((state["fc1.weight"] != 0).float().mean()) < 0.45


@pytest.mark.slow
def test_rebuilt_tflite_runs_in_litert(packed, tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from edgekit.export.ekz import ekz_to_tflite
    from edgekit.export.tflite import run_tflite

    model, path = packed
    out = ekz_to_tflite(path, tmp_path / "m.tflite")
    x = load_dataset("mnist5k", split="test").x[:8]
    got = np.concatenate([run_tflite(out, x[i : i + 1]) for i in range(len(x))])
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), rtol=1e-3, atol=1e-4)


def test_aliased_layer_is_coded_not_stored_raw(tmp_path):
    class Aliased(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Sequential(torch.nn.Linear(64, 32))
            self.final = self.head[0]  # the same module under a second name

        def forward(self, x):
            return self.final(x)

    model = Aliased()
    path = pack_model(model, tmp_path / "a.ekz", shared=share_weights(model, ShareConfig()))
    kinds = {r.name: r.kind for r in load_ekz(path).records}
    assert kinds["head.0.weight"] == kinds["final.weight"] == "dc"
    state = ekz_state_dict(path)
    assert torch.equal(state["head.0.weight"], state["final.weight"])
