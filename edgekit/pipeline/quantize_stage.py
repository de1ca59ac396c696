"""The quantize stage of `edgekit compress`: int8 QAT or PTQ in the target runtime's scheme,
resumable, scored against the fp32 model on the test split."""

from __future__ import annotations

from typing import Any

from edgekit.pipeline.precision import choose_keep_float
from edgekit.pipeline.resume import checkpoint_path, claim_stage, stage_key, write_stage
from edgekit.pipeline.stages import Context, scores_top5, test_outputs
from edgekit.pipeline.steps import step
from edgekit.training import distributed


def quantize_key(ctx: Context, mode: str, keep_float: tuple[str, ...] = ()) -> str:
    """What the quantize stage's int8 model depends on, hashed (its resume key)."""
    r = ctx.recipe
    return stage_key(
        "quantize", ctx.stage_keys.get("prune", ctx.stage_keys["train"]), ctx.quant_target,
        mode, r.qat_epochs, r.qat_lr, r.calibration_size, r.batch_size, r.seed,
        r.ptq_rounding, r.ptq_bias_correction, r.ptq_ranges if mode == "ptq" else None,
        *((keep_float,) if keep_float else ()))


def quantize(ctx: Context, model: Any, *, after_step: Any = None) -> Any | None:
    """int8 QAT (or PTQ) for the target's runtime, resumable from its epoch checkpoint;
    ``after_step(qat_model)`` runs after every QAT step (2:4 masks stay enforced)."""
    from edgekit.quantization import QuantConfig
    from edgekit.quantization import quantize as quantize_model
    from edgekit.quantization.types import DEFAULT_DISTILL
    from edgekit.training import classes_of, score
    from edgekit.training.compare import paired_difference

    r = ctx.recipe
    if r.precision != "int8" or ctx.lowbit == "lce":
        what = "binary net (LCE)" if ctx.lowbit == "lce" else f"precision {r.precision}"
        ctx.log(f"{step('quantize')} {what}: no quantization")
        return None
    mode = "qat" if r.qat_epochs > 0 else "ptq"
    keep_float = choose_keep_float(ctx, model)
    key = ctx.stage_keys["quantize"] = quantize_key(ctx, mode, keep_float)
    previous = distributed.from_main(lambda: claim_stage(ctx.out, "quantize", key))
    checkpoint = checkpoint_path(ctx.out, "quantize")
    if previous is not None and checkpoint.is_file():
        ctx.reused.append("QAT epochs")
    config = QuantConfig(target=ctx.quant_target, mode=mode, epochs=r.qat_epochs,
                         lr=r.qat_lr, calibration_size=r.calibration_size,
                         batch_size=r.batch_size, seed=r.seed, checkpoint=str(checkpoint),
                         # no labels: QAT learns the fp32 model's outputs alone
                         distill=1.0 if not ctx.train.labelled else DEFAULT_DISTILL,
                         rounding=r.ptq_rounding, bias_correction=r.ptq_bias_correction,
                         keep_float=keep_float,
                         ranges=r.ptq_ranges if mode == "ptq" else None)
    ctx.log(f"{step('quantize')} int8 {mode.upper()} with the {config.target} scheme")
    qm = quantize_model(model, config, train_data=ctx.train, val_data=ctx.val,
                        after_step=after_step)
    ranks = distributed.world()[1]
    if ranks > 1:  # DDP keeps them equal; a check that can fail says so on every run
        same = distributed.same_on_every_rank(distributed.state_digest(qm.model))
        ctx.metrics["distributed"] = {"processes": ranks, "int8_state_identical": same}
        if not same:
            ctx.notes.append(f"the {ranks} processes ended QAT with different weights or "
                             "quantizer scales; rank 0's were exported")
    int8_predictions = classes_of(test_outputs(ctx, "int8", qm), ctx.test)
    ctx.metrics["int8_trained"] = score(int8_predictions, ctx.test)
    if not ctx.test.labelled:
        from edgekit.training.evaluate import top5_agreement

        ctx.metrics["int8_trained"]["top5_agreement"] = top5_agreement(
            test_outputs(ctx, "int8", qm), test_outputs(ctx, "fp32", model))
    elif scores_top5(ctx):
        from edgekit.training.evaluate import top5_accuracy

        ctx.metrics["int8_trained"]["top5_accuracy"] = top5_accuracy(
            test_outputs(ctx, "int8", qm), ctx.test.y)
    if qm.rounding:
        ctx.metrics["weight_rounding"] = qm.rounding
    if qm.ranges:
        ctx.metrics["activation_ranges"] = qm.ranges
    # is the int8 model's loss (or gain) more than test-set noise?
    ctx.metrics["int8_minus_fp32"] = paired_difference(
        int8_predictions, classes_of(test_outputs(ctx, "fp32", model), ctx.test), ctx.test.y,
        task=ctx.test.task, num_classes=ctx.test.num_classes).to_dict()
    ctx.metrics["quant_scheme"] = qm.scheme
    fit = qm.history
    if fit is not None and fit.start_metric is not None:  # QAT epochs, chosen on validation
        ctx.metrics["qat_validation"] = {
            "metric": fit.metric, "start": fit.start_metric, "kept_epoch": fit.best_epoch,
            "epochs": [h[f"val_{fit.metric}"] for h in fit.history]}
    if distributed.is_main():
        write_stage(ctx.out, "quantize", {"key": key, "done": True})
    return qm
