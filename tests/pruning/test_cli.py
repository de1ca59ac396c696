"""`edgekit prune --structured/--sparsity` and `edgekit inspect FILE.onnx`."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from edgekit.cli import main  # noqa: E402
from edgekit.pruning import check_24, load_pruned  # noqa: E402
from tests.helpers import small_model  # noqa: E402


@pytest.fixture(scope="module")
def dense_checkpoint(tmp_path_factory):
    from edgekit.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "mnv2"
    save_checkpoint(small_model("mobilenet_v2"), path)
    return path


def test_structured_then_sparsity_then_inspect(dense_checkpoint, tmp_path, capsys):
    c50 = tmp_path / "c60"
    assert main(["prune", str(dense_checkpoint), "--structured", "channel:0.6", "--steps", "1",
                 "--epochs", "0", "--out", str(c50)]) == 0
    out = capsys.readouterr().out
    assert "MACs" in out and "target 60%" in out
    report = json.loads((c50 / "pruning.json").read_text())
    assert 0.5 <= report["channel"]["macs_ratio"] <= 0.62
    pruned = load_pruned(c50 / "pruned.safetensors")
    sparse_dir = tmp_path / "c60-24"
    assert main(["prune", str(c50), "--sparsity", "2:4", "--epochs", "0",
                 "--out", str(sparse_dir), "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert 0 < report["sparsity"]["sparse_mac_share"] < 1
    sparse = load_pruned(sparse_dir / "pruned.safetensors")
    layers = dict(sparse.named_modules())
    assert all(check_24(layers[n].weight)[0] for n in report["sparsity"]["sparse_layers"])
    assert sum(p.numel() for p in sparse.parameters()) == sum(
        p.numel() for p in pruned.parameters())  # 2:4 keeps the shapes
    from edgekit.export.onnx import export_onnx

    onnx_path = export_onnx(sparse.eval(), tmp_path / "s.onnx", input_shape=(1, 28, 28)).path
    assert main(["inspect", str(onnx_path), "--json", str(tmp_path / "i.json")]) == 0
    table = capsys.readouterr().out
    assert "pattern_ok=True" in table and "depthwise" in table
    assert json.loads((tmp_path / "i.json").read_text())["pattern_ok"] is True


@pytest.mark.parametrize("argv, message", [
    (["--structured", "channel:1.5"], "channel:R needs"),
    (["--structured", "half"], "channel:R"),
    (["--sparsity", "4:8"], "--sparsity takes 2:4"),
    (["--structured", "channel:0.5", "--sensitivity"], "--sensitivity"),
    (["--sparsity", "2:4"], "--out is required"),
])
def test_bad_input_is_one_line(dense_checkpoint, tmp_path, capsys, argv, message):
    extra = [] if "--out" in message or "--sensitivity" in argv else ["--out",
                                                                      str(tmp_path / "o")]
    assert main(["prune", str(dense_checkpoint), *argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_help_names_the_new_options(capsys):
    with pytest.raises(SystemExit):
        main(["prune", "--help"])
    text = capsys.readouterr().out
    assert "--structured channel:R" in text and "--sparsity 2:4" in text
    assert "TensorRT" in text
