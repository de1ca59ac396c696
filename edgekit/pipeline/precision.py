"""The precision plan of a compress run: which layers keep float weights in the int8 model.

By hand (``keep_float``, module paths) or chosen under ``max_drop``
(``edgekit.quantization.plan_precision``) from the layers' sensitivity on the validation
split and their per-layer latency in the target's runtime:

* onnxruntime: the fp32 file and an all-int8 PTQ file are exported and profiled block by
  block in onnxruntime on this host (``edgekit.bench.layer_latency.compare_layers``):
  "measured";
* TensorRT: the target's calibrated per-kernel device model
  (``edgekit.devices.calibrated.kernel_latency_s``) on the fp32 file's kernels, each
  deployed in fp16 (a layer TensorRT gets without Q/DQ) and in int8, summed per block:
  "estimated" (no TensorRT here to time it); a device the model cannot estimate leaves
  the plan accuracy-only, with a note.

The plan is a stage of its own: an unfinished run resumed with the same inputs reuses it
(profiling is noisy; QAT's checkpoint belongs to the plan it was trained with).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.pipeline.resume import claim_stage, stage_key, write_stage
from edgekit.pipeline.steps import step
from edgekit.training import distributed

if TYPE_CHECKING:
    from edgekit.quantization.plan import LayerLatency

PROFILE_RUNS = 20  # per round, batch 1 (compare_layers' default)
PROFILE_ROUNDS = 3


def choose_keep_float(ctx: Any, model: Any) -> tuple[str, ...]:
    """The layers the quantize stage keeps float; records the plan in ``ctx.metrics``
    (``ctx``: the run's ``stages.Context``, untyped here: stages imports this module).
    Under torchrun rank 0 chooses and every rank takes its choice."""
    plan = distributed.from_main(lambda: _plan(ctx, model))
    if plan is not None:
        ctx.metrics["precision_plan"] = plan
    return tuple(plan["keep_float"]) if plan is not None else ()


def _plan(ctx: Any, model: Any) -> dict[str, Any] | None:
    r = ctx.recipe
    by_hand = tuple(r.keep_float)
    if r.max_drop is None:
        return {"chosen_by": "hand", "keep_float": list(by_hand)} if by_hand else None
    key = stage_key("precision_plan", ctx.stage_keys.get("prune", ctx.stage_keys["train"]),
                    ctx.quant_target, r.max_drop, by_hand, r.calibration_size, r.seed,
                    r.ptq_rounding, r.ptq_bias_correction, ctx.profile.runtime)
    record = claim_stage(ctx.out, "precision_plan", key)
    if record is not None and record.get("done"):
        plan = record["value"]
        ctx.reused.append("precision plan")
    else:
        plan = {"chosen_by": f"max_drop {r.max_drop} pp", **_make_plan(ctx, model)}
        write_stage(ctx.out, "precision_plan", {"key": key, "done": True, "value": plan})
    if not plan["within_budget"]:
        ctx.notes.append(f"the precision plan stopped at {plan['drop_pp']:.2f} pp below fp32 "
                         f"on the validation split, over the {r.max_drop} pp budget (its "
                         f"step limit); {len(plan['keep_float'])} layers kept float")
    return plan


def _make_plan(ctx: Any, model: Any) -> dict[str, Any]:
    from edgekit.quantization.plan import plan_precision
    from edgekit.quantization.sensitivity import calibrate_for

    r = ctx.recipe
    ctx.log(f"{step('quantize')} precision plan: per-layer sensitivity (max drop "
            f"{r.max_drop} pp)")
    quantized = calibrate_for(model, ctx.quant_target, ctx.train,
                              calibration_size=r.calibration_size, seed=r.seed,
                              rounding=r.ptq_rounding, bias_correction=r.ptq_bias_correction)
    latency = _measured_latency(ctx, model, quantized) \
        if ctx.profile.runtime == "onnxruntime" else _estimated_latency(ctx, model)
    plan = plan_precision(model, ctx.val, ctx.quant_target, max_drop=r.max_drop,
                          latency=latency, quantized=quantized, keep_float=tuple(r.keep_float),
                          seed=r.seed)
    ctx.log(f"{step('quantize')} precision plan: {len(plan.keep_float)} layers float, int8 share "
            f"{100 * plan.int8_mac_share:.0f}% of MACs, validation drop {plan.drop_pp:.2f} pp")
    return plan.to_dict()


def _estimated_latency(ctx: Any, model: Any) -> dict[str, LayerLatency]:
    """Per block, the device model's time of its kernels in float (fp16 where the device
    runs it) and in int8."""
    from edgekit.bench.layer_latency import block_of, layer_of
    from edgekit.bench.layers import named_onnx_records
    from edgekit.core.errors import EdgekitError
    from edgekit.devices.calibrated import as_precision, kernel_latency_s
    from edgekit.export.onnx import export_onnx
    from edgekit.quantization.plan import LayerLatency

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", input_shape=ctx.input_shape).path
        named = named_onnx_records(fp32)
    records = [record for _, record in named]
    try:
        float_s = kernel_latency_s(ctx.profile.name, as_precision(records, "fp16"))
        int8_s = kernel_latency_s(ctx.profile.name, as_precision(records, "int8"))
    except EdgekitError as exc:
        ctx.notes.append(f"precision plan: no per-layer estimate for {ctx.profile.name} "
                         f"({exc}); chosen on accuracy alone")
        return {}
    blocks: dict[str, list[float]] = {}
    for (name, _), f, q in zip(named, float_s, int8_s, strict=True):
        sums = blocks.setdefault(block_of(layer_of(name)), [0.0, 0.0])
        sums[0] += f * 1e6
        sums[1] += q * 1e6
    return {block: LayerLatency(round(f, 3), round(q, 3), "estimated")
            for block, (f, q) in blocks.items()}


def _measured_latency(ctx: Any, model: Any, quantized: Any) -> dict[str, LayerLatency]:
    """Per block, onnxruntime's kernel time of the fp32 file and the all-int8 PTQ file."""
    from edgekit.bench.layer_latency import compare_layers
    from edgekit.export.onnx import export_onnx
    from edgekit.quantization.plan import LayerLatency

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", input_shape=ctx.input_shape).path
        int8 = export_onnx(quantized, Path(tmp) / "int8.onnx",
                           input_shape=ctx.input_shape).path
        rows = compare_layers(fp32, int8, runs=PROFILE_RUNS, rounds=PROFILE_ROUNDS,
                              threads=ctx.recipe.bench_threads)
    return {str(row["layer"]): LayerLatency(float(row["fp32_us"]), float(row["int8_us"]),
                                            "measured")
            for row in rows if float(row["fp32_us"]) > 0 and float(row["int8_us"]) > 0}
