"""Int8 QAT/PTQ for TFLite through PT2E, on a BatchNorm-free graph.

litert-torch's PT2E QAT (``prepare_qat_pt2e`` + its quantizer with ``is_qat=True``) fails
on conv+BatchNorm with torch 2.13 + torchao 0.18. The path here avoids that pattern
instead of patching around it:

1. ``fold_batchnorm`` merges every BN into its conv and ``transposed_convs_as_pixel_shuffle``
   turns ESPNet's upsampling into int8-lowerable ops (both exact in float; checked);
2. ``torch.export`` with a dynamic batch dim, then ``prepare_qat_pt2e`` with
   ``TFLiteInt8Quantizer`` (litert's int8 specs; annotates every op with an int8 kernel);
3. calibration batches set each range to its global min/max (``_calibrate``),
   ``edgekit.training.train`` fine-tunes weights through the fake-quant ops (biases
   rounded to their int32 grid, ``int32_bias``; average-pool, global-mean and bilinear-resize ties
   rounded as LiteRT does, ``tie_rounding``; hard-swish in LiteRT's fixed point,
   ``kernel_hardswish``), then observers are frozen;
4. ``convert_pt2e`` at export time turns the learned ranges into Q/DQ pairs that
   ``litert_torch.convert`` lowers to a full-integer ``.tflite``.

The trained fake-quant module is what ``QuantizedModel.model`` holds; the deployed file
is derived from exactly that module, and ``edgekit.export.tflite`` checks parity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgekit.calibration.forms import sample_inputs
from edgekit.core.errors import (
    DataError,
    EdgekitError,
    ExportError,
    InvalidInputError,
    first_line,
)
from edgekit.quantization.finetune import fine_tune
from edgekit.quantization.rounding import refine_weights
from edgekit.quantization.types import (
    PT2E_CONVERTED,
    PT2E_PREPARED,
    QuantConfig,
    TFLiteQuantizedModel,
    scheme_for,
)

if TYPE_CHECKING:
    import torch

    from edgekit.training.config import Hook

# How the model QAT trains is laid out for the TFLite int8 kernels (plain data, printable).
TFLITE_SCHEME = {
    "target": "tflite",
    "weights": "int8 symmetric per-channel (axis 0), range [-127, 127]",
    "activations": "int8 asymmetric per-tensor (zero point), range [-128, 127]",
    "fixed": "LOGISTIC/SOFTMAX outputs scale 1/256, zero point -128",
    "batchnorm": "folded into the preceding convolution before quantization",
    "io": "int8 input and output (full-integer model)",
    "annotation": "edgekit.quantization.pt2e.quantizer.TFLiteInt8Quantizer",
}



def quantize_for_tflite(
    model: torch.nn.Module,
    cfg: QuantConfig | None = None,
    *,
    train_data: Any = None,
    calib_data: Any = None,
    val_data: Any = None,
    after_step: Hook | None = None,
) -> TFLiteQuantizedModel:
    """Quantize ``model`` for TFLite int8; QAT fine-tunes on ``train_data``.

    Returns a ``QuantizedModel`` whose ``model`` is the fake-quant torch module (batch
    dimension dynamic) and which carries the quantizer ``export_tflite`` needs.
    The input model is not modified.
    """
    import torch

    from edgekit.quantization.pt2e.kernel_hardswish import insert_kernel_hardswish

    cfg = cfg or QuantConfig(target="tflite")
    if cfg.target != "tflite":
        raise InvalidInputError(f"quantize_for_tflite needs target='tflite', got {cfg.target!r}")
    qat = cfg.mode == "qat" and cfg.epochs > 0
    if qat and cfg.ranges is not None:
        raise InvalidInputError("QuantConfig.ranges is for PTQ on the tflite target (QAT "
                                "starts from min-max ranges and moves them)")
    if qat and train_data is None:
        raise InvalidInputError("QAT needs train_data (or use mode='ptq' / epochs=0)")
    source = calib_data if calib_data is not None else train_data
    if source is None:
        raise InvalidInputError("quantization needs calibration data (calib_data or train_data)")
    torch.manual_seed(cfg.seed)
    calib = sample_inputs(source, cfg.calibration_size, seed=cfg.seed)
    rounding: dict[str, Any] = {}
    if len(calib) == 0:
        raise DataError("the calibration data set is empty")

    graph = export_bn_free(model, calib[: min(len(calib), 4)],
                           refine=lambda folded: rounding.update(
                               refine_weights(folded, calib, cfg, scheme_for("tflite"))))
    ranges, choice = cfg.ranges, {}
    if ranges == "auto":
        from edgekit.quantization.ranges import choose_ranges

        chosen = choose_ranges(lambda setting, part: _ptq_graph(graph, part, cfg, setting)[0],
                               model, calib, batch_size=cfg.batch_size, seed=cfg.seed)
        ranges, choice = chosen.chosen, chosen.to_dict()
    history = None
    if qat:
        prepared, quantizer = _prepare(graph, qat=True)
        _calibrate(prepared, calib, cfg.batch_size)
        insert_kernel_hardswish(prepared)  # after calibration: it needs the output scales
        history = fine_tune(prepared, train_data, val_data, cfg, teacher=model,
                            after_step=after_step)
        freeze_ranges(prepared)
        stage = PT2E_PREPARED
    else:
        prepared, quantizer = _ptq_graph(graph, calib, cfg, ranges)
        stage = PT2E_CONVERTED
    _eval(prepared)
    return TFLiteQuantizedModel(
        model=prepared,
        config=cfg,
        scheme=dict(TFLITE_SCHEME),
        history=history,
        input_shape=tuple(int(d) for d in calib.shape[1:]),
        calibration_samples=len(calib),
        quantizer=quantizer,
        pt2e_stage=stage,
        rounding=rounding,
        ranges=choice or ({"chosen": ranges} if ranges else {}),
    )


def _ptq_graph(graph: torch.fx.GraphModule, calib: torch.Tensor, cfg: QuantConfig,
               ranges: str | None) -> tuple[torch.fx.GraphModule, Any]:
    """The Q/DQ graph of (a copy of) ``graph`` with activation ranges ``ranges`` set on
    ``calib``, and its quantizer."""
    import copy

    from edgekit.quantization.pt2e.range_observers import use_range_observers

    prepared, quantizer = _prepare(copy.deepcopy(graph), qat=False)
    use_range_observers(prepared, ranges)
    _calibrate(prepared, calib, cfg.batch_size)
    freeze_ranges(prepared)
    converted = _convert(prepared)
    _eval(converted)
    return converted, quantizer


def export_bn_free(model: torch.nn.Module, example: torch.Tensor, *,
                   refine: Callable[[torch.nn.Module], None] | None = None
                   ) -> torch.fx.GraphModule:
    """BatchNorm folded and transposed convs as pixel shuffles (checked for equivalence),
    then ``refine(folded)`` (weight rounding, in place), exported with a dynamic batch
    dim."""
    import torch

    from edgekit.quantization.bn_fold import fold_batchnorm, transposed_convs_as_pixel_shuffle

    model = model.eval()
    folded = fold_batchnorm(model, example)
    transposed_convs_as_pixel_shuffle(folded)
    with torch.no_grad():
        ref = model(example)
        err = (folded(example) - ref).abs().max().item()
    if err > 1e-4 * max(1.0, ref.abs().max().item()):
        raise ExportError(f"folding BatchNorm changed the model's output by {err:.3g}")
    if refine is not None:
        refine(folded)
    if example.shape[0] < 2:  # torch.export specialises a dynamic dim seen with size 1
        example = torch.cat([example, example])
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        exported = torch.export.export(folded, (example,), dynamic_shapes=({0: batch},))
    except Exception:  # a model with a hard-coded batch size: fall back to a static export
        try:
            exported = torch.export.export(folded, (example[:1],))
        except Exception as exc:
            raise ExportError(f"torch.export cannot trace the model: "
                              f"{first_line(exc)}") from exc
    return exported.module()


def _prepare(graph: torch.fx.GraphModule, *, qat: bool):
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    from edgekit.quantization.pt2e.int32_bias import use_int32_bias_fake_quant
    from edgekit.quantization.pt2e.quantizer import TFLiteInt8Quantizer
    from edgekit.quantization.pt2e.shared_ranges import share_ranges_per_forward
    from edgekit.quantization.pt2e.tie_rounding import insert_tie_breaks

    quantizer = TFLiteInt8Quantizer(is_qat=qat)
    try:
        prepared = (prepare_qat_pt2e if qat else prepare_pt2e)(graph, quantizer)
    except EdgekitError:
        raise
    except Exception as exc:  # torchao raises many types for a graph it cannot annotate
        raise ExportError(f"PT2E could not prepare the model for int8: "
                          f"{first_line(exc)}") from exc
    _use_reference_fake_quant(prepared)
    if qat:  # PTQ calibrates the plain graph; _convert rounds the biases
        share_ranges_per_forward(prepared)
        use_int32_bias_fake_quant(prepared)
        insert_tie_breaks(prepared)
        _observe_in_train_mode_only(prepared)  # PTQ gets torchao's switch in freeze_ranges
    return prepared, quantizer


def _observe_in_train_mode_only(prepared: torch.fx.GraphModule) -> None:
    """``train()`` lets the observers move the ranges; ``eval()`` holds them still.

    torchao's train/eval switch (``allow_exported_model_train_eval``, which lets
    ``edgekit.training.train`` call them) leaves the observers on. Each validation pass of
    QAT then moved the ranges it was scoring, and the best epoch's snapshot kept them moved.
    ``freeze_ranges`` puts torchao's switch back, so a later ``train()`` leaves them off.
    """
    import types

    from torchao.quantization.pt2e import (
        disable_observer,
        enable_observer,
        move_exported_model_to_eval,
        move_exported_model_to_train,
    )

    def set_mode(self: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self)
        self.apply(enable_observer if mode else disable_observer)
        return self

    prepared.train = types.MethodType(set_mode, prepared)
    prepared.eval = types.MethodType(lambda self: set_mode(self, False), prepared)


def _use_reference_fake_quant(prepared: torch.fx.GraphModule) -> None:
    """Run every fused fake-quant as the plain ``FakeQuantize`` it subclasses.

    ``convert_pt2e`` writes each quantizer's ``calculate_qparams()`` into the deployed
    graph, but the fused kernel (``fused_moving_avg_obs_fake_quant``) recomputes scale and
    zero point with its own formula on every forward, observer on or off. For per-channel
    symmetric weights the two differ: the kernel falls back to an asymmetric range for a
    channel with no negative weight and rounds other scales slightly differently. The
    trained module then was not the deployed one (ShuffleNetV2: first conv off by 0.04,
    1% of MNIST predictions changed before LiteRT ran at all). The plain module computes
    its qparams with ``calculate_qparams()`` (the same observer, the same buffers), so
    QAT trains with exactly the arithmetic the file gets.
    """
    from torchao.quantization.pt2e.fake_quantize import (
        FakeQuantize,
        FusedMovingAvgObsFakeQuantize,
    )

    for module in prepared.modules():
        if type(module) is FusedMovingAvgObsFakeQuantize:
            module.__class__ = FakeQuantize


def _calibrate(prepared: torch.fx.GraphModule, calib: torch.Tensor, batch_size: int) -> None:
    """Run the calibration batches; QAT's moving-average observers record a global min/max.

    A moving-average observer moves 1% toward each tensor it sees. When several tensors
    share one quantizer (a concat and its private producers) the first one seen sets the
    range and the others are clipped to it (ESPNet's calibrated QAT graph fell far below PTQ
    from the same checkpoint; docs/results.md, "One-off checks"). So calibration runs them
    as the plain min/max observer they subclass (same buffers), and QAT's moving average
    starts from that range.
    """
    import torch
    from torchao.quantization.pt2e.observer import MinMaxObserver, MovingAverageMinMaxObserver

    moving = {m: type(m) for m in prepared.modules()
              if isinstance(m, MovingAverageMinMaxObserver)}  # shared_ranges' subclass too
    for observer in moving:
        observer.__class__ = MinMaxObserver
    try:
        with torch.no_grad():
            for batch in torch.split(calib, batch_size):
                prepared(batch)
    finally:
        for observer, cls in moving.items():
            observer.__class__ = cls


def freeze_ranges(prepared: torch.fx.GraphModule) -> None:
    """Stop observers so evaluation data no longer moves the learned ranges."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval, disable_observer

    allow_exported_model_train_eval(prepared)  # torchao's switch, which leaves observers off
    prepared.apply(disable_observer)


