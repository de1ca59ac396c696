"""The options of one training run (``TrainConfig``) and what it reports (``TrainResult``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgekit.core.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

Hook = Callable[["torch.nn.Module"], None]
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "none")
CLASS_WEIGHTS = ("auto", "enet")  # or None
ENET_C = 1.02  # ENet's c in w = 1 / ln(c + p) (Paszke et al. 2016)


@dataclass
class TrainConfig:
    """Options of one training run; validated on construction.

    ``schedule``: "cosine" anneals the learning rate to 0 over all steps; "step" divides it
    by 10 after each third of the epochs; "none" keeps it. ``patience``: stop once the
    validation metric has not improved for that many epochs (needs ``val_data``).
    ``keep_start``: with ``val_data``, the weights before the first epoch are a candidate for
    the best too (epoch 0), so fine-tuning never returns a model that validates worse than
    the one it started from (QAT after calibration).
    ``distill``: with a ``teacher`` given to ``train``, the loss is ``(1 - distill)`` times
    the task loss plus ``distill`` times ``temperature**2`` times the KL divergence from the
    teacher's softened outputs (Hinton et al. 2015; per pixel for segmentation).
    ``QuantConfig.distill`` uses it with the fp32 model as the teacher of its int8 copy.
    Under torchrun (``edgekit.training.distributed``) ``batch_size`` is the global batch,
    split over the processes; ``sync_batchnorm`` computes BatchNorm statistics over all of
    them (SyncBatchNorm) instead of each process's share.
    ``class_weights`` weighs the built-in cross-entropy per class: "enet" uses ENet's
    ``w_c = 1 / ln(1.02 + p_c)`` with ``p_c`` the share of class ``c`` among the training
    labels (pixels, for segmentation; see ``enet_class_weights``), the scheme ESPNet trains
    with; None weighs every class the same; "auto" is "enet" for segmentation (where the
    background covers most pixels and unweighted training long predicts it everywhere) and
    None for classification. A custom ``loss_fn`` given to ``train`` weighs classes itself.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "cosine"
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    seed: int = 0
    patience: int | None = None
    progress: bool = True
    label_smoothing: float = 0.0
    keep_start: bool = False
    class_weights: str | None = "auto"
    distill: float = 0.0
    temperature: float = 2.0
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics over all processes

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidInputError(f"epochs and batch_size must be >= 1 "
                                    f"(got {self.epochs}, {self.batch_size})")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise InvalidInputError("need lr > 0, weight_decay >= 0, 0 <= label_smoothing < 1")
        if not 0 <= self.distill <= 1 or not self.temperature > 0:
            raise InvalidInputError(f"need 0 <= distill <= 1 and temperature > 0 (got "
                                    f"{self.distill}, {self.temperature})")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidInputError(f"optimizer must be one of {OPTIMIZERS}, "
                                    f"not {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise InvalidInputError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if self.patience is not None and self.patience < 1:
            raise InvalidInputError(f"patience must be >= 1, got {self.patience}")
        if self.class_weights is not None and (not isinstance(self.class_weights, str)
                                               or self.class_weights not in CLASS_WEIGHTS):
            raise InvalidInputError(f"class_weights must be one of {CLASS_WEIGHTS} or None, "
                                    f"not {self.class_weights!r}")


@dataclass
class TrainResult:
    """Per-epoch ``history`` (loss, lr, seconds, val_<metric>...) and the best epoch."""

    metric: str  # "accuracy" (classification) or "miou" (segmentation)
    history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None  # best validation metric, None without val_data
    start_metric: float | None = None  # validation metric before epoch 1 (keep_start only)
    best_epoch: int | None = None
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    class_weights: list[float] | None = None  # what the built-in loss weighed classes by
