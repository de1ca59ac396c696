"""Binary and ternary nets in `edgekit compress`, for every target.

What a net deploys as is decided by its layers (``edgekit.models.lowbit.layers``) and the
target's runtime, not by its zoo name, so a user's ``nn.Sequential`` of the same layers
takes the same path. Every form deploys the materialized net (standard Conv/Linear holding
the trained low-bit weights), never the training layers: BatchNorm folded into a low-bit
layer's latent weight would be re-quantized and change the output.

* binary on a TFLite target (sign activations, binary or XNOR weights): the LCE file
  (``edgekit.export.lce``: ``LceQuantize`` + ``LceBconv2d`` with bit-packed filters),
  verified in Larq Compute Engine's interpreter (runtime ``lce``, its own environment
  ``.venv-lce``). No int8 quantization: the 1-bit layers are the quantization. The fp32
  ``.tflite`` of the same net is written beside it for the size comparison.
* ternary (TWN, TTQ): the materialized net (standard Conv/Linear holding the trained
  ternary weights) takes the int8 TFLite path by PTQ with nearest rounding: per-channel int8
  keeps each channel's three levels three (TWN's {-a, 0, +a} exactly; TTQ's {-Wn, 0, +Wp}
  with Wn on the int8 grid of Wp); QAT, GPTQ rounding or bias correction would move them.
  The same on the ONNX targets (TensorRT's and onnxruntime's int8 schemes are per-channel
  symmetric too).
* binary on an ONNX target (TensorRT, onnxruntime): neither has 1-bit kernels, so the
  materialized net deploys in float (an fp16 engine on TensorRT, fp32 on onnxruntime) with
  the sign activation as GreaterOrEqual + Where, ops both run. Binary weights in float:
  storage (the ``.ekz``), not speed. No int8: an int8 activation grid would not keep the
  sign activations' inputs on the right side of zero.

Hashed nets (HashedNets) are not low-bit for deployment: their materialized weights are
ordinary floats, and they take the path every model takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import UnsupportedOpError

# ctx: edgekit.pipeline.stages.Context (not imported: stages imports this module)
Context = Any

LCE = "lce"  # the artifact key and runtime of the LCE file
TERNARY_INT8 = "ternary-int8"
BINARY_FLOAT = "binary-float"
LCE_FILE = "model_lce.tflite"
# shown in the report's header instead of the recipe's precision
DEPLOYED_AS = {LCE: "binary: LCE 1-bit file (LceBconv2d), no int8 quantization",
               TERNARY_INT8: "ternary weights in int8 (PTQ, nearest rounding, no QAT)",
               BINARY_FLOAT: "binary weights in float ({precision}): storage, not speed"}
ONNX_RUNTIMES = ("tensorrt", "onnxruntime")


def deploy_form(model: Any, runtime: str) -> str | None:
    """``LCE`` (TFLite) or ``BINARY_FLOAT`` (ONNX targets) for a binary net,
    ``TERNARY_INT8`` for a ternary one, None for any other model."""
    from edgekit.models.lowbit import layers as L

    if runtime != "tflite" and runtime not in ONNX_RUNTIMES:
        return None
    binary = (L.BinaryActivation, L.SignActivation, L.BinaryConv2d, L.BinaryLinear,
              L.XnorConv2d, L.XnorLinear)
    ternary = (L.TernaryConv2d, L.TernaryLinear, L.TTQConv2d, L.TTQLinear)
    modules = list(model.modules())
    if any(isinstance(m, binary) for m in modules):
        return LCE if runtime == "tflite" else BINARY_FLOAT
    if any(isinstance(m, ternary) for m in modules):
        return TERNARY_INT8
    return None


def check(ctx: Context, model: Any, form: str) -> None:
    """Pre-flight of a low-bit net, one line on failure: for LCE, LCE's interpreter exists
    (verification needs it) and every layer converts; else the materialized net's ops on
    the target (``edgekit check``). Settles the recipe: no QAT, nearest rounding; a binary
    net on an ONNX target deploys in float (fp16 where TensorRT builds it)."""
    from edgekit.lowbit import materialize

    if form == LCE:
        from edgekit.export.lce import lce_model_bytes
        from edgekit.runtime.lce import lce_python

        lce_python()  # MissingBackendError naming `make lce-env`, before any training
        try:
            lce_model_bytes(model, ctx.input_shape)
        except UnsupportedOpError as exc:
            raise UnsupportedOpError(f"{ctx.profile.name} deploys binary nets as LCE files: "
                                     f"{exc}") from None
        ctx.metrics["preflight"] = []
    else:
        from edgekit.export.check import check_model

        findings = check_model(materialize(model), ctx.quant_target, ctx.input_shape)
        ctx.metrics["preflight"] = [f.to_dict() for f in findings]
    ctx.recipe = ctx.recipe.replace(qat_epochs=0, ptq_rounding="nearest",
                                    ptq_bias_correction=False)
    if form == BINARY_FLOAT and ctx.recipe.precision == "int8":
        ctx.recipe = ctx.recipe.replace(precision=_float_precision(ctx.profile))
    ctx.lowbit = form
    if form != TERNARY_INT8 or ctx.recipe.precision == "int8":  # else the float file asked for
        ctx.metrics["deployed_as"] = DEPLOYED_AS[form].format(precision=ctx.recipe.precision)
        ctx.notes.append(_NOTES[form].format(target=ctx.profile.name,
                                             runtime=ctx.profile.runtime,
                                             precision=ctx.recipe.precision))


def _float_precision(profile: Any) -> str:
    """fp16 where TensorRT builds it (the profile lists fp16), else fp32."""
    return "fp16" if profile.runtime == "tensorrt" and "fp16" in profile.precisions else "fp32"


_NOTES = {
    LCE: "binary net on a TFLite target: deployed as an LCE file (1-bit LceBconv2d, "
         "bit-packed filters; first and last layers dense), verified in Larq Compute Engine's "
         "interpreter on this host's x86 reference kernels. LiteRT alone cannot run it: the "
         "board needs LCE's runtime (bundle/DEVICE.md).",
    TERNARY_INT8: "ternary net on {target} ({runtime}): the materialized net (standard "
                  "layers holding the trained ternary weights) is quantized to int8 by PTQ "
                  "with nearest rounding and no bias correction, which keeps three levels "
                  "per channel (TWN's ±a exactly); no QAT, which would move them. No runtime "
                  "here has a ternary op (LCE neither).",
    BINARY_FLOAT: "binary net on {target} ({runtime}): {runtime} has no 1-bit kernels, so "
                  "the materialized net (±1 or ±α weights, sign activations as "
                  "GreaterOrEqual + Where) is deployed in {precision}: binary weights in "
                  "float, storage (the .ekz), not speed. No int8: an int8 grid on the sign "
                  "activations' inputs would round small negatives to 0, whose sign is +1.",
}


def export(ctx: Context, fp32: Any, folder: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """The LCE file and, for the size comparison, the fp32 ``.tflite`` of the same net."""
    from edgekit.export.lce import export_lce
    from edgekit.export.tflite import export_tflite

    files = {LCE: export_lce(fp32, folder / LCE_FILE, input_shape=ctx.input_shape,
                             metadata=meta).path}
    if ctx.recipe.fp32_baseline:
        calib = np.asarray(ctx.train.x[: min(64, len(ctx.train))])
        files["fp32"] = export_tflite(fp32, folder / "model_fp32.tflite", calibration=calib,
                                      metadata=meta).path
    return files


def no_estimate(ctx: Context, name: str) -> dict[str, Any]:
    """The report's device block for an LCE file: the latency model has no 1-bit kernels."""
    return {"file": name, "rows": [],
            "error": f"the device latency model has no 1-bit kernels (LceBconv2d): no "
                     f"estimate of {name} on {ctx.profile.name}; an int8 or fp32 estimate "
                     "would not apply. Its speed needs the board (`edgekit deploy`)."}


HOST_NOT_TIMED = ("The LCE file is not timed on this host: on x86 Larq Compute Engine runs its "
                  "reference 1-bit kernels (its optimized ones are for ARM), so a time here "
                  "would say nothing about the target. The fp32 row times the same net as a "
                  "float .tflite in LiteRT.")
