"""The pruning stage of `edgekit compress` (``--prune channel:R``, ``--sparsity 2:4``).

It runs after fp32 training and before QAT: channels are removed on torch-pruning's
dependency graph (``edgekit.pruning``), then the thinner model is fine-tuned with
distillation from the trained dense one; 2:4 masks are made on the result, fine-tuned with
the masks enforced, and kept enforced through QAT. The dense model stays: it is the
teacher, and the report's baseline (its fp32 file is exported and timed beside the pruned
ones). Like training, the stage keeps a record an unfinished run reuses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.io import sha256_file
from edgekit.pipeline.resume import claim_stage, stage_key, toolchain, write_stage
from edgekit.pipeline.stages import Context, test_outputs
from edgekit.pipeline.steps import step
from edgekit.training import distributed

if TYPE_CHECKING:
    import torch

    from edgekit.pruning import SparsityResult

PRUNED_FILE = "pruned/model.safetensors"


@dataclass
class Pruned:
    """What the later stages need from pruning."""

    dense: torch.nn.Module  # the trained dense model: teacher and baseline
    sparsity: SparsityResult | None  # the 2:4 masks QAT keeps enforced

    def mask_enforcer(self) -> Any:
        """The QAT after-step hook that keeps the 2:4 masks; None without them."""
        from edgekit.pruning import mask_enforcer

        return mask_enforcer(self.sparsity) if self.sparsity is not None else None


def prune(ctx: Context, model: torch.nn.Module) -> tuple[torch.nn.Module, Pruned | None]:
    """The pruned, fine-tuned model (or ``model`` itself when the recipe asks for none)."""
    r = ctx.recipe
    if r.prune is None and r.sparsity is None:
        return model, None
    from edgekit.training import classes_of, score

    dense = copy.deepcopy(model).eval()
    key = ctx.stage_keys["prune"] = stage_key(
        "prune", ctx.stage_keys["train"], toolchain(), r.prune, r.sparsity, r.prune_epochs,
        r.prune_lr, r.prune_distill, r.batch_size, r.seed, distributed.world()[1])
    done = distributed.from_main(lambda: claim_stage(ctx.out, "prune", key))
    path = ctx.out / PRUNED_FILE
    reused = done is not None and done.get("done") and path.is_file() \
        and sha256_file(path) == done["sha256"]
    if reused:
        ctx.log(f"{step('model')} pruned model: reused from the unfinished run (stage record "
                "matches)")
        ctx.reused.append("pruning")
        model, sparsity = _reload(ctx, dense, path)
        summary = done["summary"]
    else:
        model, sparsity, summary = _prune_and_finetune(ctx, model, dense)
    ctx.metrics["fp32_dense"] = ctx.metrics["fp32"]
    ctx.outputs.pop("fp32", None)  # the dense model's: from here "fp32" is the pruned one
    ctx.metrics["fp32"] = summary["pruned_fp32"] if reused else score(
        classes_of(test_outputs(ctx, "fp32", model), ctx.test), ctx.test)
    summary["pruned_fp32"] = ctx.metrics["fp32"]
    ctx.metrics["pruning"] = summary
    if distributed.is_main() and not reused:
        from edgekit.pruning import save_pruned

        path.parent.mkdir(exist_ok=True)
        save_pruned(model, path, base_config=getattr(dense, "edgekit_config", None))
        write_stage(ctx.out, "prune", {"key": key, "done": True, "sha256": sha256_file(path),
                                       "summary": summary})
    return model.eval(), Pruned(dense, sparsity)


def _prune_and_finetune(ctx: Context, model: torch.nn.Module, dense: torch.nn.Module
                        ) -> tuple[torch.nn.Module, SparsityResult | None, dict[str, Any]]:
    from edgekit.models import count_macs, count_params
    from edgekit.pruning import (
        ChannelPruneConfig,
        SparsityConfig,
        prune_and_finetune,
        sparse_finetune,
    )
    from edgekit.training import TrainConfig

    r = ctx.recipe
    train_config = TrainConfig(epochs=r.prune_epochs, lr=r.prune_lr, batch_size=r.batch_size,
                               seed=r.seed, sync_batchnorm=r.sync_batchnorm)
    summary: dict[str, Any] = {"dense": _size(dense, ctx, count_macs, count_params)}
    example = _example(ctx)
    if r.prune is not None:
        config = ChannelPruneConfig.parse(r.prune, epochs_per_step=r.prune_epochs,
                                          distill=r.prune_distill)
        ctx.log(f"{step('model')} channel pruning to {config.keep_macs:.0%} of the MACs, then "
                f"{r.prune_epochs} fine-tuning epoch(s) distilled from the dense model")
        result = prune_and_finetune(model, ctx.train, config, train_config=train_config,
                                    val_data=ctx.val, teacher=dense, example_input=example)
        summary["channel"] = result.to_dict()
        ctx.log(f"      {result.summary()}")
    sparsity = None
    if r.sparsity is not None:
        ctx.log(f"{step('model')} 2:4 sparsity, then {r.prune_epochs} fine-tuning epoch(s) "
                "with the masks enforced")
        sparsity = sparse_finetune(model, ctx.train, SparsityConfig.parse(r.sparsity),
                                   train_config=train_config, val_data=ctx.val,
                                   teacher=dense, example_input=example)
        summary["sparsity"] = sparsity.to_dict()
    summary["pruned"] = _size(model, ctx, count_macs, count_params)
    return model, sparsity, summary


def _reload(ctx: Context, dense: torch.nn.Module, path: Path
            ) -> tuple[torch.nn.Module, SparsityResult | None]:
    from edgekit.pruning import SparsityConfig, load_pruned, recover_24

    model = load_pruned(path, base=copy.deepcopy(dense))
    sparsity = None
    if ctx.recipe.sparsity is not None:
        sparsity = recover_24(model, SparsityConfig.parse(ctx.recipe.sparsity),
                              example_input=_example(ctx))
    return model, sparsity


def _example(ctx: Context) -> torch.Tensor:
    import torch

    return torch.zeros((1, *ctx.input_shape))


def _size(model: Any, ctx: Context, count_macs: Any, count_params: Any) -> dict[str, int]:
    c, h = ctx.input_shape[0], ctx.input_shape[-1]
    return {"macs": int(count_macs(model, input_size=h, in_channels=c)),
            "params": int(count_params(model))}



def export_dense(ctx: Context, dense: torch.nn.Module) -> Path:
    """The dense model's fp32 file, for the side-by-side comparison (not in the bundle)."""
    folder = ctx.out / "dense"
    folder.mkdir(exist_ok=True)
    meta = {"device": ctx.profile.name, "recipe": ctx.recipe.to_dict(), "pruned": False}
    if ctx.profile.runtime == "tflite":
        import numpy as np

        from edgekit.export.tflite import export_tflite

        calib = np.asarray(ctx.train.x[: min(64, len(ctx.train))])
        return export_tflite(dense, folder / "model_fp32.tflite", calibration=calib,
                             metadata=meta).path
    from edgekit.export.onnx import export_onnx

    return export_onnx(dense, folder / "model_fp32.onnx", input_shape=ctx.input_shape,
                       metadata=meta).path


