"""The training losses: class-weighted cross-entropy (ENet's weights) and distillation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgekit.core.errors import InvalidInputError
from edgekit.training.config import ENET_C, TrainConfig
from edgekit.training.evaluate import forward

if TYPE_CHECKING:
    import torch

    from edgekit.calibration import ArrayDataset

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def class_weights_for(config: TrainConfig, data: ArrayDataset) -> np.ndarray | None:
    """The per-class loss weights ``config.class_weights`` asks for on ``data`` (or None)."""
    scheme = config.class_weights
    if scheme == "auto":
        scheme = "enet" if data.task == "segmentation" else None
    if scheme is None:
        return None
    return enet_class_weights(data.y, data.num_classes)


def enet_class_weights(labels: np.ndarray, num_classes: int, c: float = ENET_C) -> np.ndarray:
    """ENet's class weights ``1 / ln(c + p)``, ``p`` each class's share of all ``labels``.

    ``labels``: integer class labels of any shape (per image or per pixel). A class that
    never occurs gets the largest weight, ``1 / ln(c)`` (50.5 at c = 1.02); one covering
    everything ``1 / ln(1 + c)`` (1.42); so the weights stay bounded however rare a class
    is (Paszke et al. 2016, "ENet"). Returns float32, one weight per class.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise InvalidInputError(f"num_classes must be a positive integer, got {num_classes!r}")
    if isinstance(c, bool) or not isinstance(c, (int, float, np.floating)) \
            or not math.isfinite(c) or c <= 1:
        raise InvalidInputError(f"c must be a number > 1 (ln(c + p) must stay positive), "
                                f"got {c!r}")
    labels = np.asarray(labels)
    if labels.size == 0:
        raise InvalidInputError("cannot compute class weights from no labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(f"class labels must be integers, got {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise InvalidInputError(f"class labels must lie in [0, {num_classes - 1}], found "
                                f"{low}..{high}")
    share = np.bincount(labels.ravel(), minlength=num_classes) / labels.size
    return (1.0 / np.log(c + share)).astype(np.float32)


def default_loss(label_smoothing: float, weights: np.ndarray | None = None,
                 device: torch.device | None = None) -> LossFn:
    """Cross-entropy, per pixel for (N, C, H, W) logits, weighted per class by ``weights``."""
    import torch
    import torch.nn.functional as F

    weight = None if weights is None else torch.as_tensor(weights, device=device)

    def cross_entropy(logits, targets):
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)

    return cross_entropy


def teacher_logits(teacher: torch.nn.Module, xb: torch.Tensor, data: ArrayDataset,
                   shape: torch.Size) -> torch.Tensor:
    """The teacher's logits for ``xb`` (eval mode, no gradients), checked against ``shape``."""
    import torch

    teacher.eval()
    with torch.no_grad():
        out = forward(teacher, xb, data, checked=True)
    if out.shape != shape:
        raise InvalidInputError(f"the teacher's output {tuple(out.shape)} does not match the "
                                f"model's {tuple(shape)}")
    return out


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """T² · KL(teacher ‖ student) over the class axis (dim 1), averaged over the rest."""
    import torch.nn.functional as F

    log_p_student = F.log_softmax(student / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    return temperature ** 2 * kl.mean()
