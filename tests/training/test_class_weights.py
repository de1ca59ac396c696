"""Class-weighted cross-entropy: ENet's weights, the TrainConfig option, its use in train()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgekit.calibration import load_dataset
from edgekit.core.errors import InvalidInputError
from edgekit.training import TrainConfig, class_weights_for, enet_class_weights, train


def test_enet_weights_of_known_frequencies():
    # shares 0.5, 0.3, 0.2 and 0 -> 1 / ln(1.02 + share), worked out by hand
    labels = np.repeat(np.arange(3), [50, 30, 20]).reshape(10, 10)
    w = enet_class_weights(labels, num_classes=4)
    assert w.dtype == np.float32 and w.shape == (4,)
    assert w == pytest.approx([2.388286, 3.601894, 5.028895, 50.49835], rel=1e-5)
    # rarer classes weigh more (shares fall along the classes here); a class covering all
    # labels weighs 1/ln(1 + c), an absent one 1/ln(c)
    assert list(w) == sorted(w)
    assert enet_class_weights(np.zeros(7, dtype=np.int64), 2) == pytest.approx(
        [1 / np.log(2.02), 1 / np.log(1.02)], rel=1e-6)
    # another c: ESPNet's own loader uses 1.10
    assert enet_class_weights(np.array([0, 1, 1, 1]), 2, c=1.10) == pytest.approx(
        [1 / np.log(1.35), 1 / np.log(1.85)], rel=1e-6)


def test_enet_weights_on_mnist5k_seg_favour_the_digits():
    ds = load_dataset("mnist5k_seg", input_size=32).subset(200)
    w = enet_class_weights(ds.y, ds.num_classes)
    share = np.bincount(ds.y.ravel(), minlength=11) / ds.y.size
    assert share[0] > 0.85  # background dominates
    assert w[0] == pytest.approx(1 / np.log(1.02 + share[0]), rel=1e-6)
    assert w[0] < 1.6 and (w[1:] > 20).all()


@pytest.mark.parametrize("labels, num_classes, kw, match", [
    (np.array([0, 1, 2]), 2, {}, r"in \[0, 1\], found 0..2"),
    (np.array([-1, 0]), 3, {}, r"found -1..0"),
    (np.array([0.0, 1.0]), 2, {}, "must be integers"),
    (np.array([], dtype=np.int64), 2, {}, "no labels"),
    (np.array([0, 1]), 0, {}, "num_classes must be a positive integer"),
    (np.array([0, 1]), True, {}, "num_classes must be a positive integer"),
    (np.array([0, 1]), 2, {"c": 1.0}, "c must be a number > 1"),
    (np.array([0, 1]), 2, {"c": float("nan")}, "c must be a number > 1"),
    (np.array([0, 1]), 2, {"c": "1.02"}, "c must be a number > 1"),
])
def test_enet_weights_refuse_bad_input(labels, num_classes, kw, match):
    with pytest.raises(InvalidInputError, match=match):
        enet_class_weights(labels, num_classes, **kw)


def test_class_weights_option_is_validated():
    assert TrainConfig().class_weights == "auto"
    for ok in ("auto", "enet", None):
        assert TrainConfig(class_weights=ok).class_weights == ok
    for bad in ("balanced", "ENET", "", 1.02, [1.0, 2.0], np.ones(2)):
        with pytest.raises(InvalidInputError, match="class_weights must be one of"):
            TrainConfig(class_weights=bad)


def _seg(n=8, size=32):
    return load_dataset("mnist5k_seg", input_size=size).subset(n)


def test_auto_weighs_segmentation_but_not_classification():
    seg = _seg()
    digits = load_dataset("mnist5k").subset(50)
    want = enet_class_weights(seg.y, 11)
    assert np.array_equal(class_weights_for(TrainConfig(), seg), want)
    assert np.array_equal(class_weights_for(TrainConfig(class_weights="enet"), seg), want)
    assert class_weights_for(TrainConfig(class_weights=None), seg) is None
    assert class_weights_for(TrainConfig(), digits) is None
    assert class_weights_for(TrainConfig(class_weights="enet"), digits) == pytest.approx(
        enet_class_weights(digits.y, 10))


def test_training_uses_the_weighted_loss_on_segmentation_data():
    """One full-batch step: the reported loss is the weighted cross-entropy of the start."""
    data = _seg(n=8)
    losses = {}
    for scheme in ("auto", None):
        torch.manual_seed(0)
        model = nn.Conv2d(1, 11, 3, padding=1)  # no batch norm: train and eval agree
        with torch.no_grad():
            logits = model(torch.from_numpy(data.x))
        cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-3, class_weights=scheme,
                          progress=False)
        result = train(model, data, cfg)
        losses[scheme] = result.history[0]["loss"]
        weights = result.class_weights
        target = torch.from_numpy(data.y)
        want = F.cross_entropy(logits, target, weight=None if weights is None
                               else torch.tensor(weights))
        assert losses[scheme] == pytest.approx(want.item(), rel=1e-5)
    assert result.class_weights is None
    # the weighted loss is a different objective, not the plain one relabelled
    assert abs(losses["auto"] - losses[None]) > 1e-3


def test_explicit_class_weights_conflict_with_a_custom_loss():
    data = _seg(n=4)
    model = nn.Conv2d(1, 11, 1)
    with pytest.raises(InvalidInputError, match="custom loss_fn must weigh classes itself"):
        train(model, data, TrainConfig(epochs=1, class_weights="enet", progress=False),
              loss_fn=F.cross_entropy)
    # "auto" (the default) leaves a custom loss alone
    result = train(model, data, TrainConfig(epochs=1, progress=False), loss_fn=F.cross_entropy)
    assert result.class_weights is None

