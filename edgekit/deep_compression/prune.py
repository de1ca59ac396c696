"""Magnitude pruning with retraining (Deep Compression, step 1).

Two ways to pick what to remove, both per weight tensor of every Conv/Linear layer:

* ``mode="std"`` — the paper's rule: drop ``|w| <= quality × std(w)`` of the layer's dense
  weights. Quality is raised in ``steps`` equal increments with retraining in between
  (iterative pruning); masks only ever shrink.
* ``mode="global"`` / ``"local"`` — drop a ``ratio`` of weights, ranked over all layers
  together or within each layer. These masks come from ``nncf.prune``
  (``UNSTRUCTURED_MAGNITUDE_GLOBAL/LOCAL``) run on a copy of the model; ``backend="torch"``
  computes the same ranking without nncf.

nncf's paper-less ratio modes fit; the std threshold does not exist there, and nncf masks
live in forward hooks (the weights stay non-zero), so retraining and weight sharing use our
own explicit masks: gradients of pruned weights are zeroed before each optimizer step and
the masks re-applied after it (:class:`MaskEnforcer`, hooks of ``edgekit.training.train``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

MODES = ("std", "global", "local")


@dataclass
class PruneConfig:
    mode: str = "std"
    quality: float = 1.0  # std mode: threshold = quality × std(layer weights)
    layer_quality: dict[str, float] = field(default_factory=dict)  # per-layer override
    ratio: float = 0.9  # global/local modes: fraction of weights removed
    steps: int = 3  # iterative pruning: thresholds ramp up over this many rounds
    retrain_epochs: int = 2  # per round
    backend: str = "nncf"  # global/local: "nncf" or "torch"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInputError(f"prune mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= self.ratio < 1.0:
            raise InvalidInputError("prune ratio must be in [0, 1)")
        if self.quality < 0 or self.steps < 1 or self.retrain_epochs < 0:
            raise InvalidInputError("quality >= 0, steps >= 1 and retrain_epochs >= 0 required")
        if self.backend not in ("nncf", "torch"):
            raise InvalidInputError("prune backend must be 'nncf' or 'torch'")


@dataclass
class PruneResult:
    masks: dict[str, torch.Tensor]
    density: dict[str, float]  # kept fraction per layer
    history: list[dict[str, Any]]


def prunable_weights(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The weight tensors of Conv and Linear layers, by state-dict name."""
    import torch

    return {f"{name}.weight" if name else "weight": m.weight for name, m in model.named_modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Conv1d | torch.nn.Linear)}