def _eval(module: torch.fx.GraphModule) -> None:
    """Dropout and friends in their eval form, and the module flagged as in eval mode:
    ``evaluate``/``predict`` restore the flag they found, and a graph left flagged as
    training is switched back to training dropout (``aten.rand_like``, which LiteRT has
    no kernel for) by torchao's ``train()``."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval

    move_exported_model_to_eval(module)
    torch.nn.Module.train(module, False)  # the flags only, not torchao's graph rewrite


def converted_graph(qm: TFLiteQuantizedModel) -> torch.fx.GraphModule:
    """The Q/DQ graph ``litert_torch.convert`` lowers, from the QuantizedModel's own module."""
    import copy

    if qm.pt2e_stage == PT2E_CONVERTED:
        return qm.model
    return _convert(copy.deepcopy(qm.model))


def _convert(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Q/DQ graph of ``prepared`` (modified in place), biases already on their int32 grid.

    Its ``eval()``/``train()`` stay callable (torchao's switch), as ``edgekit.training``'s
    ``evaluate`` and ``predict`` call them."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from edgekit.quantization.pt2e.int32_bias import bake_int32_biases

    _eval(prepared)  # the deployed file is the eval-mode model, whatever mode it was left in
    _drop_kernel_stand_ins(prepared)
    bake_int32_biases(prepared)
    converted = convert_pt2e(prepared, fold_quantize=False)
    allow_exported_model_train_eval(converted)
    return converted


def _drop_kernel_stand_ins(prepared: torch.fx.GraphModule) -> None:
    """Remove the QAT-only modules that make an op's output what its LiteRT kernel computes
    (``TieBreak``, ``KernelHardswish``): the file's kernels do that themselves. Each takes
    the op's own output as its last argument, which takes its place again."""
    from edgekit.quantization.pt2e.kernel_hardswish import KernelHardswish
    from edgekit.quantization.pt2e.tie_rounding import TieBreak

    for node in list(prepared.graph.nodes):
        if node.op == "call_module" and isinstance(prepared.get_submodule(node.target),
                                                   (TieBreak, KernelHardswish)):
            node.replace_all_uses_with(node.args[-1])
            prepared.graph.erase_node(node)
            prepared.delete_submodule(node.target)
    prepared.graph.lint()
    prepared.recompile()
