"""Trained quantization / weight sharing (Deep Compression, step 2).

Each Conv/Linear weight tensor gets its own 1-D k-means codebook of ``2**bits - 1``
centroids; index 0 is reserved for zero, so pruned weights stay exactly zero and are no
cluster's member. Fine-tuning makes each centroid's gradient the sum of its members'
gradients (hook before the optimizer step) and then writes the centroids back into the
weights (hook after it), so the model always holds exactly ``codebook[index]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.core.errors import InvalidInputError
from edgekit.deep_compression.ekz.records import SharedWeights

if TYPE_CHECKING:
    import torch

INITS = ("linear", "density", "forgy")


@dataclass
class ShareConfig:
    conv_bits: int = 8  # the paper's defaults: 8 bits for conv layers
    fc_bits: int = 5  # and 5 bits for fully connected layers
    layer_bits: dict[str, int] = field(default_factory=dict)  # per-layer override by name
    init: str = "linear"  # centroid initialisation: linear (paper's best), density, forgy
    iterations: int = 50
    finetune_epochs: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise InvalidInputError(f"k-means init must be one of {INITS}, got {self.init!r}")
        for bits in (self.conv_bits, self.fc_bits, *self.layer_bits.values()):
            if not 1 <= bits <= 16:
                raise InvalidInputError(f"weight-sharing bits must be 1..16, got {bits}")

    def bits_for(self, name: str, module: Any) -> int:
        import torch

        if name in self.layer_bits:
            return self.layer_bits[name]
        return self.fc_bits if isinstance(module, torch.nn.Linear) else self.conv_bits


def kmeans_1d(values: np.ndarray, k: int, *, init: str = "linear", iterations: int = 50,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster 1-D ``values`` into at most ``k`` centroids; returns (centroids, labels)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    uniq = np.unique(values)
    if uniq.size <= k:  # already shared (e.g. re-packing a fine-tuned model): exact
        return uniq.astype(np.float32), np.searchsorted(uniq, values)
    if init == "linear":
        centroids = np.linspace(values.min(), values.max(), k)
    elif init == "density":
        centroids = np.quantile(values, np.linspace(0, 1, k))
    else:
        centroids = np.sort(np.random.default_rng(seed).choice(uniq, k, replace=False))
    for _ in range(iterations):
        labels = _assign(values, centroids)
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            break
        centroids = np.sort(updated)
    labels = _assign(values, centroids)
    used = np.unique(labels)  # drop empty clusters so no index is wasted
    remap = np.zeros(k, np.int64)
    remap[used] = np.arange(used.size)
    return centroids[used].astype(np.float32), remap[labels]


def _assign(values: np.ndarray, sorted_centroids: np.ndarray) -> np.ndarray:
    mids = (sorted_centroids[1:] + sorted_centroids[:-1]) / 2
    return np.searchsorted(mids, values)


def sharable_layers(model: torch.nn.Module) -> dict[str, Any]:
    from edgekit.deep_compression.prune import prunable_weights

    modules = dict(model.named_modules())
    return {name: modules[name.rsplit(".", 1)[0] if "." in name else ""]
            for name in prunable_weights(model)}


def share_weights(model: torch.nn.Module, config: ShareConfig | None = None
                  ) -> dict[str, SharedWeights]:
    """Cluster every Conv/Linear weight in place; zeros stay zero (index 0)."""
    import torch

    cfg = config or ShareConfig()
    shared = {}
    params = dict(model.named_parameters())
    for name, module in sharable_layers(model).items():
        weight = params[name]
        w = weight.detach().cpu().numpy().astype(np.float32)
        nonzero = w != 0
        bits = cfg.bits_for(name, module)
        centroids, labels = kmeans_1d(w[nonzero], (1 << bits) - 1, init=cfg.init,
                                      iterations=cfg.iterations, seed=cfg.seed)
        indices = np.zeros(w.shape, dtype=np.int64)
        indices[nonzero] = labels + 1
        shared[name] = SharedWeights(indices, centroids)
        with torch.no_grad():
            weight.copy_(torch.from_numpy(shared[name].dense()))
    return shared


class CentroidTrainer:
    """Training hooks: members share their centroid's summed gradient and value."""

    def __init__(self, model: torch.nn.Module, shared: dict[str, SharedWeights]) -> None:
        import torch

        params = dict(model.named_parameters())
        self.layers = {
            name: (params[name], torch.from_numpy(sw.indices.ravel()).to(params[name].device),
                   sw.codebook.size + 1)
            for name, sw in shared.items()
        }

    def before_step(self, model: torch.nn.Module) -> None:
        for weight, index, k in self.layers.values():
            if weight.grad is None:
                continue
            grad = weight.grad.view(-1)
            sums = grad.new_zeros(k).index_add_(0, index, grad)
            sums[0] = 0  # pruned weights get no gradient
            grad.copy_(sums[index])

    def after_step(self, model: torch.nn.Module) -> None:
        import torch

        with torch.no_grad():
            for weight, index, k in self.layers.values():
                flat = weight.view(-1)
                counts = torch.bincount(index, minlength=k).clamp_min(1).to(flat.dtype)
                centroids = flat.new_zeros(k).index_add_(0, index, flat) / counts
                centroids[0] = 0
                flat.copy_(centroids[index])

    def codebooks(self) -> dict[str, SharedWeights]:
        out = {}
        for name, (weight, index, k) in self.layers.items():
            flat = weight.detach().view(-1).cpu()
            table = np.zeros(k, np.float32)
            table[index.cpu().numpy()] = flat.numpy()
            out[name] = SharedWeights(index.cpu().numpy().reshape(tuple(weight.shape)),
                                      table[1:].copy())
        return out


def finetune_shared(model: torch.nn.Module, shared: dict[str, SharedWeights], train_data: Any,
                    *, epochs: int, train_config: Any = None, val_data: Any = None,
                    log: Callable[[str], None] | None = None) -> dict[str, SharedWeights]:
    """Fine-tune the centroids (biases train freely); returns the updated codebooks."""
    import dataclasses

    from edgekit.training import TrainConfig, train

    trainer = CentroidTrainer(model, shared)
    if epochs:
        base = train_config or TrainConfig(progress=False)
        result = train(model, train_data, dataclasses.replace(base, epochs=epochs),
                       val_data=val_data, before_step=trainer.before_step,
                       after_step=trainer.after_step)
        if log:
            log(f"centroid fine-tuning: {result.epochs_run} epochs, best {result.best_metric}")
        trainer.after_step(model)  # a restored best state is shared already; keep it exact
    return trainer.codebooks()