def std_masks(model: torch.nn.Module, quality: float | dict[str, float],
              reference: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Keep ``|w| > q × std`` per layer; ``reference`` supplies the std (dense weights)."""
    masks = {}
    for name, w in prunable_weights(model).items():
        q = quality.get(name, 0.0) if isinstance(quality, dict) else quality
        std = (reference[name] if reference else w).detach().float().std()
        masks[name] = w.detach().abs() > q * std
    return masks


def ratio_masks(model: torch.nn.Module, ratio: float, *, scope: str = "global",
                backend: str = "nncf", example_input: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
    """Remove ``ratio`` of the smallest-magnitude weights, over all layers or per layer."""
    import torch

    weights = prunable_weights(model)
    if backend == "nncf":
        return _nncf_masks(model, ratio, scope, example_input, set(weights))
    if scope == "local":
        return {n: w.detach().abs() > _kth(w.detach().abs().ravel(), ratio)
                for n, w in weights.items()}
    flat = torch.cat([w.detach().abs().ravel() for w in weights.values()])
    cut = _kth(flat, ratio)
    return {n: w.detach().abs() > cut for n, w in weights.items()}


def _kth(values: torch.Tensor, ratio: float) -> torch.Tensor:
    k = int(ratio * values.numel())
    if k == 0:
        return values.new_tensor(-1.0)
    return values.kthvalue(k).values


def _nncf_masks(model, ratio, scope, example_input, names) -> dict[str, torch.Tensor]:
    import torch

    from edgekit.core.lazy import require

    nncf = require("nncf", purpose="ratio pruning with nncf.prune")
    mode = (nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_GLOBAL if scope == "global"
            else nncf.PruneMode.UNSTRUCTURED_MAGNITUDE_LOCAL)
    if example_input is None:
        raise InvalidInputError("nncf pruning needs an example input")
    work = copy.deepcopy(model).eval()
    pruned = nncf.prune(work, mode, ratio=ratio, examples_inputs=example_input)
    masks = {}
    for key, buf in pruned.named_buffers():
        found = re.search(r"post_hooks\.(.+)__\d+\.\d+\.binary_mask$", key)
        if found and found.group(1).replace(":", ".") in names:
            masks[found.group(1).replace(":", ".")] = buf.detach().clone().to(torch.bool)
    missing = names - set(masks)
    if missing:
        raise InvalidInputError(f"nncf.prune left layers without masks: {sorted(missing)}")
    return masks


def apply_masks(model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
    import torch

    weights = prunable_weights(model)
    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].mul_(mask.to(weights[name].dtype))


class MaskEnforcer:
    """Training hooks that keep pruned weights at exactly zero."""

    def __init__(self, model: torch.nn.Module, masks: dict[str, torch.Tensor]) -> None:
        self.masks = masks
        self.weights = prunable_weights(model)

    def before_step(self, model: torch.nn.Module) -> None:
        for name, mask in self.masks.items():
            grad = self.weights[name].grad
            if grad is not None:
                grad.mul_(mask.to(grad.dtype))

    def after_step(self, model: torch.nn.Module) -> None:
        apply_masks(model, self.masks)


def density(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    return {n: float(m.float().mean()) for n, m in masks.items()}


def prune(model: torch.nn.Module, train_data: Any, config: PruneConfig | None = None, *,
          train_config: Any = None, val_data: Any = None, example_input: Any = None,
          log: Callable[[str], None] | None = None) -> PruneResult:
    """Iteratively prune ``model`` in place and retrain with masks enforced."""
    import dataclasses

    from edgekit.training import TrainConfig, evaluate, train

    cfg = config or PruneConfig()
    base = train_config or TrainConfig(progress=False)
    reference = {n: w.detach().clone() for n, w in prunable_weights(model).items()}
    masks: dict[str, torch.Tensor] = {}
    history = []
    for step in range(1, cfg.steps + 1):
        frac = step / cfg.steps
        if cfg.mode == "std":
            quality = {n: frac * cfg.layer_quality.get(n, cfg.quality) for n in reference}
            new = std_masks(model, quality, reference)
        else:
            new = ratio_masks(model, frac * cfg.ratio, scope=cfg.mode, backend=cfg.backend,
                              example_input=example_input)
        masks = {n: m & masks[n] if n in masks else m for n, m in new.items()}
        apply_masks(model, masks)
        enforcer = MaskEnforcer(model, masks)
        if cfg.retrain_epochs:
            train(model, train_data, dataclasses.replace(base, epochs=cfg.retrain_epochs,
                                                         seed=base.seed + step),
                  val_data=val_data, before_step=enforcer.before_step,
                  after_step=enforcer.after_step)
        record: dict[str, Any] = {"step": step, "density": density(masks)}
        if val_data is not None:
            record["val_accuracy"] = evaluate(model, val_data)["accuracy"]
        history.append(record)
        if log:
            kept = (sum(int(m.sum()) for m in masks.values())
                    / sum(m.numel() for m in masks.values()))
            log(f"prune step {step}/{cfg.steps}: kept {kept:.2%} "
                f"acc {record.get('val_accuracy', float('nan')):.4f}")
    return PruneResult(masks, density(masks), history)


def sensitivity_scan(model: torch.nn.Module, data: Any, *,
                     qualities: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
                     ) -> dict[str, list[dict[str, float]]]:
    """Accuracy when pruning one layer at a time (no retraining), as in the paper's Fig. 6."""
    from edgekit.training import evaluate

    weights = prunable_weights(model)
    saved = {n: w.detach().clone() for n, w in weights.items()}
    scan: dict[str, list[dict[str, float]]] = {}
    try:
        for name in weights:
            rows = []
            for q in qualities:
                mask = std_masks(model, {name: q}, saved)[name]
                apply_masks(model, {name: mask})
                rows.append({"quality": q, "kept": float(mask.float().mean()),
                             "accuracy": evaluate(model, data)["accuracy"]})
                weights[name].data.copy_(saved[name])
            scan[name] = rows
    finally:
        for n, w in weights.items():
            w.data.copy_(saved[n])
    return scan
