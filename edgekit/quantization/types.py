"""The types every quantization backend shares: the per-target schemes, the config, and
the quantized model, one subclass per backend so that exporters dispatch on its type.

Which int8 arithmetic each deployment target runs, as plain data (printable, testable).

The scheme decides how QAT simulates quantization, so that the fake-quant model trains
with the same rounding and ranges the engine will use:

* TensorRT (explicit quantization): signed int8 only, zero point 0 everywhere;
  per-channel (axis 0) symmetric weights, per-tensor symmetric activations; Q/DQ pairs
  on the inputs of Conv/Gemm (and on both inputs of residual adds, so they fuse).
* onnxruntime (CPU): the same QDQ layout, with uint8 activations
  (``edgekit.quantization.qdq.onnx_uint8``) and 7-bit weights, so that its fused x86 kernels
  compute the file's arithmetic (see ``SCHEMES``).
* TFLite: int8 with asymmetric (zero-point) activations and symmetric per-channel
  weights — built by ``edgekit.quantization.pt2e.quantize``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from edgekit.core.errors import InvalidInputError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class QuantScheme:
    target: str
    weights: str  # "int8 symmetric per-channel" ...
    weight_narrow_range: bool  # [-127, 127], the range TensorRT's own calibrator uses
    weight_bits: int  # 7: levels [-63, 63] stored in int8 (depthwise convs keep 8)
    int32_bias: bool  # biases on the int32 grid (input scale x weight scale) the kernels use
    activations: str
    activation_signed: bool  # TensorRT has no uint8 Q/DQ: post-ReLU tensors stay int8
    placement: str
    batchnorm: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_QDQ = dict(
    weights="int8 symmetric per-channel (axis 0)",
    weight_narrow_range=True,
    weight_bits=8,
    int32_bias=False,  # TensorRT adds the bias in float after dequantizing
    activations="int8 symmetric per-tensor (zero point 0)",
    activation_signed=True,
    placement="QuantizeLinear/DequantizeLinear on the inputs of Conv/Gemm and residual Add",
    batchnorm="folded into the preceding convolution before quantization",
)

SCHEMES: dict[str, QuantScheme] = {
    "tensorrt": QuantScheme(target="tensorrt", **_QDQ),
    # onnxruntime on x86 without VNNI runs u8s8 much faster than s8s8 (or u8u8, which ran
    # at fp32 speed): uint8 activations, zero point 0 where non-negative. Its u8s8 kernel
    # sums pairs of products in 16 bits (vpmaddubsw) and saturates with 8-bit weights;
    # 7-bit weights keep 2 x 255 x 64 in range (onnxruntime's own advice, "reduce_range").
    # 7-bit weights and biases on their int32 grid (as the kernels round them) brought the
    # fused kernels to the file's reference arithmetic (docs/results.md, "One-off checks").
    "onnxruntime": QuantScheme(target="onnxruntime", **{
        **_QDQ, "activation_signed": False, "weight_bits": 7, "int32_bias": True,
        "weights": "7-bit symmetric per-channel (axis 0), levels [-63, 63] in int8; "
                   "depthwise convs 8-bit",
        "activations": "uint8 per-tensor: zero point 0 where non-negative, 128 where signed "
                       "(the int8 symmetric grid)"}),
    "tflite": QuantScheme(
        target="tflite",
        weights="int8 symmetric per-channel (axis 0)",
        weight_narrow_range=True,
        weight_bits=8,
        int32_bias=True,  # trained on the grid by edgekit.quantization.pt2e.int32_bias
        activations="int8 asymmetric per-tensor (zero point)",
        activation_signed=True,
        placement="every tensor between int8 builtin ops (full-integer model)",
        batchnorm="folded into the preceding convolution before quantization",
    ),
}


def scheme_for(target: str) -> QuantScheme:
    try:
        return SCHEMES[target]
    except KeyError:
        raise InvalidInputError(
            f"unknown quantization target {target!r}; choose one of {', '.join(SCHEMES)}"
        ) from None



MODES = ("qat", "ptq")
# off: a paired one-off check found no gain from 0.5 beyond test noise on four families
# (docs/results.md, "One-off checks")
DEFAULT_DISTILL = 0.0


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize: for which target, QAT or PTQ, and the fine-tuning budget.

    ``distill``: the share of the QAT loss that is distillation from the fp32 model
    (``TrainConfig.distill``, temperature 2); 0 (the default) trains on the labels alone.
    ``rounding``: how weights are rounded to their int8 levels before the target's
    quantizer sees them: "nearest" (plain min-max PTQ) or "gptq" (by the layer's output
    error on the calibration inputs, ``edgekit.quantization.rounding``).
    ``ranges``: how activation ranges are set from the calibration inputs: "minmax",
    "mean-minmax", "percentile", "mse", or "auto" (each tried on part of them, the one
    that agrees best with the fp32 model on the rest kept;
    ``edgekit.quantization.ranges``); None: the backend's default (nncf: mean-minmax,
    PT2E: mse). Weights keep their per-channel min-max grid. TFLite takes it for PTQ only.
    ``bias_correction``: give each layer's output channels back, through the bias, the mean
    its weight rounding shifted (on the calibration inputs, weights on the target's grid).
    ``keep_float``: module paths (``features.1``, ``classifier.0``) whose weights stay
    float, their inputs still quantized (TensorRT and onnxruntime targets): a per-layer
    precision plan, e.g. the blocks whose int8 form was measured slower than float
    (``edgekit.bench.layer_latency.compare_layers``).
    ``checkpoint``: a file the QAT epochs are saved to after each epoch; a run stopped
    mid-QAT and started again with the same file continues after its last epoch
    (``edgekit.training.train(checkpoint=...)``).
    """

    target: str = "tensorrt"
    mode: str = "qat"
    epochs: int = 2
    lr: float = 1e-4
    calibration_size: int = 300
    batch_size: int = 64
    seed: int = 0
    distill: float = DEFAULT_DISTILL
    rounding: str = "nearest"
    ranges: str | None = None
    bias_correction: bool = False
    checkpoint: str | None = None
    keep_float: tuple[str, ...] = ()
    progress: bool = True  # a line per QAT epoch (on a terminal, a bar with ETA)

    def __post_init__(self) -> None:
        scheme_for(self.target)  # raises on an unknown target
        if self.mode not in MODES:
            raise InvalidInputError(f"quantization mode must be one of {MODES}, not {self.mode!r}")
        for name in ("epochs", "calibration_size", "batch_size"):
            value = getattr(self, name)
            low = 0 if name == "epochs" else 1
            if not isinstance(value, int) or value < low:
                raise InvalidInputError(f"QuantConfig.{name} must be an integer >= {low}, "
                                        f"got {value!r}")
        if not self.lr > 0:
            raise InvalidInputError(f"QuantConfig.lr must be > 0, got {self.lr!r}")
        if not 0 <= self.distill <= 1:
            raise InvalidInputError(f"QuantConfig.distill must be in [0, 1], got {self.distill!r}")
        from edgekit.quantization.rounding import ROUNDING_METHODS

        if self.rounding not in ROUNDING_METHODS:
            raise InvalidInputError(f"QuantConfig.rounding must be one of {ROUNDING_METHODS}, "
                                    f"not {self.rounding!r}")
        from edgekit.quantization.ranges import RANGE_CHOICES

        if self.ranges is not None and self.ranges not in RANGE_CHOICES:
            raise InvalidInputError(f"QuantConfig.ranges must be one of {RANGE_CHOICES}, "
                                    f"not {self.ranges!r}")
        if isinstance(self.keep_float, str) or not all(
                isinstance(m, str) and m.strip(".") for m in self.keep_float):
            raise InvalidInputError("QuantConfig.keep_float must be a sequence of module "
                                    f"paths, got {self.keep_float!r}")
        if self.keep_float and self.target == "tflite":
            raise InvalidInputError("QuantConfig.keep_float is for the tensorrt and "
                                    "onnxruntime targets")


