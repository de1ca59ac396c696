"""Whole low-bit models to .ekz and back: exact, small, atomic, typed errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import FormatError, InvalidInputError  # noqa: E402
from edgekit.deep_compression.ekz import load_ekz  # noqa: E402
from edgekit.lowbit import materialize  # noqa: E402
from edgekit.lowbit.storage import (  # noqa: E402
    load_lowbit,
    save_lowbit,
    storage_report,
)
from edgekit.models import create_model  # noqa: E402

# (model, variant args, record kind of its low-bit layers, minimum low-bit layer ratio)
CASES = [
    ("binary_mlp", {}, "bits1", 31.9),
    ("xnor_convnet", {}, "bits1", 31.0),
    ("ternary_lenet5", {}, "tern2", 15.8),
    ("ternary_lenet5", {"weights": "ttq"}, "tern2", 15.5),
    ("ttq_resnet8", {}, "tern2", 15.5),
    ("hashed_mlp", {"compression": 1 / 64, "hidden": 200}, "hashed", 63.0),
]


def _trained_a_little(name, args):
    torch.manual_seed(0)
    model = create_model(name, **args)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # move BN statistics and TTQ scales off their initial values
        loss = model(torch.rand(16, 1, 28, 28)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("name,args,kind,min_ratio", CASES)
def test_save_load_reproduces_the_materialized_model_exactly(tmp_path, name, args, kind,
                                                              min_ratio):
    model = _trained_a_little(name, args)
    path = save_lowbit(model, tmp_path / "m.ekz")
    kinds = {r.kind for r in load_ekz(path).records}
    assert kinds == {kind, "raw"}
    loaded = load_lowbit(path)
    want = materialize(model).state_dict()
    got = loaded.state_dict()
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    report = storage_report(model)
    assert report.file_bytes == path.stat().st_size
    assert report.lowbit_layer_ratio >= min_ratio
    assert report.ratio > 2


def test_saving_needs_a_registered_model(tmp_path):
    from edgekit.lowbit import BinaryLinear

    with pytest.raises(InvalidInputError):
        save_lowbit(torch.nn.Sequential(BinaryLinear(4, 2)), tmp_path / "x.ekz")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_truncated_file_raises_format_error(tmp_path):
    path = save_lowbit(_trained_a_little("ternary_lenet5", {}), tmp_path / "m.ekz")
    data = path.read_bytes()
    bad = tmp_path / "bad.ekz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        load_lowbit(bad)


def test_generic_ekz_loader_rebuilds_the_export_architecture(tmp_path):
    """Deployment tooling that knows nothing of low-bit layers (ekz_model) loads the file."""
    from edgekit.export.ekz import ekz_model

    model = _trained_a_little("xnor_convnet", {})
    path = save_lowbit(model, tmp_path / "m.ekz")
    assert load_ekz(path).model_config["materialized"] is True
    loaded = ekz_model(path)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
