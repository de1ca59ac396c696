"""Per-layer accuracy sensitivity of int8: what each layer costs when it alone is quantized.

The model is calibrated once (PTQ for the target's scheme); then each weight-quantized
conv/linear layer alone is left in float (its weight quantizers, and on onnxruntime its
fusable output quantizer, disabled: ``edgekit.quantization.qdq.layer_switch``) and the
otherwise-int8 model is scored on validation data. No layer is calibrated again, so a
network of L layers costs one calibration and L + 2 passes over the validation samples.

Each row says how much of the metric and of the output error that layer's int8 form is
responsible for (the all-int8 model minus the model with that layer float):

>>> rows = sensitivity(model, val_data, "onnxruntime", calib_data=train_data)
>>> rows[0].layer, rows[0].metric_gain_pp, rows[0].error_reduction
('features.3', 1.6, 0.21)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.core.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from edgekit.calibration import ArrayDataset
    from edgekit.quantization.types import QdqQuantizedModel

SENSITIVITY_TARGETS = ("onnxruntime", "tensorrt")  # keep_float's targets
DEFAULT_SAMPLES = 512  # validation samples scored per pass


@dataclass(frozen=True)
class LayerSensitivity:
    """One layer's share of the int8 model's loss.

    ``metric_gain_pp``: the validation metric (accuracy, mIoU, or top-1 agreement with the
    float model on unlabelled data) with this layer float minus the all-int8 model's, in
    percentage points. ``output_error``: the relative L2 distance of the model's outputs
    from the float model's with this layer float; ``error_reduction``: the all-int8
    model's distance minus that (what leaving the layer float takes away).
    """

    layer: str
    macs: int  # per sample
    metric_gain_pp: float
    output_error: float
    error_reduction: float

    @property
    def harm(self) -> float:
        return self.error_reduction

    @property
    def harm_per_mac(self) -> float:
        return self.error_reduction / max(self.macs, 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer:
    """A validation set, the float model's outputs on it, and how a variant is scored."""

    def __init__(self, float_model: torch.nn.Module, data: Any, *,
                 samples: int = DEFAULT_SAMPLES, seed: int = 0, batch_size: int = 64) -> None:
        from edgekit.calibration.forms import as_dataset

        dataset = as_dataset(data)
        if len(dataset) == 0:
            raise InvalidInputError("sensitivity needs validation data; got an empty set")
        if len(dataset) > samples:
            dataset = dataset.subset(samples, seed=seed)
        self.data: ArrayDataset = dataset.materialized()
        self.batch_size = batch_size
        self.metric_name = ("accuracy" if self.data.task == "classification" else "miou") \
            if self.data.labelled else "top1_agreement"
        self.float_outputs = self._outputs(float_model)
        self.float_classes = self._classes(self.float_outputs)
        self.float_metric = self._metric(self.float_classes)

    def measure(self, model: torch.nn.Module) -> tuple[float, float]:
        """(metric in %, relative L2 output error against the float model) of ``model``."""
        outputs = self._outputs(model)
        error = float(np.linalg.norm(outputs - self.float_outputs)
                      / max(float(np.linalg.norm(self.float_outputs)), 1e-12))
        return self._metric(self._classes(outputs)), error

    def _outputs(self, model: torch.nn.Module) -> np.ndarray:
        from edgekit.training.evaluate import predict

        return predict(model, np.asarray(self.data.x), batch_size=self.batch_size)

    def _classes(self, outputs: np.ndarray) -> np.ndarray:
        from edgekit.training.evaluate import classes_of

        return classes_of(outputs, self.data)

    def _metric(self, classes: np.ndarray) -> float:
        if not self.data.labelled:  # agreement with the float model (its own: 100%)
            return 100.0 * float(np.mean(classes == self.float_classes))
        from edgekit.training.evaluate import score

        return 100.0 * score(classes, self.data)[self.metric_name]


def calibrate_for(model: torch.nn.Module, target: str, calib_data: Any, *,
                  calibration_size: int = 300, seed: int = 0,
                  rounding: str = "nearest", bias_correction: bool = False
                  ) -> QdqQuantizedModel:
    """The target's PTQ model of ``model`` (no layer kept float), for sensitivity and plans."""
    from edgekit.quantization.api import quantize
    from edgekit.quantization.types import QuantConfig

    if target not in SENSITIVITY_TARGETS:
        targets = " and ".join(SENSITIVITY_TARGETS)
        raise InvalidInputError(f"per-layer precision is for the {targets} targets "
                                f"(keep_float), not {target!r}")
    config = QuantConfig(target=target, mode="ptq", calibration_size=calibration_size,
                         seed=seed, rounding=rounding, bias_correction=bias_correction,
                         progress=False)
    return quantize(model, config, calib_data=calib_data)  # type: ignore[return-value]


def sensitivity(
    model: torch.nn.Module,
    data: Any,
    target: str = "onnxruntime",
    *,
    calib_data: Any = None,
    calibration_size: int = 300,
    samples: int = DEFAULT_SAMPLES,
    quantized: QdqQuantizedModel | None = None,
    seed: int = 0,
) -> list[LayerSensitivity]:
    """Per weight-quantized layer of ``model``, the validation metric and output error that
    leaving it alone in float gives back, most harmful first.

    ``data``: validation data in any form edgekit reads (labelled: the task's metric;
    inputs alone: top-1 agreement with ``model``), ``samples`` of it scored.
    ``calib_data``: calibration inputs (default: ``data``). ``quantized``: a PTQ model of
    ``model`` for ``target`` already made (``calibrate_for``), used as it is. Layer names
    are the module paths ``QuantConfig.keep_float`` takes.
    """
    from edgekit.quantization.qdq.layer_switch import LayerSwitch

    if quantized is None:
        quantized = calibrate_for(model, target, calib_data if calib_data is not None
                                  else data, calibration_size=calibration_size, seed=seed)
    scorer = Scorer(model, data, samples=samples, seed=seed)
    switch = LayerSwitch(quantized)
    int8_metric, int8_error = scorer.measure(quantized.model)
    example = _example(scorer)
    from edgekit.models.registry import layer_macs

    macs = layer_macs(quantized.model, example)
    rows = []
    for layer in switch.layers:
        with switch.kept_float([layer]) as mixed:
            metric, error = scorer.measure(mixed)
        rows.append(LayerSensitivity(layer=layer, macs=macs.get(layer, 0),
                                     metric_gain_pp=round(metric - int8_metric, 4),
                                     output_error=round(error, 6),
                                     error_reduction=round(int8_error - error, 6)))
    return sorted(rows, key=lambda r: (-r.metric_gain_pp, -r.error_reduction))


def _example(scorer: Scorer) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.asarray(scorer.data.x[:1], dtype=np.float32))