@dataclass
class QuantizedModel:
    """A fake-quant torch model plus what is needed to export and audit it.

    Made only by a backend, as one of its subclasses: ``QdqQuantizedModel`` (nncf, the
    QDQ ONNX that TensorRT and onnxruntime run) or ``TFLiteQuantizedModel`` (PT2E, the
    full-integer ``.tflite``). Exporters and ``verify`` dispatch on that type.
    """

    backend: ClassVar[str] = ""

    model: torch.nn.Module
    config: QuantConfig
    scheme: dict[str, Any]
    history: Any = None
    input_shape: tuple[int, ...] | None = None  # (C, H, W) it was calibrated on
    calibration_samples: int = 0
    rounding: dict[str, Any] = field(default_factory=dict)  # RoundingReport, when refined
    ranges: dict[str, Any] = field(default_factory=dict)  # RangeChoice (setting, trials)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def audit(self) -> dict[str, Any]:
        """The backend's own counts for the report and the manifest (plain data)."""
        return {"calibration_samples": self.calibration_samples,
                **({"weight_rounding": self.rounding} if self.rounding else {}),
                **({"activation_ranges": self.ranges} if self.ranges else {})}


@dataclass
class QdqQuantizedModel(QuantizedModel):
    """nncf fake-quant model for the TensorRT and onnxruntime targets (QDQ ONNX)."""

    backend: ClassVar[str] = "nncf"

    uint8_quantizers_made_signed: int = 0
    weight_quantizers_7bit: int = 0
    biases_on_int32_grid: int = 0

    def audit(self) -> dict[str, Any]:
        return {**super().audit(),
                "uint8_quantizers_made_signed": self.uint8_quantizers_made_signed,
                "weight_quantizers_7bit": self.weight_quantizers_7bit,
                "biases_on_int32_grid": self.biases_on_int32_grid}


PT2E_PREPARED = "prepared"  # fake-quant modules (QAT); convert_pt2e runs at export
PT2E_CONVERTED = "converted"  # Q/DQ reference graph (PTQ)


@dataclass
class TFLiteQuantizedModel(QuantizedModel):
    """PT2E graph for the TFLite target: ``model`` is the fake-quant graph (``prepared``,
    after QAT) or the Q/DQ reference graph (``converted``, after PTQ)."""

    backend: ClassVar[str] = "pt2e"

    quantizer: Any = None  # the annotator convert_pt2e and litert_torch need at export
    pt2e_stage: str = PT2E_PREPARED

    def audit(self) -> dict[str, Any]:
        return {**super().audit(), "pt2e_stage": self.pt2e_stage}


