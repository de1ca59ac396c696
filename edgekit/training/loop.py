"""A plain, seeded training loop over numpy arrays, with hooks for compression retraining.

``train(model, data, TrainConfig(...), val_data=..., before_step=..., after_step=...)``:
``before_step(model)`` runs after ``backward()`` and before ``optimizer.step()`` (weight
sharing rewrites gradients there); ``after_step(model)`` runs after the step (pruning
re-applies its masks there). Batches are sliced from the arrays directly — no DataLoader,
which is simpler and faster for small in-memory sets on a CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import edgekit.training.distributed as distributed
import edgekit.training.epoch_state as epoch_state
from edgekit.core.console import console
from edgekit.core.errors import InvalidInputError
from edgekit.training.config import Hook, TrainConfig, TrainResult
from edgekit.training.evaluate import device_of, evaluate, forward
from edgekit.training.losses import (
    LossFn,
    class_weights_for,
    default_loss,
    distillation_loss,
    teacher_logits,
)

if TYPE_CHECKING:
    import torch

    from edgekit.calibration import ArrayDataset


@dataclass
class _Run:
    """What every optimisation step of one ``train`` call uses."""

    model: torch.nn.Module
    net: torch.nn.Module  # what the batches go through: the model, or its DDP wrapper
    data: ArrayDataset
    cfg: TrainConfig
    batch: int  # this process's samples per step (the global batch on one process)
    device: torch.device
    loss_fn: LossFn
    teacher: torch.nn.Module | None
    before_step: Hook | None
    after_step: Hook | None
    optimizer: Any
    scheduler: Any
    steps_per_epoch: int
    bar: Any


def train(model: torch.nn.Module, train_data: ArrayDataset, config: TrainConfig | None = None,
          *, val_data: ArrayDataset | None = None, before_step: Hook | None = None,
          after_step: Hook | None = None, loss_fn: LossFn | None = None,
          teacher: torch.nn.Module | None = None,
          checkpoint: str | Path | None = None) -> TrainResult:
    """Train ``model`` in place; with ``val_data`` the best epoch's weights are restored.

    ``teacher`` (with ``config.distill`` > 0) is run in eval mode on every batch and never
    trained. ``checkpoint``: a file written after every epoch; when it already holds this
    run's state (same config, data size and parameters), training continues after its last
    epoch and ends as the uninterrupted run would have (``edgekit.training.epoch_state``)."""
    import torch

    cfg = config or TrainConfig()
    _check_inputs(cfg, train_data, val_data, teacher)
    metric = "accuracy" if train_data.task == "classification" else "miou"
    device = device_of(model)
    weights = None
    if loss_fn is None:
        weights = class_weights_for(cfg, train_data)
        loss_fn = default_loss(cfg.label_smoothing, weights, device)
    elif cfg.class_weights not in ("auto", None):
        raise InvalidInputError(f"class_weights={cfg.class_weights!r} weighs the built-in "
                                f"loss; a custom loss_fn must weigh classes itself (pass "
                                f"class_weights=None)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n = len(train_data)
    mine, batch = distributed.shard(np.arange(n), cfg.batch_size)  # this process's share
    local_n = len(mine)
    steps_per_epoch = math.ceil(local_n / batch)
    if local_n % batch == 1 and local_n > 1:
        steps_per_epoch -= 1  # a lone last sample would break BatchNorm in train mode
    optimizer, scheduler = _optimizer_and_schedule(model, cfg, steps_per_epoch)
    result = TrainResult(metric=metric,
                         class_weights=None if weights is None else weights.tolist())
    best_state: dict[str, Any] | None = None
    stale, first_epoch = 0, 1
    show = cfg.progress and distributed.is_main()  # under torchrun, rank 0 speaks
    key = epoch_state.fingerprint(cfg, model, n) if checkpoint is not None else ""
    saved = epoch_state.load(checkpoint, key) if checkpoint is not None else None
    if saved is not None:
        best_state, stale = epoch_state.restore(saved, model=model, optimizer=optimizer,
                                                scheduler=scheduler, rng=rng, result=result)
        first_epoch = saved["epoch"] + 1
        if show:
            print(f"resuming after epoch {saved['epoch']}/{cfg.epochs} from {checkpoint}",
                  file=console(), flush=True)
    elif val_data is not None and cfg.keep_start:
        result.best_metric = evaluate(model, val_data, batch_size=max(cfg.batch_size, 256))[metric]
        result.start_metric, result.best_epoch = result.best_metric, 0
        best_state = _snapshot(model)
    net = distributed.wrap(model, sync_batchnorm=cfg.sync_batchnorm)
    run = _Run(model, net, train_data, cfg, batch, device, loss_fn, teacher, before_step,
               after_step, optimizer, scheduler, steps_per_epoch,
               _progress_bar(cfg, steps_per_epoch) if show else None)
    start = time.perf_counter()
    for epoch in range(first_epoch, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order, _ = distributed.shard(rng.permutation(n), cfg.batch_size)
        lr_now = optimizer.param_groups[0]["lr"]
        total_loss, seen = _train_epoch(run, epoch, order)
        distributed.sync_buffers(model)  # BatchNorm statistics: rank 0's on every rank
        record: dict[str, float] = {
            "epoch": epoch, "loss": distributed.mean_over_ranks(total_loss / max(seen, 1)),
            "lr": lr_now}
        state = None if val_data is None else _validate(model, val_data, cfg, result, epoch,
                                                        record)
        if state is not None:
            best_state = state
        record["seconds"] = time.perf_counter() - epoch_start
        result.history.append(record)
        result.epochs_run = epoch
        if show:
            _report_epoch(record, cfg.epochs, run.bar)
        stale = 0 if state is not None else stale + 1
        if checkpoint is not None and distributed.is_main():
            epoch_state.save(checkpoint, key=key, epoch=epoch, model=model, optimizer=optimizer,
                             scheduler=scheduler, rng=rng, best_state=best_state, result=result,
                             stale=stale)
        if cfg.patience is not None and stale >= cfg.patience:
            result.stopped_early = epoch < cfg.epochs
            break
    if run.bar is not None:
        run.bar.close()
    if cfg.sync_batchnorm:
        distributed.plain_batchnorm(model)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def _check_inputs(cfg: TrainConfig, train_data: ArrayDataset, val_data: ArrayDataset | None,
                  teacher: torch.nn.Module | None) -> None:
    if (teacher is None) != (cfg.distill == 0):
        given = "no teacher" if teacher is None else "a teacher"
        raise InvalidInputError(f"distillation needs both a teacher and TrainConfig.distill "
                                f"> 0; got {given} and distill={cfg.distill}")
    if cfg.patience is not None and val_data is None:
        raise InvalidInputError("early stopping (patience) needs val_data")
    if val_data is not None and val_data.task != train_data.task:
        raise InvalidInputError(f"val_data is {val_data.task} but train_data is "
                                f"{train_data.task}")


def _train_epoch(run: _Run, epoch: int, order: np.ndarray) -> tuple[float, int]:
    """One pass over ``order``; returns the summed per-sample loss and the samples seen."""
    import torch

    cfg, model, data, bar = run.cfg, run.model, run.data, run.bar
    total_loss, seen = 0.0, 0
    if bar is not None:
        bar.reset()
        bar.set_description(f"epoch {epoch}/{cfg.epochs}")
    for step in range(run.steps_per_epoch):
        idx = order[step * run.batch:(step + 1) * run.batch]
        xb = torch.from_numpy(data.x[idx]).to(run.device)
        yb = torch.from_numpy(data.y[idx]).to(run.device)
        logits = forward(run.net, xb, data, checked=epoch > 1 or step > 0)
        loss = run.loss_fn(logits, yb)
        if run.teacher is not None:
            loss = (1 - cfg.distill) * loss + cfg.distill * distillation_loss(
                logits, teacher_logits(run.teacher, xb, data, logits.shape), cfg.temperature)
        if not torch.isfinite(loss):
            raise InvalidInputError(f"training diverged: loss is {loss.item()} at epoch "
                                    f"{epoch}, step {step + 1}; lower the learning rate")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if run.before_step is not None:
            run.before_step(model)
        run.optimizer.step()
        run.scheduler.step()
        if run.after_step is not None:
            run.after_step(model)
        total_loss += loss.item() * len(idx)
        seen += len(idx)
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", refresh=False)
    return total_loss, seen


def _validate(model: torch.nn.Module, val_data: ArrayDataset, cfg: TrainConfig,
              result: TrainResult, epoch: int, record: dict[str, float]
              ) -> dict[str, Any] | None:
    """Score the epoch into ``record``; a snapshot of the weights when it is the best yet."""
    scores = evaluate(model, val_data, batch_size=max(cfg.batch_size, 256))
    record.update({f"val_{k}": v for k, v in scores.items()})
    if result.best_metric is None or scores[result.metric] > result.best_metric:
        result.best_metric, result.best_epoch = scores[result.metric], epoch
        return _snapshot(model)
    return None


def _optimizer_and_schedule(model: torch.nn.Module, cfg: TrainConfig,
                            steps_per_epoch: int) -> tuple[Any, Any]:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InvalidInputError("model has no trainable parameters")
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
    else:
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        optimizer = cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_factor(cfg.schedule, cfg.epochs, steps_per_epoch))
    return optimizer, scheduler


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


def _progress_bar(cfg: TrainConfig, total: int) -> Any:
    if not (cfg.progress and console().isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, leave=False, unit="batch", file=console())


def _report_epoch(record: dict[str, float], epochs: int, bar: Any) -> None:
    parts = [f"epoch {int(record['epoch'])}/{epochs}", f"loss {record['loss']:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_")]
    parts.append(f"{record['seconds']:.1f}s")
    line = "  ".join(parts)
    if bar is not None:
        bar.write(line, file=console())
    else:
        print(line, file=console(), flush=True)
