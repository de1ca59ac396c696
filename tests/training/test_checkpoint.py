"""Checkpoints: exact round trip, atomic writes, and every way a file can be wrong."""

from __future__ import annotations

import json
import re

import pytest
import torch

from edgekit.core.errors import CheckpointError
from edgekit.models import create_model
from edgekit.training.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("lenet5")
    out = save_checkpoint(model, tmp_path / "ckpt", metrics={"accuracy": 0.5},
                          extra={"data": "mnist5k"})
    return model, out


def test_round_trip_is_exact(saved):
    model, out = saved
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    loaded, config = load_checkpoint(out)
    assert config["format"] == "edgekit-checkpoint" and config["version"] == 1
    assert config["model"] == model.edgekit_config and config["metrics"] == {"accuracy": 0.5}
    assert config["torch_version"] == torch.__version__ and config["edgekit_version"]
    assert set(config["sha256"]) == {"model.safetensors"}
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    x = torch.rand(4, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), loaded(x)) and not loaded.training
    # a lone safetensors file carries its model config in the header
    lone = out.parent / "lone.safetensors"
    lone.write_bytes((out / "model.safetensors").read_bytes())
    again, lone_config = load_checkpoint(lone)
    assert lone_config["model"] == model.edgekit_config
    assert torch.equal(again(x), loaded(x))


def test_plain_state_dict_pt_needs_a_config(tmp_path, saved):
    model, _ = saved
    pt = tmp_path / "weights.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, pt)
    with pytest.raises(CheckpointError, match="no model config"):
        load_checkpoint(pt)
    loaded, _ = load_checkpoint(pt, config=model.edgekit_config)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    pickled = tmp_path / "pickled.pt"
    torch.save({"weights": model.state_dict(), "note": _NotATensor()}, pickled)
    with pytest.raises(CheckpointError, match=r"pickled .*_NotATensor .*model\.state_dict"):
        load_checkpoint(pickled, config=model.edgekit_config)


class _NotATensor:
    """Unpickling this would run code from the file: weights_only loading refuses it."""


def test_corrupt_truncated_and_tampered_files(tmp_path, saved):
    _, out = saved
    weights = out / "model.safetensors"
    data = weights.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(garbage)
    weights.write_bytes(data[:-8] + bytes(8))  # same size, changed weights
    with pytest.raises(CheckpointError, match="SHA-256 does not match"):
        load_checkpoint(out)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")


def test_config_problems_unknown_model_and_misfit_weights(tmp_path, saved):
    model, out = saved
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["model"]["name"] = "lenet55"
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown model 'lenet55'"):
        load_checkpoint(out)
    config_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable checkpoint config"):
        load_checkpoint(out)
    config_path.unlink()
    narrow = create_model("lenet5", num_classes=5)
    changed = sorted(k for k, v in narrow.state_dict().items()
                     if v.shape != model.state_dict()[k].shape)
    assert changed  # the classifier's weight and bias
    with pytest.raises(CheckpointError, match=re.escape(f"wrong shape: {', '.join(changed)}")):
        load_checkpoint(out / "model.safetensors", config=narrow.edgekit_config)
    mlp = create_model("lenet300_100")
    with pytest.raises(CheckpointError, match=r"lenet300_100.*missing: .*unexpected: "):
        load_checkpoint(out / "model.safetensors", config=mlp.edgekit_config)


def test_writes_are_atomic_and_refuse_foreign_directories(tmp_path, saved, monkeypatch):
    model, out = saved
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(CheckpointError, match="refusing to replace"):
        save_checkpoint(model, foreign)
    assert (foreign / "holiday.jpg").read_bytes() == b"precious"
    with pytest.raises(CheckpointError, match="edgekit_config"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "plain")

    import safetensors.torch

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(model, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with pytest.raises(OSError):  # replacing a checkpoint: the old one survives a failure
        save_checkpoint(model, out, metrics={"accuracy": 0.9})
    assert load_checkpoint(out)[1]["metrics"] == {"accuracy": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "photos"]
