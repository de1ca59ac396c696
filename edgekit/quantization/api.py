"""``quantize``: int8 QAT/PTQ for a deployment target, handed to that target's backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekit.quantization.pt2e.quantize import quantize_for_tflite
from edgekit.quantization.qdq.quantize import quantize_qdq
from edgekit.quantization.types import QuantConfig, QuantizedModel

if TYPE_CHECKING:
    import torch

    from edgekit.training.config import Hook

# target -> the backend that builds its quantized model (plain data, printable)
BACKENDS = {
    "tensorrt": quantize_qdq,
    "onnxruntime": quantize_qdq,
    "tflite": quantize_for_tflite,
}


def quantize(
    model: torch.nn.Module,
    config: QuantConfig | None = None,
    *,
    train_data: Any = None,
    calib_data: Any = None,
    val_data: Any = None,
    after_step: Hook | None = None,
) -> QuantizedModel:
    """Quantize ``model`` for ``config.target``; QAT fine-tunes on ``train_data``.

    Calibration uses ``calibration_size`` samples of ``calib_data`` (or of ``train_data``).
    The input model is not modified. TensorRT and onnxruntime get nncf's QDQ model
    (``QdqQuantizedModel``), TFLite a PT2E graph (``TFLiteQuantizedModel``).
    ``after_step(qat_model)`` runs after every QAT optimizer step (and once before the
    first): ``edgekit.pruning.mask_enforcer`` keeps 2:4 masks through QAT.
    """
    config = config or QuantConfig()
    backend = BACKENDS[config.target]  # QuantConfig validated the target
    return backend(model, config, train_data=train_data, calib_data=calib_data,
                   val_data=val_data, after_step=after_step)
