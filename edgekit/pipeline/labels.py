"""Data without labels: the fp32 model's own answers stand in for them.

A deployment pipeline often holds photos from the field and a network someone else
trained, but no labelled set. Calibration needs inputs only; QAT then learns from the fp32
model's outputs (distillation), and every score becomes agreement with the fp32 model:
the report says so wherever a figure would otherwise read as accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.core.errors import InvalidInputError

if TYPE_CHECKING:
    from edgekit.pipeline.stages import Context

# what the report calls the scores when the labels are the fp32 model's predictions
AGREEMENT_METRIC = "top-1 agreement with the fp32 model (the data has no labels)"


def label_by_model(ctx: Context, model: Any) -> None:
    """When ``ctx``'s data came without labels, give its splits the fp32 ``model``'s
    predicted classes (the training split only when QAT fine-tunes on it)."""
    if ctx.train.labelled:
        return
    r = ctx.recipe
    if r.train_epochs > 0:
        raise InvalidInputError("the data has no labels: fp32 training needs them; pass the "
                                "trained model (a module, or weights=) with epochs=0 to "
                                "calibrate and fine-tune int8 against its own outputs")
    from edgekit.calibration.forms import inputs_array
    from edgekit.export.verify import torch_outputs
    from edgekit.pipeline.stages import test_outputs

    ctx.test = _labelled(ctx.test, test_outputs(ctx, "fp32", model))
    ctx.val = _labelled(ctx.val, torch_outputs(model, inputs_array(ctx.val)))
    if r.precision == "int8" and r.qat_epochs > 0:
        ctx.train = _labelled(ctx.train, torch_outputs(model, inputs_array(ctx.train)))
    ctx.task = ctx.test.task
    ctx.metrics["labels"] = AGREEMENT_METRIC
    ctx.notes.append("the data has no labels: the fp32 model's predictions stand in for "
                     "them, so accuracy figures are top-1 agreement with the fp32 model "
                     "(pixel agreement for segmentation) and QAT is distilled from it")
    ctx.log(f"      no labels in {r.data}: scores are agreement with the fp32 model")


def _labelled(data: Any, outputs: np.ndarray) -> Any:
    if outputs.ndim == 4 and outputs.shape[-2:] != tuple(data.x.shape[-2:]):
        raise InvalidInputError(f"unlabelled segmentation data needs the model's outputs at "
                                f"the input size {tuple(data.x.shape[-2:])}, got "
                                f"{outputs.shape[-2:]}")
    return data.with_labels(outputs.argmax(1), num_classes=int(outputs.shape[1]))
