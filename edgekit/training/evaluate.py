"""Evaluation and inference of a torch model over numpy arrays, in eval mode and batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from edgekit.core.errors import InvalidInputError, first_line
from edgekit.training.compare import accuracy, miou

if TYPE_CHECKING:
    import torch

    from edgekit.calibration import ArrayDataset


def evaluate(model: torch.nn.Module, data: ArrayDataset, batch_size: int = 256
             ) -> dict[str, float]:
    """{"accuracy"} for classification; {"miou", "pixel_accuracy"} for segmentation.

    mIoU averages the IoU of every class that occurs in the labels or the predictions.
    """
    if len(data) == 0:
        raise InvalidInputError(f"{data.name}: cannot evaluate on an empty data set")
    return _scores(((start, logits.argmax(1)) for start, logits
                    in _batched_logits(model, data.x, batch_size, data)), data)


def score(predictions: np.ndarray, data: ArrayDataset) -> dict[str, float]:
    """``evaluate``'s figures from ``predicted_classes``' output (one forward for both)."""
    if len(predictions) != len(data) or len(data) == 0:
        raise InvalidInputError(f"{data.name}: {len(predictions)} predictions for "
                                f"{len(data)} samples")
    return _scores(iter([(0, np.asarray(predictions))]), data)


def _scores(batches: Iterator[tuple[int, np.ndarray]], data: ArrayDataset
            ) -> dict[str, float]:
    """The figures of (first row, predicted classes) batches against ``data``'s labels."""
    if data.task == "classification":
        correct = 0
        for start, pred in batches:
            correct += int((pred == data.y[start:start + len(pred)]).sum())
        return {"accuracy": correct / len(data)}
    k = data.num_classes
    # rows: true class; columns: predicted class, plus one for outputs beyond the data's classes
    confusion = np.zeros((k, k + 1), dtype=np.int64)
    for start, pred in batches:
        labels = data.y[start:start + len(pred)]
        pred = np.minimum(pred, k)
        confusion += np.bincount((labels * (k + 1) + pred).ravel(),
                                 minlength=k * (k + 1)).reshape(k, k + 1)
    return {"miou": float(miou(confusion)), "pixel_accuracy": float(accuracy(confusion))}


def predicted_classes(model: torch.nn.Module, data: ArrayDataset, batch_size: int = 256
                      ) -> np.ndarray:
    """The class ``evaluate`` scores for each sample: (N,), or (N, H, W) for segmentation."""
    return np.concatenate([logits.argmax(1)
                           for _, logits in _batched_logits(model, data.x, batch_size, data)])


def classes_of(outputs: np.ndarray, data: ArrayDataset) -> np.ndarray:
    """``predicted_classes``' answer from the model's raw outputs on ``data.x`` ((N, K), or
    (N, K, h, w) for segmentation, upsampled to the input as ``forward`` does)."""
    outputs = np.asarray(outputs)
    if len(outputs) != len(data):
        raise InvalidInputError(f"{data.name}: {len(outputs)} outputs for {len(data)} samples")
    size = tuple(data.x.shape[-2:])
    if data.task != "segmentation" or outputs.ndim != 4 or outputs.shape[-2:] == size:
        return outputs.argmax(1)
    import torch

    return np.concatenate([_at_input_size(torch.from_numpy(outputs[i:i + 64]), size, data)
                           .argmax(1).numpy() for i in range(0, len(outputs), 64)])


def _at_input_size(out: torch.Tensor, size: tuple[int, ...], data: ArrayDataset
                   ) -> torch.Tensor:
    """Segmentation logits at a coarser resolution, bilinearly upsampled to the input's."""
    if data.task != "segmentation" or out.ndim != 4 or tuple(out.shape[-2:]) == size:
        return out
    import torch.nn.functional as F

    return F.interpolate(out, size=size, mode="bilinear", align_corners=False)


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


def forward(model: torch.nn.Module, xb: torch.Tensor, data: ArrayDataset | None, *,
            checked: bool) -> torch.Tensor:
    """The model's main-head logits, upsampled to the input for segmentation; on the first
    batch (``checked=False``) a shape misfit becomes a clear InvalidInputError."""
    if checked:
        out = model(xb)
    else:
        try:
            out = model(xb)
        except RuntimeError as exc:
            raise InvalidInputError(f"model cannot take inputs of shape {tuple(xb.shape)}: "
                                    f"{first_line(exc)}") from None
    if isinstance(out, (tuple, list)):
        out = out[0]  # main head first (aux heads are for the model's own losses)
    if data is not None:
        out = _at_input_size(out, tuple(xb.shape[-2:]), data)
    if not checked and data is not None:
        want = 2 if data.task == "classification" else 4
        if out.ndim != want or out.shape[1] < data.num_classes:
            raise InvalidInputError(
                f"model output {tuple(out.shape)} does not fit {data.task} data with "
                f"{data.num_classes} classes ({data.name})")
    return out


def device_of(model: torch.nn.Module) -> torch.device:
    """Where the model's first parameter lives (the CPU for a model without parameters)."""
    import torch

    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _batched_logits(model: torch.nn.Module, x: np.ndarray, batch_size: int,
                    data: ArrayDataset | None) -> Iterator[tuple[int, np.ndarray]]:
    import torch

    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    device = device_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
                logits = forward(model, xb.to(device), data, checked=start > 0)
                yield start, logits.float().cpu().numpy()
    finally:
        model.train(was_training)


# labelled classification with this many classes or more (ImageNet-scale) is also scored
# by top-5 accuracy; with ten classes top-5 says little
TOP5_MIN_CLASSES = 100


def top5_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """How often the label is among the top 5 of ``outputs`` (N, classes)."""
    top5 = np.argpartition(outputs, -5, axis=1)[:, -5:]
    return float((top5 == np.asarray(labels)[:, None]).any(axis=1).mean())


def top5_agreement(deployed: np.ndarray, reference: np.ndarray) -> float:
    """How often the reference's top-1 class is among the deployed model's top 5."""
    if deployed.ndim != 2 or deployed.shape[1] < 5:
        return float("nan")
    top5 = np.argpartition(deployed, -5, axis=1)[:, -5:]
    return float((top5 == reference.argmax(1)[:, None]).any(axis=1).mean())
