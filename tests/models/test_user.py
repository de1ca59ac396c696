"""User models named as file.py:factory or package.module:factory, and their weights files."""

from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import CheckpointError, InvalidInputError  # noqa: E402
from edgekit.models.user import build_user_model, describe_module, is_factory_spec  # noqa: E402
from edgekit.training.checkpoint import load_weights, save_weights  # noqa: E402

NETS = textwrap.dedent('''
    import torch
    from torch import nn
    from helper_blocks import head  # a module beside this file

    def tiny(num_classes=10):
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), head(num_classes))

    def broken(num_classes=10):
        raise ValueError("no such width: 7")

    def not_a_module():
        return 42

    WIDTH = 3
''')


@pytest.fixture
def nets_file(tmp_path):
    (tmp_path / "helper_blocks.py").write_text(
        "from torch import nn\n\ndef head(n):\n    return nn.LazyLinear(n)\n")
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def test_factory_from_a_file_with_args(nets_file):
    model = build_user_model(f"{nets_file}:tiny", {"num_classes": 7})
    assert isinstance(model, torch.nn.Sequential)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 7)
    info = describe_module(model, source=f"{nets_file}:tiny", model_args={"num_classes": 7})
    assert info["class"] == "torch.nn.modules.container.Sequential"
    assert info["model_args"] == {"num_classes": 7}


def test_factory_from_an_importable_module():
    model = build_user_model("tests.helpers:SmallNet", {"channels": 3})
    assert type(model).__name__ == "SmallNet"
    assert is_factory_spec("tests.helpers:SmallNet") and not is_factory_spec("mobilenet_v2")


@pytest.mark.parametrize("attr, message", [
    ("broken", r"the factory raised ValueError: no such width: 7"),
    ("not_a_module", r"returned a int, not a torch.nn.Module"),
    ("WIDTH", r"WIDTH is a int, not a callable"),
    ("missing", r"has no attribute 'missing'"),
])
def test_bad_factories_are_one_line_errors(nets_file, attr, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        build_user_model(f"{nets_file}:{attr}")
    assert "\n" not in str(info.value)


def test_bad_specs(tmp_path):
    with pytest.raises(InvalidInputError, match="no such Python file"):
        build_user_model(f"{tmp_path}/nope.py:net")
    with pytest.raises(InvalidInputError, match="cannot import no_such_pkg_xyz"):
        build_user_model("no_such_pkg_xyz.mod:net")
    with pytest.raises(InvalidInputError, match=r"expected path/to/file\.py:factory"):
        build_user_model("nets.py:")
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nraise RuntimeError('boom at import')\n")
    with pytest.raises(InvalidInputError, match="importing it raised RuntimeError: boom"):
        build_user_model(f"{bad}:net")


def _net():
    from tests.helpers import SmallNet

    torch.manual_seed(1)
    return SmallNet(channels=3)


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_weights_in_each_format_load_into_the_users_module(tmp_path, suffix):
    src, dst = _net(), _net()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_weights(src, path)
    else:
        torch.save(src.state_dict(), path)
    load_weights(dst, path)
    for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_ddp_prefixed_and_wrapped_state_dicts_load(tmp_path):
    src, dst = _net(), _net()
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()},
                "epoch": 3}, tmp_path / "ddp.pt")
    load_weights(dst, tmp_path / "ddp.pt")
    assert torch.equal(src.head.weight, dst.head.weight)


def test_weights_of_another_architecture_list_the_misfits(tmp_path):
    from tests.helpers import SmallNet

    torch.save(SmallNet(channels=1, classes=4).state_dict(), tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"weights do not fit the model \(SmallNet\); "
                       r"wrong shape: head.bias, head.weight, stem.0.weight") as info:
        load_weights(_net(), tmp_path / "other.pt")
    assert "\n" not in str(info.value)


def test_pickled_objects_are_never_unpickled(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(CheckpointError, match="not an edgekit checkpoint, safetensors file"):
        load_weights(_net(), tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(CheckpointError, match="unknown weights format"):
        load_weights(_net(), tmp_path / "evil.pkl")


def test_a_corrupt_safetensors_file_is_named_not_a_traceback(tmp_path):
    from edgekit.training.checkpoint import is_zoo_checkpoint

    (tmp_path / "w.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt or truncated safetensors"):
        is_zoo_checkpoint(tmp_path / "w.safetensors")
    save_weights(_net(), tmp_path / "plain.safetensors")  # no model config in its header
    assert not is_zoo_checkpoint(tmp_path / "plain.safetensors")
    assert is_zoo_checkpoint(tmp_path) and not is_zoo_checkpoint(tmp_path / "w.pt")
