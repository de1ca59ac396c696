"""A plain, seeded training loop over numpy arrays, with hooks for compression retraining.

``train(model, data, TrainConfig(...), val_data=..., before_step=..., after_step=...)``:
``before_step(model)`` runs after ``backward()`` and before ``optimizer.step()`` (weight
sharing rewrites gradients there); ``after_step(model)`` runs after the step (pruning
re-applies its masks there). Batches are sliced from the arrays directly — no DataLoader,
which is simpler and faster for small in-memory sets on a CPU.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.compare import accuracy, miou
from edgekit.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from edgekit.calibration import ArrayDataset

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


def train(model: torch.nn.Module, train_data: ArrayDataset, config: TrainConfig | None = None,
          *, val_data: ArrayDataset | None = None, before_step: Hook | None = None,
          after_step: Hook | None = None,
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          teacher: torch.nn.Module | None = None) -> TrainResult:
    """Train ``model`` in place; with ``val_data`` the best epoch's weights are restored.

    ``teacher`` (with ``config.distill`` > 0) is run in eval mode on every batch and never
    trained."""
    import torch

    cfg = config or TrainConfig()
    if (teacher is None) != (cfg.distill == 0):
        given = "no teacher" if teacher is None else "a teacher"
        raise InvalidInputError(f"distillation needs both a teacher and TrainConfig.distill "
                                f"> 0; got {given} and distill={cfg.distill}")
    if cfg.patience is not None and val_data is None:
        raise InvalidInputError("early stopping (patience) needs val_data")
    if val_data is not None and val_data.task != train_data.task:
        raise InvalidInputError(f"val_data is {val_data.task} but train_data is "
                                f"{train_data.task}")
    metric = "accuracy" if train_data.task == "classification" else "miou"
    device = _device_of(model)
    weights = None
    if loss_fn is None:
        weights = class_weights_for(cfg, train_data)
        loss_fn = _default_loss(cfg.label_smoothing, weights, device)
    elif cfg.class_weights not in ("auto", None):
        raise InvalidInputError(f"class_weights={cfg.class_weights!r} weighs the built-in "
                                f"loss; a custom loss_fn must weigh classes itself (pass "
                                f"class_weights=None)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    n = len(train_data)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    if n % cfg.batch_size == 1 and n > 1:
        steps_per_epoch -= 1  # a lone last sample would break BatchNorm in train mode
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InvalidInputError("model has no trainable parameters")
    optimizer = _optimizer(cfg, params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_factor(cfg.schedule, cfg.epochs, steps_per_epoch))

    result = TrainResult(metric=metric,
                         class_weights=None if weights is None else weights.tolist())
    best_state: dict[str, Any] | None = None
    stale = 0
    if val_data is not None and cfg.keep_start:
        result.best_metric = evaluate(model, val_data, batch_size=max(cfg.batch_size, 256))[metric]
        result.start_metric, result.best_epoch = result.best_metric, 0
        best_state = _snapshot(model)
    bar = _progress_bar(cfg, steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = rng.permutation(n)
        total_loss, seen = 0.0, 0
        lr_now = optimizer.param_groups[0]["lr"]
        if bar is not None:
            bar.reset()
            bar.set_description(f"epoch {epoch}/{cfg.epochs}")
        for step in range(steps_per_epoch):
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            xb = torch.from_numpy(train_data.x[idx]).to(device)
            yb = torch.from_numpy(train_data.y[idx]).to(device)
            logits = _forward(model, xb, train_data, checked=epoch > 1 or step > 0)
            loss = loss_fn(logits, yb)
            if teacher is not None:
                loss = (1 - cfg.distill) * loss + cfg.distill * _distillation_loss(
                    logits, _teacher_logits(teacher, xb, train_data, logits.shape),
                    cfg.temperature)
            if not torch.isfinite(loss):
                raise InvalidInputError(f"training diverged: loss is {loss.item()} at epoch "
                                        f"{epoch}, step {step + 1}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if before_step is not None:
                before_step(model)
            optimizer.step()
            scheduler.step()
            if after_step is not None:
                after_step(model)
            total_loss += loss.item() * len(idx)
            seen += len(idx)
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)

        record: dict[str, float] = {"epoch": epoch, "loss": total_loss / max(seen, 1),
                                    "lr": lr_now}
        improved = False
        if val_data is not None:
            scores = evaluate(model, val_data, batch_size=max(cfg.batch_size, 256))
            record.update({f"val_{k}": v for k, v in scores.items()})
            if result.best_metric is None or scores[metric] > result.best_metric:
                result.best_metric, result.best_epoch = scores[metric], epoch
                best_state = _snapshot(model)
                improved = True
        record["seconds"] = time.perf_counter() - epoch_start
        result.history.append(record)
        result.epochs_run = epoch
        if cfg.progress:
            _report_epoch(record, cfg.epochs, bar)
        stale = 0 if improved else stale + 1
        if cfg.patience is not None and stale >= cfg.patience:
            result.stopped_early = epoch < cfg.epochs
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def evaluate(model: torch.nn.Module, data: ArrayDataset, batch_size: int = 256
             ) -> dict[str, float]:
    """{"accuracy"} for classification; {"miou", "pixel_accuracy"} for segmentation.

    mIoU averages the IoU of every class that occurs in the labels or the predictions.
    """
    if len(data) == 0:
        raise InvalidInputError(f"{data.name}: cannot evaluate on an empty data set")
    if data.task == "classification":
        correct = 0
        for start, logits in _batched_logits(model, data.x, batch_size, data):
            labels = data.y[start:start + len(logits)]
            correct += int((logits.argmax(1) == labels).sum())
        return {"accuracy": correct / len(data)}
    k = data.num_classes
    # rows: true class; columns: predicted class, plus one for outputs beyond the data's classes
    confusion = np.zeros((k, k + 1), dtype=np.int64)
    for start, logits in _batched_logits(model, data.x, batch_size, data):
        labels = data.y[start:start + len(logits)]
        pred = np.minimum(logits.argmax(1), k)
        confusion += np.bincount((labels * (k + 1) + pred).ravel(),
                                 minlength=k * (k + 1)).reshape(k, k + 1)
    return {"miou": float(miou(confusion)), "pixel_accuracy": float(accuracy(confusion))}


def predicted_classes(model: torch.nn.Module, data: ArrayDataset, batch_size: int = 256
                      ) -> np.ndarray:
    """The class ``evaluate`` scores for each sample: (N,), or (N, H, W) for segmentation."""
    return np.concatenate([logits.argmax(1)
                           for _, logits in _batched_logits(model, data.x, batch_size, data)])


def predict(model: torch.nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits (float32) of ``model`` for the float32 images ``x`` (N×C×H×W), in eval mode."""
    x = np.asarray(x)
    if x.dtype != np.float32 or x.ndim != 4:
        raise InvalidInputError(f"predict needs float32 images (N, C, H, W), got {x.dtype} "
                                f"{x.shape}")
    chunks = [logits for _, logits in _batched_logits(model, x, batch_size, None)]
    if not chunks:
        raise InvalidInputError("predict got no images")
    return np.concatenate(chunks)


