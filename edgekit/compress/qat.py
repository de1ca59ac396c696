"""Target-aware int8 quantization: nncf inserts and calibrates fake-quant, then QAT fine-tunes.

The quantization arithmetic follows the deployment target (``edgekit.compress.quant_scheme``):
TensorRT and onnxruntime get symmetric int8 with per-channel weights and per-tensor
activations (QDQ on the inputs of Conv/Gemm); TFLite is handed to
``edgekit.compress.qat_tflite``. BatchNorm is folded into the convolutions *before*
quantization, so the weights QAT learns ranges for are the weights the engine runs, and
every quantizer computes the exported QuantizeLinear/DequantizeLinear arithmetic bit for
bit (``edgekit.compress.qdq_forward``), so QAT trains the model the file holds.

>>> qm = quantize(model, QuantConfig(target="tensorrt", epochs=2), train_data=ds)
>>> export_onnx(qm, "model.onnx", input_shape=(1, 28, 28))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekit.compress.quant_scheme import (
    SCHEMES,
    force_signed_activations,
    nncf_advanced_parameters,
    scheme_for,
    use_7bit_weights,
)
from edgekit.errors import DataError, EdgekitError, ExportError, InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import torch

MODES = ("qat", "ptq")
# off: a paired one-off check (2026-11-23, docs/results.md) found no gain from 0.5 on
# four families (-0.4 to +0.5 pp, all within test noise)
DEFAULT_DISTILL = 0.0
NNCF_EXTENSION_TIMEOUT_S = 600  # default NNCF_EXTENSION_LOAD_TIMEOUT (nncf's own: 60 s)


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize: for which target, QAT or PTQ, and the fine-tuning budget.

    ``distill``: the share of the QAT loss that is distillation from the fp32 model
    (``TrainConfig.distill``, temperature 2); 0 (the default) trains on the labels alone.
    ``bias_correction``: nncf's fast bias correction at calibration (TensorRT and
    onnxruntime targets; ``nncf_advanced_parameters`` says why it is off by default).
    """

    target: str = "tensorrt"
    mode: str = "qat"
    epochs: int = 2
    lr: float = 1e-4
    calibration_size: int = 300
    batch_size: int = 64
    seed: int = 0
    distill: float = DEFAULT_DISTILL
    bias_correction: bool = False

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
        if self.bias_correction and self.target == "tflite":
            raise InvalidInputError("QuantConfig.bias_correction is nncf's; the tflite target "
                                    "quantizes with PT2E, which has none")


@dataclass
class QuantizedModel:
    """A fake-quant torch model plus what is needed to export and audit it."""

    model: torch.nn.Module
    config: QuantConfig
    scheme: dict[str, Any]
    history: Any = None
    backend: str = "nncf"
    input_shape: tuple[int, ...] | None = None  # (C, H, W) it was calibrated on
    extra: dict[str, Any] = field(default_factory=dict)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def quantize(
    model: torch.nn.Module,
    config: QuantConfig | None = None,
    *,
    train_data: Any = None,
    calib_data: Any = None,
    val_data: Any = None,
) -> QuantizedModel:
    """Quantize ``model`` for ``config.target``; QAT fine-tunes on ``train_data``.

    Calibration uses ``calibration_size`` samples of ``calib_data`` (or of ``train_data``).
    The input model is not modified.
    """
    config = config or QuantConfig()
    if config.target == "tflite":
        from edgekit.compress.qat_tflite import quantize_for_tflite

        return quantize_for_tflite(
            model, config, train_data=train_data, calib_data=calib_data, val_data=val_data
        )
    if config.target not in SCHEMES:  # pragma: no cover - QuantConfig validated it
        raise InvalidInputError(f"unknown target {config.target!r}")
    if config.mode == "qat" and config.epochs > 0 and train_data is None:
        raise InvalidInputError("QAT needs train_data (or use mode='ptq' / epochs=0)")
    source = calib_data if calib_data is not None else train_data
    if source is None:
        raise InvalidInputError("quantization needs calibration data (calib_data or train_data)")

    import nncf
    import torch

    from edgekit.compress.qdq_forward import use_qdq_forward

    # nncf builds its CPU extension on first use (and again whenever another environment
    # built the shared cache last) under a 60 s limit; on a busy 2-core box the build alone
    # took longer (2026-11-23). Allow 10 min unless the user chose a limit.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", str(NNCF_EXTENSION_TIMEOUT_S))
    torch.manual_seed(config.seed)
    calib = sample_inputs(source, config.calibration_size, seed=config.seed)
    scheme = scheme_for(config.target)
    prepared = _prepare(model, calib[: min(len(calib), 8)])
    batches = list(torch.split(calib, config.batch_size))
    try:
        qmodel = nncf.quantize(
            prepared,
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(batches),
            advanced_parameters=nncf_advanced_parameters(
                scheme, bias_correction=config.bias_correction),
        )
    except EdgekitError:
        raise
    except Exception as exc:  # nncf/torch raise many types for an untraceable model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ExportError(f"nncf could not quantize the model: {first}") from exc
    flipped = force_signed_activations(qmodel) if scheme.activation_signed else 0
    seven_bit = use_7bit_weights(qmodel, calib[:1]) if scheme.weight_bits == 7 else 0
    use_qdq_forward(qmodel)
    history = None
    if config.mode == "qat" and config.epochs > 0:
        history = fine_tune(qmodel, train_data, val_data, config, teacher=model)
    qmodel.eval()
    quantized = QuantizedModel(
        model=qmodel,
        config=config,
        scheme=scheme.to_dict(),
        history=history,
        backend="nncf",
        input_shape=tuple(int(d) for d in calib.shape[1:]),
        extra={"calibration_samples": len(calib), "uint8_quantizers_made_signed": flipped,
               "weight_quantizers_7bit": seven_bit},
    )
    if scheme.int32_bias:
        from edgekit.compress.bias_grid import round_biases_to_int32_grid

        quantized.extra["biases_on_int32_grid"] = round_biases_to_int32_grid(quantized)
    return quantized


