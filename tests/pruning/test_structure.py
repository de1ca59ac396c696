"""A pruned model is saved and rebuilt from safetensors (nothing unpickled), zoo or user."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from edgekit.core.errors import CheckpointError  # noqa: E402
from edgekit.pruning import (  # noqa: E402
    ChannelPruneConfig,
    load_pruned,
    prune_channels,
    read_pruned_header,
    save_pruned,
)
from tests.helpers import small_model  # noqa: E402
from tests.pruning.test_channel import UserNet  # noqa: E402


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "squeezenet1_1", "espnetv2"])
def test_zoo_model_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = small_model(name).eval()
    prune_channels(model, ChannelPruneConfig(keep_macs=0.6))
    path = save_pruned(model, tmp_path / "m.safetensors", metrics={"accuracy": 0.5})
    header = read_pruned_header(path)
    assert header["base_config"]["name"] == name and header["metrics"] == {"accuracy": 0.5}
    back = load_pruned(path).eval()
    x = torch.randn(2, 1, *([model.edgekit_config["input_size"]] * 2))
    with torch.no_grad():
        assert torch.equal(back(x), model(x))
    assert back.edgekit_config == model.edgekit_config
    assert b"pickle" not in path.read_bytes()[:64]


def test_user_model_needs_its_factory(tmp_path):
    model = UserNet().eval()
    x = torch.randn(1, 1, 16, 16)
    prune_channels(model, ChannelPruneConfig(keep_macs=0.7), example_input=x)
    path = save_pruned(model, tmp_path / "user.safetensors")
    with pytest.raises(CheckpointError, match="base="):
        load_pruned(path)
    back = load_pruned(path, base=UserNet).eval()
    assert torch.equal(back(x), model(x))


def test_wrong_base_and_wrong_file(tmp_path):
    model = small_model("mobilenet_v2")
    prune_channels(model, ChannelPruneConfig(keep_macs=0.6))
    path = save_pruned(model, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="not the model"):
        load_pruned(path, base=UserNet())
    other = tmp_path / "plain.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not a pruned-model file"):
        load_pruned(other)