def bench_dense(ctx: Context, path: Path) -> dict[str, Any]:
    """The dense fp32 file timed as the pruned ones are (same runs, threads)."""
    from edgekit.bench.api import BenchConfig, benchmark
    from edgekit.bench.timing import TimingConfig

    config = BenchConfig(threads=ctx.recipe.bench_threads, label="fp32 dense",
                         precision="fp32", timing=TimingConfig(runs=ctx.recipe.bench_runs),
                         power="none")
    return benchmark(path, config)


def target_estimates(ctx: Context, files: dict[str, Path]) -> dict[str, Any]:
    """The calibrated estimate on the target of the dense and pruned fp32 files
    (``edgekit.bench.compare``); the deployed int8 file's is in the report's device table."""
    from edgekit.bench.compare import compare_devices
    from edgekit.core.errors import EdgekitError

    out: dict[str, Any] = {}
    for key in ("fp32_dense", "fp32"):
        if key in files:
            try:
                out[key] = compare_devices(files[key], devices=[ctx.profile.name])[0]
            except EdgekitError as exc:
                out[key] = {"kind": "unavailable", "basis": str(exc)}
    return out


def check_file(ctx: Context, path: Path) -> None:
    """Whether the exported file's weights still hold the 2:4 pattern (after int8 QAT)."""
    from edgekit.pruning import SparsityConfig, check_24_onnx, pattern_ok

    if path.suffix != ".onnx":
        return
    rows = check_24_onnx(path, SparsityConfig.parse(ctx.recipe.sparsity))
    claimed = set(ctx.metrics["pruning"]["sparsity"]["sparse_layers"])
    ctx.metrics["pruning"]["sparsity"]["file"] = {
        "name": path.name, "pattern_ok": pattern_ok(rows),
        "conforming": sum(r.conforms for r in rows if r.eligible),
        "eligible": sum(r.eligible for r in rows), "claimed": len(claimed)}
