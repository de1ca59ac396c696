"""Paired bootstrap of a score difference: point estimate, interval, significance."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.calibration import load_dataset
from edgekit.core.errors import InvalidInputError
from edgekit.training.compare import paired_difference, score


def _labels(n=1000, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def _flip(labels, wrong, k=10):
    """The labels with the samples at ``wrong`` predicted as the next class."""
    pred = labels.copy()
    pred[wrong] = (pred[wrong] + 1) % k
    return pred


def test_identical_predictions_differ_by_exactly_zero():
    y = _labels()
    pred = _flip(y, np.arange(0, 1000, 7))
    d = paired_difference(pred, pred, y, task="classification", num_classes=10)
    assert d.difference == d.low == d.high == 0 and not d.significant


def test_a_few_samples_apart_is_noise_and_many_is_not():
    y = _labels()
    b = _flip(y, np.arange(0, 1000, 20))  # B wrong on 50 samples
    close = _flip(y, np.arange(10, 1000, 20)[:46])  # A wrong on 46 others: +0.4 pp
    far = _flip(y, np.arange(10, 1000, 20)[:10])  # A wrong on 10 others: +4 pp
    near = paired_difference(close, b, y, task="classification", num_classes=10)
    assert near.difference == pytest.approx(0.004)
    assert near.low < 0 < near.high and not near.significant
    # 96 discordant samples: the interval is about +-2 sqrt(96)/1000 around 0.004
    assert near.high - near.low == pytest.approx(4 * np.sqrt(96) / 1000, rel=0.2)
    apart = paired_difference(far, b, y, task="classification", num_classes=10)
    assert apart.difference == pytest.approx(0.04) and apart.significant and apart.low > 0.02
    swapped = paired_difference(b, far, y, task="classification", num_classes=10)
    assert swapped.difference == pytest.approx(-0.04) and swapped.high < 0


def test_score_is_accuracy_for_classification():
    y = _labels()
    assert score(_flip(y, np.arange(0, 1000, 8)), y, task="classification",
                 num_classes=10) == pytest.approx(0.875)


def test_the_interval_is_seeded():
    y = _labels()
    a, b = _flip(y, np.arange(0, 1000, 9)), _flip(y, np.arange(3, 1000, 11))
    first = paired_difference(a, b, y, task="classification", num_classes=10, seed=5)
    again = paired_difference(a, b, y, task="classification", num_classes=10, seed=5)
    assert first == again


def test_segmentation_scores_miou_as_evaluate_does():
    import torch

    from edgekit.training import evaluate

    seg = load_dataset("mnist5k_seg", split="test").subset(40, seed=0)
    k = seg.num_classes
    rng = np.random.default_rng(1)
    noisy = np.where(rng.random(seg.y.shape) < 0.1, rng.integers(0, k, seg.y.shape), seg.y)

    class Fixed(torch.nn.Module):  # replays given predictions as one-hot logits
        def __init__(self, pred):
            super().__init__()
            self.pred = torch.from_numpy(pred)
            self.seen = 0

        def forward(self, x):
            out = torch.nn.functional.one_hot(self.pred[self.seen:self.seen + len(x)], k)
            self.seen += len(x)
            return out.permute(0, 3, 1, 2).float()

    miou = evaluate(Fixed(noisy), seg, batch_size=len(seg))["miou"]
    assert miou < 0.9
    assert score(noisy, seg.y, task="segmentation", num_classes=k) == pytest.approx(miou)
    d = paired_difference(seg.y, noisy, seg.y, task="segmentation", num_classes=k)
    assert d.difference == pytest.approx(1 - miou)
    assert d.significant and d.low > 0


def test_bad_input_is_rejected():
    y = _labels(10)
    with pytest.raises(InvalidInputError, match="share one shape"):
        paired_difference(y[:5], y, y, task="classification", num_classes=10)
    with pytest.raises(InvalidInputError, match="no samples"):
        paired_difference(y[:0], y[:0], y[:0], task="classification", num_classes=10)
    with pytest.raises(InvalidInputError, match="labels must lie"):
        paired_difference(y, y, y + 10, task="classification", num_classes=10)
    with pytest.raises(InvalidInputError, match="task"):
        paired_difference(y, y, y, task="detection", num_classes=10)


def test_1000_classes_cost_memory_by_the_samples_not_the_classes_squared():
    """A confusion matrix per sample took N·k² floats: 6.4 GB for 800 samples of 1,000
    classes, which killed a 4,000-crop ImageNet compress. Classification needs one
    right/wrong per sample."""
    import tracemalloc

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 1000, 800)
    pred = np.where(rng.random(800) < 0.9, labels, (labels + 1) % 1000)
    tracemalloc.start()
    try:
        d = paired_difference(pred, labels, labels, task="classification", num_classes=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d.difference == pytest.approx((pred == labels).mean() - 1)
    assert d.low <= d.difference <= d.high < 0
    assert peak < 64 << 20  # numpy's arrays are traced; the old way needed 12.8 GB