def _prepare(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """Copy, eval mode, BatchNorm folded, and a top-level Sequential wrapped (nncf snag)."""
    import torch

    from edgekit.compress.bn_fold import fold_batchnorm

    model = model.eval()
    folded = fold_batchnorm(model, example)  # returns a copy
    with torch.no_grad():
        err = (folded(example) - model(example)).abs().max().item()
    if err > 1e-3 * max(1.0, model(example).abs().max().item()):
        raise ExportError(f"folding BatchNorm changed the model's output by {err:.3g}")
    if isinstance(folded, torch.nn.Sequential):
        folded = _wrap_sequential(folded)
    return folded


def _wrap_sequential(body: torch.nn.Sequential) -> torch.nn.Module:
    import torch

    class SequentialWrapper(torch.nn.Module):
        """nncf cannot hook a top-level nn.Sequential; give it a module with a forward."""

        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    return SequentialWrapper()


def fine_tune(qmodel: Any, train_data: Any, val_data: Any, config: QuantConfig, *,
              teacher: torch.nn.Module) -> Any:
    """QAT epochs through the fake-quant ops, distilled from ``teacher`` (the fp32 model)
    when ``config.distill`` > 0; with ``val_data`` the best of the calibrated start and each
    epoch is kept, so QAT never validates worse than its own PTQ."""
    from edgekit.training import TrainConfig, train

    train_config = TrainConfig(
        epochs=config.epochs, lr=config.lr, batch_size=config.batch_size, seed=config.seed,
        progress=False, keep_start=True, distill=config.distill,
    )
    return train(qmodel, train_data, train_config, val_data=val_data,
                 teacher=teacher if config.distill > 0 else None)


def sample_inputs(data: Any, n: int, *, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` input tensors (N, C, H, W float32) drawn from any supported data form.

    Accepts an ``ArrayDataset`` (``.x``), an ``(x, y)`` tuple, a numpy array or tensor of
    inputs, or a sequence of ``(x, y)`` samples (a torch Dataset).
    """
    import numpy as np
    import torch

    x = inputs_array(data)
    if len(x) == 0:
        raise DataError("the calibration data set is empty")
    if n < len(x):
        if hasattr(data, "subset"):  # stratified draw keeps every class in a small subset
            x = inputs_array(data.subset(n, seed=seed))
        else:
            x = x[np.sort(np.random.default_rng(seed).permutation(len(x))[:n])]
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))


def inputs_array(data: Any) -> np.ndarray:
    """The inputs of ``data`` as a float32 (N, C, H, W) numpy array."""
    return _split_xy(data)[0]


def labels_array(data: Any) -> np.ndarray | None:
    return _split_xy(data)[1]


def _split_xy(data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    import numpy as np

    if hasattr(data, "x") and hasattr(data, "y"):
        x, y = data.x, data.y
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = data
    elif hasattr(data, "shape"):
        x, y = data, None
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        items = [data[i] for i in range(len(data))]
        if items and isinstance(items[0], (tuple, list)):
            x = np.stack([_numpy(it[0]) for it in items])
            y = np.stack([_numpy(it[1]) for it in items])
        else:
            x, y = np.stack([_numpy(it) for it in items]), None
    else:
        raise DataError(f"cannot read inputs from {type(data).__name__}; pass an ArrayDataset, "
                        "(x, y) arrays or a sequence of (x, y) samples")
    x = _numpy(x).astype(np.float32, copy=False)
    if x.ndim != 4:
        raise DataError(f"inputs must be N×C×H×W, got shape {tuple(x.shape)}")
    return x, (None if y is None else _numpy(y))


def _numpy(a: Any) -> np.ndarray:
    import numpy as np

    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)
