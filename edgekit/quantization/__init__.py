"""Int8 quantization for a deployment target, one sub-package per backend.

* ``types`` — what every backend shares: the per-target schemes, ``QuantConfig`` and the
  ``QuantizedModel`` subclasses that exporters dispatch on;
* ``qdq`` — nncf fake-quant for TensorRT and onnxruntime (QDQ ONNX);
* ``pt2e`` — PT2E for TFLite (full-integer ``.tflite`` through litert-torch);
* ``quantize`` (``api``) picks the backend from ``QuantConfig.target``;
* ``sensitivity`` — per layer, what its int8 form costs in validation metric and output
  error; ``plan_precision`` — which layers stay float within a ``max_drop`` budget.

Importing this package loads neither torch nor nncf; each backend imports them when used.
"""

from edgekit.quantization.api import quantize
from edgekit.quantization.plan import LayerLatency, PrecisionPlan, plan_precision
from edgekit.quantization.sensitivity import LayerSensitivity, sensitivity
from edgekit.quantization.types import (
    SCHEMES,
    QdqQuantizedModel,
    QuantConfig,
    QuantizedModel,
    QuantScheme,
    TFLiteQuantizedModel,
    scheme_for,
)

__all__ = ["SCHEMES", "LayerLatency", "LayerSensitivity", "PrecisionPlan", "QdqQuantizedModel",
           "QuantConfig", "QuantScheme", "QuantizedModel", "TFLiteQuantizedModel",
           "plan_precision", "quantize", "scheme_for", "sensitivity"]
