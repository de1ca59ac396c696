"""QAT fine-tuning, shared by every backend: the training loop through the fake-quant ops."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.quantization.types import QuantConfig

if TYPE_CHECKING:
    import torch


def fine_tune(qmodel: Any, train_data: Any, val_data: Any, config: QuantConfig, *,
              teacher: torch.nn.Module) -> Any:
    """QAT epochs through the fake-quant ops, distilled from ``teacher`` (the fp32 model)
    when ``config.distill`` > 0; with ``val_data`` the best of the calibrated start and each
    epoch is kept, so QAT never validates worse than its own PTQ."""
    from edgekit.training import TrainConfig, train

    train_config = TrainConfig(
        epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=config.seed,
        progress=config.progress, keep_start=True, distill=config.distill,
    )
    return train(qmodel, train_data, train_config, val_data=val_data,
                 teacher=teacher if config.distill > 0 else None, checkpoint=config.checkpoint)
