"""Is one model's score really above another's on the same test set? A paired bootstrap.

Two int8 files of one fp32 model that score 0.952 and 0.959 on 1,000 digits differ on a
handful of them; whether that is a difference or noise depends on how often the two models
disagree. ``paired_difference`` resamples the test samples (images, for segmentation) with
replacement, scores both models on each resample, and gives the percentile interval of the
score difference. Seeded, so the same predictions give the same interval. Only the samples
the two models disagree on move it; with fewer than ~10 of them the percentile interval is
too narrow (an exact sign test is the tool there).

>>> d = paired_difference(pred_int8, pred_vendor, test.y, task="classification", num_classes=10)
>>> d.significant  # True when the 95% interval excludes 0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.core.errors import InvalidInputError

CHUNK = 250  # resamples scored at once (bounds memory for segmentation)


@dataclass(frozen=True)
class PairedDifference:
    """Score of A minus score of B (accuracy or mIoU) and its bootstrap interval."""

    difference: float
    low: float
    high: float
    level: float
    resamples: int

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float | int]:
        return {"difference": self.difference, "low": self.low, "high": self.high,
                "level": self.level, "resamples": self.resamples}


def paired_difference(pred_a: np.ndarray, pred_b: np.ndarray, labels: np.ndarray, *,
                      task: str, num_classes: int, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> PairedDifference:
    """Accuracy (classification) or mIoU (segmentation) of ``pred_a`` minus ``pred_b``.

    ``pred_*`` and ``labels`` are class indices of the same shape: (N,) or (N, H, W).
    """
    pred_a, pred_b, labels = (np.asarray(a) for a in (pred_a, pred_b, labels))
    if not pred_a.shape == pred_b.shape == labels.shape:
        raise InvalidInputError(f"paired predictions and labels must share one shape; got "
                                f"{pred_a.shape}, {pred_b.shape}, {labels.shape}")
    if resamples < 100 or not 0 < level < 1:
        raise InvalidInputError("need resamples >= 100 and 0 < level < 1")
    metric = _metric(task)
    per_sample = [_per_sample(p, labels, num_classes, task) for p in (pred_a, pred_b)]
    n = len(labels)
    difference = float(metric(per_sample[0].sum(0)) - metric(per_sample[1].sum(0)))
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        stop = min(start + CHUNK, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        weights = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
        # (resamples, N) x (N, ...): each resample's counts (right/total, or its confusion)
        diffs[start:stop] = (metric(np.tensordot(weights, per_sample[0], axes=1))
                             - metric(np.tensordot(weights, per_sample[1], axes=1)))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return PairedDifference(difference, float(low), float(high), level, resamples)


def score(pred: np.ndarray, labels: np.ndarray, *, task: str, num_classes: int) -> float:
    """Accuracy (classification) or mIoU (segmentation) of class indices ``pred``."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape:
        raise InvalidInputError(f"predictions {pred.shape} and labels {labels.shape} differ")
    metric = _metric(task)
    return float(metric(_per_sample(pred, labels, num_classes, task).sum(0)))


def miou(confusion: np.ndarray) -> np.ndarray:
    """Mean IoU of confusion matrices (..., k, k + 1): rows are true classes, the last
    column counts predictions outside them; averaged over the classes present in the
    labels or the predictions."""
    k = confusion.shape[-2]
    hits = np.diagonal(confusion[..., :k], axis1=-2, axis2=-1)
    union = confusion.sum(-1) + confusion[..., :k].sum(-2) - hits
    present = union > 0
    iou = np.where(present, hits / np.maximum(union, 1), 0.0)
    return iou.sum(-1) / present.sum(-1)


def accuracy(confusion: np.ndarray) -> np.ndarray:
    """Share of correct predictions of confusion matrices (..., k, k + 1)."""
    k = confusion.shape[-2]
    return np.trace(confusion[..., :k], axis1=-2, axis2=-1) / confusion.sum((-2, -1))


def _metric(task: str):
    """The score of summed per-sample counts (``_per_sample``)."""
    if task not in ("classification", "segmentation"):
        raise InvalidInputError(f"task must be classification or segmentation, not {task!r}")
    return _share_right if task == "classification" else miou


def _share_right(counts: np.ndarray) -> np.ndarray:
    """Accuracy of (..., 2) counts: (right, total)."""
    return counts[..., 0] / counts[..., 1]


def _per_sample(pred: np.ndarray, labels: np.ndarray, k: int, task: str) -> np.ndarray:
    """What each sample adds to the score's counts: (N, 2) right/total for classification
    (a confusion matrix per sample would take N·k² floats: 6 GB for 800 samples of 1,000
    classes), (N, k, k + 1) confusion matrices for segmentation (mIoU needs them)."""
    if task != "classification":
        return _confusions(pred, labels, k)
    _check_range(pred, labels, k)
    right = (pred.reshape(len(pred), -1) == labels.reshape(len(labels), -1)).sum(1)
    return np.stack([right, np.full(len(labels), labels[0].size)], 1).astype(float)


def _check_range(pred: np.ndarray, labels: np.ndarray, k: int) -> None:
    if labels.ndim == 0 or not len(labels):
        raise InvalidInputError("no samples to score")
    if labels.min() < 0 or labels.max() >= k or pred.min() < 0:
        raise InvalidInputError(f"labels must lie in [0, {k}) and predictions be >= 0")


def _confusions(pred: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """One confusion matrix (k, k + 1) per sample: (N, k, k + 1)."""
    _check_range(pred, labels, k)
    n = len(labels)
    cells = labels.reshape(n, -1) * (k + 1) + np.minimum(pred, k).reshape(n, -1)
    flat = cells + (np.arange(n) * k * (k + 1))[:, None]
    counts = np.bincount(flat.ravel(), minlength=n * k * (k + 1))
    return counts.reshape(n, k, k + 1).astype(float)
