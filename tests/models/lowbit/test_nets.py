"""The registered binary / ternary / hashed models: build, train, twins, arguments."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.lowbit import LOWBIT_LAYER_TYPES, lowbit_layers  # noqa: E402
from edgekit.models import create_model, get_model_spec, list_models  # noqa: E402
from edgekit.models.lowbit.nets import dense_equivalent_hidden  # noqa: E402

LOWBIT_MODELS = {"binary_mlp": "binary", "xnor_convnet": "xnor", "ternary_lenet5": "twn",
                 "ttq_resnet8": "ttq", "hashed_mlp": "hashed", "bireal_net": "binary"}


def test_all_lowbit_models_are_registered():
    assert set(LOWBIT_MODELS) <= set(list_models())
    assert {get_model_spec(n).family for n in LOWBIT_MODELS} == {"lowbit"}


@pytest.mark.parametrize("name", sorted(LOWBIT_MODELS))
def test_model_and_fp32_twin_share_topology(name):
    model = create_model(name)
    twin = create_model(name, weights="fp32")
    kinds = {m.kind for _, m in lowbit_layers(model)}
    assert kinds == {LOWBIT_MODELS[name]}
    assert not any(isinstance(m, LOWBIT_LAYER_TYPES) for m in twin.modules())
    x = torch.rand(4, 1, 28, 28)
    for m in (model, twin):
        out = m(x)
        assert out.shape == (4, 10)
        out.logsumexp(1).mean().backward()
        assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    rebuilt = create_model(**model.edgekit_config)
    assert rebuilt.edgekit_config == model.edgekit_config


def test_hashed_mlp_compression_sets_the_bucket_count():
    model = create_model("hashed_mlp", compression=1 / 64)
    first, last = (m for _, m in lowbit_layers(model))
    assert first.n_buckets == round(784 * 1000 / 64) and last.n_buckets == round(10_000 / 64)
    assert first.seed != last.seed
    assert dense_equivalent_hidden(1000, 1 / 64) == 16


@pytest.mark.parametrize("args", [{"weights": "int4"}, {"weights": "binary"},
                                  {"compression": 0.0}])
def test_bad_arguments_are_invalid_input(args):
    name = "hashed_mlp" if "compression" in args else "ternary_lenet5"
    with pytest.raises(InvalidInputError):
        create_model(name, **args)


def test_other_input_sizes_and_channels_build():
    for name in LOWBIT_MODELS:
        spec = get_model_spec(name)
        size = max(spec.min_input_size, 16)
        model = create_model(name, in_channels=3, input_size=size, num_classes=4).eval()
        assert model(torch.rand(2, 3, size, size)).shape == (2, 4)
    with pytest.raises(InvalidInputError):
        create_model("binary_mlp")(torch.rand(2, 3, 28, 28))


@pytest.mark.slow
def test_ternary_lenet5_learns_mnist5k():
    from edgekit.calibration import load_dataset
    from edgekit.training import TrainConfig, evaluate, train

    data = load_dataset("mnist5k", split="train").subset(2000)
    test = load_dataset("mnist5k", split="test")
    model = create_model("ternary_lenet5")
    train(model, data, TrainConfig(epochs=2, batch_size=64, lr=3e-3, progress=False))
    accuracy = evaluate(model, test)["accuracy"]
    assert accuracy > 0.8, accuracy  # chance is 0.1


def test_materialized_variant_is_the_export_architecture():
    model = create_model("ttq_resnet8", materialized=True)
    assert model.edgekit_config["materialized"] is True
    assert not lowbit_layers(model)
    assert create_model(**model.edgekit_config).state_dict().keys() == model.state_dict().keys()
