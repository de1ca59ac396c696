"""QAT fine-tuning, shared by every backend: the training loop through the fake-quant ops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.quantization.types import QuantConfig

if TYPE_CHECKING:
    import torch

    from edgekit.training.config import Hook


def fine_tune(qmodel: Any, train_data: Any, val_data: Any, config: QuantConfig, *,
              teacher: torch.nn.Module, after_step: Hook | None = None) -> Any:
    """QAT epochs through the fake-quant ops, distilled from ``teacher`` (the fp32 model)
    when ``config.distill`` > 0; with ``val_data`` the best of the calibrated start and each
    epoch is kept, so QAT never validates worse than its own PTQ. ``after_step(qmodel)`` runs
    before the first step (the calibrated start is a candidate too) and after every step."""
    from edgekit.training import TrainConfig, train

    train_config = TrainConfig(
        epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=config.seed,
        progress=config.progress, keep_start=True, distill=config.distill,
    )
    if after_step is not None:
        after_step(qmodel)
    return train(qmodel, train_data, train_config, val_data=val_data, after_step=after_step,
                 teacher=teacher if config.distill > 0 else None, checkpoint=config.checkpoint)
