"""`edgekit prune --prune/--sparsity` and `edgekit inspect FILE.onnx`."""

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
    assert main(["prune", str(dense_checkpoint), "--prune", "channel:0.6", "--steps", "1",
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
    (["--prune", "channel:1.5"], "channel:R needs"),
    (["--prune", "half"], "channel:R"),
    (["--sparsity", "4:8"], "--sparsity takes 2:4"),
    (["--prune", "channel:0.5", "--sensitivity"], "--sensitivity"),
    (["--prune", "channel:0.5", "--structured", "channel:0.5"], "--prune channel:R alone"),
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
    assert "--prune channel:R" in text and "--sparsity 2:4" in text
    assert "TensorRT" in text and "--structured" not in text
    # compress's fine-tuning settings (CompressRecipe.prune_lr/_epochs/_distill)
    assert "(default, as compress: 0.003)" in " ".join(text.split())


def test_user_npz_is_scored_on_a_held_out_part_and_old_flag_still_works(
        dense_checkpoint, tmp_path, capsys):
    from edgekit.calibration import load_dataset

    digits = load_dataset("mnist5k", split="train").subset(200, seed=0)
    np = pytest.importorskip("numpy")
    np.savez(tmp_path / "mine.npz", x=digits.x, y=digits.y)
    assert main(["prune", str(dense_checkpoint), "--structured", "channel:0.6", "--steps", "1",
                 "--epochs", "0", "--data", str(tmp_path / "mine.npz"),
                 "--out", str(tmp_path / "c60")]) == 0
    err = capsys.readouterr().err
    assert "--structured is deprecated; it is now --prune channel:R" in err
    scored = json.loads((tmp_path / "c60" / "pruning.json").read_text())["scored_on"]
    # the .npz has no split of its own: 20% held out, never trained on
    assert (scored["samples"], scored["train_samples"]) == (40, 160)