def _batched_logits(model: torch.nn.Module, x: np.ndarray, batch_size: int,
                    data: ArrayDataset | None) -> Iterator[tuple[int, np.ndarray]]:
    import torch

    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    device = _device_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
                logits = _forward(model, xb.to(device), data, checked=start > 0)
                yield start, logits.float().cpu().numpy()
    finally:
        model.train(was_training)


def _forward(model: torch.nn.Module, xb: torch.Tensor, data: ArrayDataset | None, *,
             checked: bool) -> torch.Tensor:
    """Run the model; on the first batch turn a shape misfit into a clear InvalidInputError."""
    import torch.nn.functional as F

    if checked:
        out = model(xb)
    else:
        try:
            out = model(xb)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidInputError(f"model cannot take inputs of shape {tuple(xb.shape)}: "
                                    f"{first}") from None
    if isinstance(out, (tuple, list)):
        out = out[0]  # main head first (aux heads are for the model's own losses)
    if data is not None and data.task == "segmentation" and out.ndim == 4 \
            and out.shape[-2:] != xb.shape[-2:]:
        out = F.interpolate(out, size=xb.shape[-2:], mode="bilinear", align_corners=False)
    if not checked and data is not None:
        want = 2 if data.task == "classification" else 4
        if out.ndim != want or out.shape[1] < data.num_classes:
            raise InvalidInputError(
                f"model output {tuple(out.shape)} does not fit {data.task} data with "
                f"{data.num_classes} classes ({data.name})")
    return out


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


def _default_loss(label_smoothing: float, weights: np.ndarray | None = None, device=None):
    import torch
    import torch.nn.functional as F

    weight = None if weights is None else torch.as_tensor(weights, device=device)

    def cross_entropy(logits, targets):  # per-pixel for (N, C, H, W) logits
        return F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)

    return cross_entropy


def _teacher_logits(teacher: torch.nn.Module, xb: torch.Tensor, data: ArrayDataset,
                    shape: torch.Size) -> torch.Tensor:
    import torch

    teacher.eval()
    with torch.no_grad():
        out = _forward(teacher, xb, data, checked=True)
    if out.shape != shape:
        raise InvalidInputError(f"the teacher's output {tuple(out.shape)} does not match the "
                                f"model's {tuple(shape)}")
    return out


def _distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """T² · KL(teacher ‖ student) over the class axis (dim 1), averaged over the rest."""
    import torch.nn.functional as F

    log_p_student = F.log_softmax(student / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher / temperature, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    return temperature ** 2 * kl.mean()


def _optimizer(cfg: TrainConfig, params: list[Any]):
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _lr_factor(schedule: str, epochs: int, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, epochs * steps_per_epoch)
    if schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if schedule == "step":
        every = max(1, epochs // 3) * steps_per_epoch
        return lambda step: 0.1 ** (step // every)
    return lambda step: 1.0


def _snapshot(model: torch.nn.Module) -> dict[str, Any]:
    """A deep copy of the state dict, its ``_metadata`` (each module's version) included.

    torchao's observers read a state dict without that metadata as version 1 and reset
    ``eps`` to float32's, so after the best-epoch restore a narrow weight channel got a
    smaller scale in the exported file than QAT had trained with (litert's 2^-12 floor;
    ESPNetv2's gate convs). Quantizer wrappers may also hold non-tensor extra state.
    """
    import copy

    return copy.deepcopy(model.state_dict())


def _device_of(model: torch.nn.Module):
    import torch

    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _progress_bar(cfg: TrainConfig, total: int):
    if not (cfg.progress and sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, leave=False, unit="batch", file=sys.stderr)


def _report_epoch(record: dict[str, float], epochs: int, bar) -> None:
    parts = [f"epoch {int(record['epoch'])}/{epochs}", f"loss {record['loss']:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_")]
    parts.append(f"{record['seconds']:.1f}s")
    line = "  ".join(parts)
    if bar is not None:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)
