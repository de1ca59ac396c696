"""Int8 for TensorRT and onnxruntime: nncf inserts and calibrates fake-quant, QAT fine-tunes.

The quantization arithmetic follows the deployment target (``edgekit.quantization.types.SCHEMES``):
symmetric int8 with per-channel weights and per-tensor activations (QDQ on the inputs of
Conv/Gemm). BatchNorm is folded into the convolutions *before* quantization, so the
weights QAT learns ranges for are the weights the engine runs, and every quantizer
computes the exported QuantizeLinear/DequantizeLinear arithmetic bit for bit
(``edgekit.quantization.qdq.forward``), so QAT trains the model the file holds.

>>> qm = quantize_qdq(model, QuantConfig(target="tensorrt", epochs=2), train_data=ds)
>>> export_onnx(qm, "model.onnx")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from edgekit.calibration.forms import sample_inputs
from edgekit.core.errors import EdgekitError, ExportError, InvalidInputError, first_line
from edgekit.quantization.finetune import fine_tune
from edgekit.quantization.qdq.extension_cache import use_environment_cache
from edgekit.quantization.qdq.scheme import (
    force_signed_activations,
    keep_weights_float,
    nncf_advanced_parameters,
    use_7bit_weights,
)
from edgekit.quantization.rounding import refine_weights
from edgekit.quantization.types import QdqQuantizedModel, QuantConfig, scheme_for

if TYPE_CHECKING:
    import torch

    from edgekit.training.config import Hook

QDQ_TARGETS = ("tensorrt", "onnxruntime")
NNCF_EXTENSION_TIMEOUT_S = 600  # default NNCF_EXTENSION_LOAD_TIMEOUT (nncf's own: 60 s)


def quantize_qdq(
    model: torch.nn.Module,
    config: QuantConfig | None = None,
    *,
    train_data: Any = None,
    calib_data: Any = None,
    val_data: Any = None,
    after_step: Hook | None = None,
) -> QdqQuantizedModel:
    """Quantize ``model`` for ``config.target``; QAT fine-tunes on ``train_data``.

    Calibration uses ``calibration_size`` samples of ``calib_data`` (or of ``train_data``).
    The input model is not modified.
    """
    config = config or QuantConfig()
    if config.target not in QDQ_TARGETS:
        raise InvalidInputError(f"quantize_qdq is for the {' and '.join(QDQ_TARGETS)} targets, "
                                f"not {config.target!r}")
    if config.mode == "qat" and config.epochs > 0 and train_data is None:
        raise InvalidInputError("QAT needs train_data (or use mode='ptq' / epochs=0)")
    source = calib_data if calib_data is not None else train_data
    if source is None:
        raise InvalidInputError("quantization needs calibration data (calib_data or train_data)")

    import torch

    # nncf builds its CPU extension on first use (and again whenever another environment
    # built the shared cache last) under a 60 s limit, which a busy 2-core box can exceed
    # with the build alone. Allow 10 min unless the user chose a limit.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", str(NNCF_EXTENSION_TIMEOUT_S))
    use_environment_cache()  # per environment, not per user: no silent rebuilds (issue 38)
    torch.manual_seed(config.seed)
    calib = sample_inputs(source, config.calibration_size, seed=config.seed)
    scheme = scheme_for(config.target)
    prepared = _prepare(model, calib[: min(len(calib), 8)])
    rounding = refine_weights(prepared, calib, config, scheme)
    unknown = set(config.keep_float) - {name for name, _ in prepared.named_modules()}
    if unknown:
        raise InvalidInputError(f"keep_float names no module of the model: {sorted(unknown)}")
    ranges = config.ranges
    choice: dict[str, Any] = {}
    if ranges == "auto":
        from edgekit.quantization.ranges import choose_ranges

        chosen = choose_ranges(lambda setting, part: _fake_quant(prepared, part, config,
                                                                   setting)[0],
                               model, calib, batch_size=config.batch_size, seed=config.seed)
        ranges, choice = chosen.chosen, chosen.to_dict()
    qmodel, flipped, seven_bit = _fake_quant(prepared, calib, config, ranges)
    history = None
    if config.mode == "qat" and config.epochs > 0:
        history = fine_tune(qmodel, train_data, val_data, config, teacher=model,
                            after_step=after_step)
    qmodel.eval()
    quantized = QdqQuantizedModel(
        model=qmodel,
        config=config,
        scheme=scheme.to_dict(),
        history=history,
        input_shape=tuple(int(d) for d in calib.shape[1:]),
        calibration_samples=len(calib),
        uint8_quantizers_made_signed=flipped,
        weight_quantizers_7bit=seven_bit,
        rounding=rounding,
        ranges=choice or ({"chosen": ranges} if ranges else {}),
    )
    if scheme.int32_bias:
        from edgekit.quantization.qdq.bias_grid import round_biases_to_int32_grid

        quantized.biases_on_int32_grid = round_biases_to_int32_grid(quantized)
    return quantized


def _fake_quant(prepared: torch.nn.Module, calib: torch.Tensor, config: QuantConfig,
                ranges: str | None) -> tuple[torch.nn.Module, int, int]:
    """nncf's fake-quant copy of ``prepared`` calibrated on ``calib`` with activation
    ranges ``ranges``, in the target's arithmetic: (model, quantizers made signed, weight
    quantizers made 7-bit)."""
    import nncf
    import torch

    from edgekit.quantization.qdq.forward import use_qdq_forward

    scheme = scheme_for(config.target)
    batches = list(torch.split(calib, config.batch_size))
    try:
        qmodel = nncf.quantize(  # quantizes a copy
            prepared,
            nncf.Dataset(batches),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            subset_size=len(batches),
            advanced_parameters=nncf_advanced_parameters(scheme, ranges),
        )
    except EdgekitError:
        raise
    except Exception as exc:  # nncf/torch raise many types for an untraceable model
        raise ExportError(f"nncf could not quantize the model: {first_line(exc)}") from exc
    if config.keep_float:
        keep_weights_float(qmodel, config.keep_float)
    flipped = force_signed_activations(qmodel) if scheme.activation_signed else 0
    seven_bit = use_7bit_weights(qmodel, calib[:1]) if scheme.weight_bits == 7 else 0
    if config.target == "onnxruntime":  # so its convs fuse into int8 kernels
        from edgekit.quantization.qdq.fusable import quantize_conv_outputs

        quantize_conv_outputs(qmodel, calib, config.batch_size)
    use_qdq_forward(qmodel)
    qmodel.eval()
    return qmodel, flipped, seven_bit


def _prepare(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """Copy, eval mode, BatchNorm folded, and a top-level Sequential wrapped (nncf snag)."""
    import torch

    from edgekit.quantization.bn_fold import fold_batchnorm

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
