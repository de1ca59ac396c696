"""Pruning masks and weight sharing on a real LeNet-300-100 trained briefly on mnist5k."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.calibration import load_dataset  # noqa: E402
from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.deep_compression.prune import (  # noqa: E402
    MaskEnforcer,
    PruneConfig,
    prune,
    ratio_masks,
    sensitivity_scan,
    std_masks,
)
from edgekit.deep_compression.share import (  # noqa: E402
    CentroidTrainer,
    ShareConfig,
    finetune_shared,
    share_weights,
)
from edgekit.models import create_model  # noqa: E402
from edgekit.training import TrainConfig, train  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist5k", split="train").subset(600), load_dataset(
        "mnist5k", split="test").subset(300)


def _lenet():
    torch.manual_seed(0)
    return create_model("lenet300_100", num_classes=10, in_channels=1, input_size=28)


def test_std_threshold_follows_the_paper_rule():
    model = _lenet()
    w = model.fc1.weight.detach()
    mask = std_masks(model, 1.0)["fc1.weight"]
    assert torch.equal(mask, w.abs() > w.std())
    # a normal-ish layer keeps about 2*(1 - Phi(1)) = 32% at quality 1
    assert 0.2 < mask.float().mean() < 0.45


def _kept(masks):
    return sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())


def test_ratio_masks_from_nncf_and_torch():
    model = _lenet()
    example = torch.zeros(1, 1, 28, 28)
    ours = ratio_masks(model, 0.8, scope="local", backend="torch")
    theirs = ratio_masks(model, 0.8, scope="local", backend="nncf", example_input=example)
    for name in ours:  # per-layer magnitude ranking: the same weights go
        assert (ours[name] == theirs[name]).float().mean() > 0.999
        assert abs(float(ours[name].float().mean()) - 0.2) < 0.01
    # global: one ranking over all layers (nncf's may normalise per layer; both hit the ratio)
    for backend in ("torch", "nncf"):
        masks = ratio_masks(model, 0.8, scope="global", backend=backend, example_input=example)
        assert abs(_kept(masks) - 0.2) < 0.01


def test_iterative_pruning_keeps_pruned_weights_zero_while_retraining(data):
    train_data, test_data = data
    model = _lenet()
    result = prune(model, train_data, PruneConfig(quality=1.5, steps=2, retrain_epochs=1),
                   train_config=TrainConfig(progress=False), val_data=test_data)
    assert len(result.history) == 2
    for name, mask in result.masks.items():
        weight = dict(model.named_parameters())[name]
        assert torch.all(weight[~mask] == 0)
        assert 0.05 < result.density[name] < 0.3
    # densities only shrink from round to round
    first, last = result.history[0]["density"], result.history[1]["density"]
    assert all(last[n] <= first[n] for n in first)


def test_mask_enforcer_zeroes_gradients_of_pruned_weights(data):
    model = _lenet()
    masks = std_masks(model, 1.0)
    enforcer = MaskEnforcer(model, masks)
    enforcer.after_step(model)
    loss = model(torch.from_numpy(data[0].x[:8])).sum()
    loss.backward()
    enforcer.before_step(model)
    assert torch.all(model.fc1.weight.grad[~masks["fc1.weight"]] == 0)


def test_sensitivity_scan_restores_weights(data):
    model = _lenet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scan = sensitivity_scan(model, data[1], qualities=(0.0, 2.0))
    assert set(scan) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert scan["fc1.weight"][0]["kept"] > scan["fc1.weight"][1]["kept"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_sharing_keeps_zeros_and_uses_at_most_2_pow_bits_values():
    model = _lenet()
    masks = std_masks(model, 1.0)
    MaskEnforcer(model, masks).after_step(model)
    shared = share_weights(model, ShareConfig(fc_bits=4))
    for name, sw in shared.items():
        weight = dict(model.named_parameters())[name].detach().numpy()
        assert sw.codebook.size <= 15
        assert np.array_equal(weight, sw.dense())
        assert np.array_equal(sw.indices == 0, weight == 0)  # zero is nobody's cluster
        assert np.array_equal(weight == 0, ~masks[name].numpy())


def test_centroid_gradient_is_the_sum_of_member_gradients(data):
    model = _lenet()
    shared = share_weights(model, ShareConfig(fc_bits=3))
    trainer = CentroidTrainer(model, shared)
    loss = model(torch.from_numpy(data[0].x[:16])).logsumexp(1).sum()
    loss.backward()
    raw = model.fc2.weight.grad.clone()
    trainer.before_step(model)
    idx = torch.from_numpy(shared["fc2.weight"].indices)
    for j in range(1, shared["fc2.weight"].codebook.size + 1):
        members = idx == j
        expected = raw[members].sum()
        assert torch.allclose(model.fc2.weight.grad[members], expected.expand(int(members.sum())),
                              rtol=1e-4, atol=1e-6)


def test_finetuning_moves_centroids_but_keeps_sharing(data):
    model = _lenet()
    train(model, data[0], TrainConfig(epochs=1, progress=False))
    shared = share_weights(model, ShareConfig(fc_bits=4))
    tuned = finetune_shared(model, shared, data[0], epochs=1,
                            train_config=TrainConfig(lr=1e-3, progress=False))
    for name, sw in tuned.items():
        assert np.array_equal(sw.indices, shared[name].indices)
        weight = dict(model.named_parameters())[name].detach().numpy()
        assert np.array_equal(weight, sw.dense())
    assert not np.allclose(tuned["fc1.weight"].codebook, shared["fc1.weight"].codebook)


def test_bad_configs_are_typed_errors():
    with pytest.raises(InvalidInputError):
        PruneConfig(mode="random")
    with pytest.raises(InvalidInputError):
        ShareConfig(fc_bits=0)
    with pytest.raises(InvalidInputError):
        ShareConfig(init="kmeans++")
