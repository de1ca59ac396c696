"""`edgekit compress`: train (or load) → int8 QAT for the target → export → verify → bench → report.

Each stage takes explicit values and returns explicit values; the output directory is
staged in a temporary sibling and renamed into place only when every stage succeeded, so
a failed run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgekit.core.console import console, third_party_to
from edgekit.core.errors import CheckpointError, DataError, InvalidInputError, VerificationError
from edgekit.core.io import (
    atomic_write_json,
    atomic_write_text,
    check_writable,
    sha256_file,
)
from edgekit.devices.calibrated import LayerEstimate
from edgekit.devices.roofline import RooflineBound
from edgekit.export.verify import VerifyReport
from edgekit.pipeline.preflight import check_before_work
from edgekit.pipeline.recipe import CompressRecipe
from edgekit.pipeline.resume import (
    claim_stage,
    files_record,
    finish,
    intact_files,
    mark_stage,
    open_partial,
    resumed_record,
    stage_key,
    toolchain,
    unfinished_default,
    worth_keeping,
    write_stage,
)
from edgekit.pipeline.stages import deployed_key
from edgekit.training import distributed

if TYPE_CHECKING:
    import torch

Log = Callable[[str], None]
T = TypeVar("T")
THIRD_PARTY_LOG = "third_party.log"


@dataclass
class CompressResult:
    """What a compress run produced: where, the verified file, and what was measured.

    ``deployed`` is the file the target runs (int8 unless the recipe asked for fp32),
    ``bundle`` the folder the board needs (``edgekit deploy`` copies it),
    ``verification`` its parity with the trained model in its runtime on this host,
    ``benchmarks`` the host measurements per precision (``edgekit bench`` records),
    ``estimates`` the calibrated latency estimates of the deployed file (target first, then
    the GPU), each with its interval and points, as the report shows them: only devices with
    published points of their own (the report names a target without them 'unmeasured' and
    gives it no figure); ``roofline_bounds`` the roofline lower bounds on the target per
    precision. Paths are in ``out_dir``.
    """

    out_dir: Path
    target: str
    runtime: str
    artifacts: dict[str, Path]
    deployed: Path
    bundle: Path  # the folder to copy to the board (DEVICE.md inside says what to run)
    verification: VerifyReport
    benchmarks: dict[str, dict[str, Any]]
    estimates: list[LayerEstimate]
    roofline_bounds: list[RooflineBound]
    metrics: dict[str, Any]
    manifest: dict[str, Any] = field(repr=False)


def compress(
    model: str | torch.nn.Module | None = None,
    target: str = "jetson",
    *,
    data: Any = None,
    recipe: CompressRecipe | str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    log: Log | None = None,
    third_party_log: bool = False,
    resume: bool = False,
    **overrides: Any,
) -> CompressResult | None:
    """Compress ``model`` for ``target`` and write deployable files plus a report to ``out``.

    ``model``: a zoo name, the user's factory (``"path/to/file.py:factory"`` or
    ``"package.module:factory"``, called with ``model_args=``; this imports and runs that
    code), or a ``torch.nn.Module`` (copied, never re-created by name; taken with the
    weights it holds, and trained further only when ``epochs > 0``). ``data``: an
    embedded set's name, an image folder, ``.npy``/``.npz``,
    an ``ArrayDataset``, a torch ``Dataset`` of ``(x, y)`` or a ``DataLoader``.
    ``recipe`` is a :class:`CompressRecipe`, a TOML path, or None for the defaults;
    keyword ``overrides`` (``weights=``, ``epochs=``, ``qat_epochs=``, ``input_size=``,
    ``mean=``, ``std=`` ...) change single recipe fields. Raises an
    :class:`~edgekit.core.errors.EdgekitError` on bad input, before anything is written.
    ``third_party_log``: what other libraries print (warnings, C++ logs, converter chatter)
    goes to ``third_party.log`` in the run folder instead of the terminal (the CLI's
    default; ``--verbose`` turns it off). ``resume``: continue the unfinished run of ``out``
    (by default the first unfinished ``runs/compress-<profile>[-N]``), reusing its fp32
    training and QAT epochs where their records still match (``edgekit.pipeline.resume``).
    Started by torchrun (``torchrun --nproc_per_node N -m edgekit compress ...``), every
    process trains (fp32, QAT) under DistributedDataParallel and rank 0 alone writes,
    exports, verifies and benchmarks; the other ranks return None.
    """
    from edgekit.devices import get_profile

    log = log or _stderr
    if isinstance(recipe, (str, Path)):
        recipe = CompressRecipe.from_toml(recipe)
    module, model_name = _model_argument(model)
    data_given = data is not None and not isinstance(data, (str, os.PathLike))
    data_name = f"<{type(data).__name__}>" if data_given else data and os.fspath(data)
    named = {k: v for k, v in (("model", model_name), ("data", data_name)) if v is not None}
    recipe = (recipe or CompressRecipe()).replace(**named, **overrides)
    recipe.check_start(module_given=module is not None)
    profile = get_profile(target)
    recipe = check_before_work(recipe, profile, out)  # bad input: one line, before any work
    if recipe.sparsity is not None and not profile.sparse_24:
        raise InvalidInputError(
            f"2:4 sparsity pays only on TensorRT with sparse tensor cores (Ampere and newer "
            f"GPUs, Jetson Orin); target {profile.name} ({profile.runtime}) would run it "
            "dense: use prune='channel:R' (--prune) there")
    if (recipe.max_drop is not None or recipe.keep_float) and profile.runtime == "tflite":
        raise InvalidInputError(f"a precision plan (max_drop, keep_float) is for TensorRT and "
                                f"onnxruntime targets; {profile.name} runs TFLite, whose "
                                "file is full-integer")
    distributed.init_from_env()  # under torchrun: one process per rank, rank 0 writes
    distributed.check_same(json.dumps([recipe.to_dict(), profile.name], sort_keys=True,
                                      default=str), "recipe")
    main = distributed.is_main()
    if not main:
        log = _silent
    out_dir, staging, resuming = distributed.from_main(
        lambda: _open_output(out, profile.name, recipe, resume=resume, overwrite=overwrite))
    if resuming:
        log(f"resuming the unfinished run in {staging}")
    started = time.time()
    previous_threads = _training_threads(recipe.threads)
    try:
        quiet = third_party_to(staging / THIRD_PARTY_LOG) if third_party_log \
            else contextlib.nullcontext()
        with quiet:
            done = _run_stages(recipe, profile, staging, log, started,
                               data=data if data_given else None, module=module)
    except BaseException as exc:
        # bad data or weights fail a resume the same way: no unfinished run claims otherwise
        if main and worth_keeping(staging) and not isinstance(exc, (DataError, CheckpointError)):
            log(f"unfinished run kept in {staging}; the same command with --resume "
                "(resume=True) continues it")
        elif main:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _set_torch_threads(previous_threads)
    if done is None:  # a rank other than 0: its part (training, QAT) is done
        return None
    finish(staging, out_dir)
    final = {name: out_dir / path.relative_to(staging) for name, path in done.artifacts.items()}
    failed = next((r for r in (done.verification, done.bundle_check) if not r["passed"]), None)
    if failed is not None:
        raise VerificationError(f"the deployed file does not match the trained model "
                                f"(agreement {failed['agreement']:.4f}); files and "
                                f"report kept in {out_dir}")
    reused = f" (reused: {', '.join(done.reused)})" if done.reused else ""
    log(f"done in {time.time() - started:.0f} s{reused}: {out_dir / 'report.md'}")
    return CompressResult(
        out_dir, profile.name, profile.runtime, final,
        deployed=final[deployed_key(final)], bundle=out_dir / "bundle",
        verification=_typed(VerifyReport, done.verification), benchmarks=done.bench,
        estimates=_calibrated(done.manifest["metrics"]["device_estimates"]),
        roofline_bounds=[_typed(RooflineBound, e) for e in done.roofline_bounds],
        metrics=done.manifest["metrics"], manifest=done.manifest)


@dataclass
class _StageOutputs:
    manifest: dict[str, Any]
    artifacts: dict[str, Path]  # paths under the staging folder
    verification: dict[str, Any]  # against the torch model, on this host
    bundle_check: dict[str, Any]  # the board's check (reference.npz), on this host
    bench: dict[str, Any]
    roofline_bounds: list[dict[str, Any]]
    reused: list[str]  # what came from an unfinished run


def _run_stages(recipe: CompressRecipe, profile: Any, staging: Path, log: Log, started: float,
                *, data: Any, module: Any) -> _StageOutputs | None:
    """Every stage, in order, writing into ``staging``; None on ranks other than 0."""
    from edgekit.pipeline import measure, prune_stage, quantize_stage, stages
    from edgekit.pipeline.bundle import write_bundle
    from edgekit.pipeline.labels import label_by_model
    from edgekit.pipeline.report import render_report

    ctx = stages.prepare(recipe, profile, staging, log, data=data, module=module)
    fp32 = stages.build_model(ctx, module)
    label_by_model(ctx, fp32)  # data without labels: the fp32 model's answers stand in
    stages.preflight(ctx, fp32)
    recipe = ctx.recipe  # a binary or ternary net's deployment settles QAT and rounding
    if distributed.is_main():
        mark_stage(staging, "fp32 training")
    fp32 = stages.train_or_load(ctx, fp32)
    if distributed.is_main() and (recipe.prune or recipe.sparsity):
        mark_stage(staging, "pruning")
    fp32, pruned = prune_stage.prune(ctx, fp32)
    if ctx.lowbit:  # standard layers holding the trained low-bit weights: the same outputs
        from edgekit.lowbit import materialize

        fp32 = materialize(fp32)
    if distributed.is_main():
        mark_stage(staging, "int8 quantization")
    quantized = quantize_stage.quantize(ctx, fp32, after_step=pruned and pruned.mask_enforcer())
    if not distributed.is_main():
        return None  # export, verification, benchmark and report are rank 0's
    mark_stage(staging, "export, verify and benchmark")
    # each keyed on the export: the files embed the whole recipe in their metadata
    export_key = stage_key("export", ctx.stage_keys.get("quantize", ctx.stage_keys["train"]),
                           ctx.profile.name, recipe.to_dict(), toolchain())

    def export() -> dict[str, Path]:
        files = stages.export(ctx, fp32, quantized)
        if pruned is not None:  # the baseline of the report's dense vs pruned table
            files["fp32_dense"] = prune_stage.export_dense(ctx, pruned.dense)
        return {**files, **write_bundle(ctx, quantized, fp32, files)}

    artifacts = _staged(ctx, "export", export_key, export, files=True)
    if pruned is not None and pruned.sparsity is not None:
        prune_stage.check_file(ctx, artifacts[stages.deployed_key(artifacts)])
    files_key = stage_key(files_record(staging, artifacts))  # the bytes verified and timed
    with ThreadPoolExecutor(max_workers=1) as beside:  # while verify runs; not the benchmark
        device_rows = beside.submit(measure.device_estimates, ctx, artifacts)
        verification, bundle_check = _staged(
            ctx, "verify", stage_key("verify", files_key),
            lambda: measure.verify_and_check_bundle(ctx, quantized, fp32, artifacts))
        device_rows = device_rows.result()
    bench = _staged(ctx, "bench", stage_key("bench", files_key, platform.node()),
                    lambda: measure.bench(ctx, artifacts))
    if pruned is not None:
        ctx.metrics["pruning"]["dense_bench"] = _staged(
            ctx, "bench_dense", stage_key("bench_dense", files_key, platform.node()),
            lambda: prune_stage.bench_dense(ctx, artifacts["fp32_dense"]))
        ctx.metrics["pruning"]["target_estimates"] = prune_stage.target_estimates(
            ctx, artifacts)
    bounds = measure.roofline_bounds(ctx, fp32)
    metrics = measure.collect_metrics(ctx, verification, bench, artifacts, bundle_check,
                                      device_rows)
    manifest = _manifest(recipe, profile, ctx, artifacts, metrics, started, staging)
    atomic_write_json(staging / "manifest.json", manifest)
    atomic_write_text(staging / "report.md", render_report(manifest))
    return _StageOutputs(manifest, artifacts, verification, bundle_check, bench, bounds,
                         ctx.reused)


def _staged(ctx: Any, stage: str, key: str, make: Callable[[], Any], *,
            files: bool = False) -> Any:
    """``make()``, or what it gave an unfinished run when that run's record of ``stage``
    matches ``key`` (with ``files``: a dict of paths, reused only when each is intact).
    The notes the stage added to the report are kept with it."""
    record = claim_stage(ctx.out, stage, key)
    if record is not None and record.get("done"):
        value = intact_files(ctx.out, record["value"]) if files else record["value"]
        if value is not None:
            ctx.log(f"{stage}: reused from the unfinished run (stage record matches)")
            ctx.notes.extend(record["notes"])
            ctx.reused.append(stage)
            return value
    notes_before = len(ctx.notes)
    value = make()
    write_stage(ctx.out, stage, {
        "key": key, "done": True, "notes": ctx.notes[notes_before:],
        "value": files_record(ctx.out, value) if files else value})
    return value


def _typed(cls: type[T], record: dict[str, Any]) -> T:
    """The dataclass ``cls`` from a record holding its fields (and maybe more)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in record.items() if k in names})


def _calibrated(block: dict[str, Any]) -> list[LayerEstimate]:
    """The report's estimated device rows (``measure.device_estimates``) as typed values."""
    return [LayerEstimate(r["device"], r["precision"], r["latency_ms"], *r["interval_ms"],
                          points=r["points"], source=r.get("source", ""),
                          loo_median_ratio_error=r["loo_median_ratio_error"])
            for r in block.get("rows", []) if r["kind"] == "estimated"]


def _model_argument(model: Any) -> tuple[Any, str | None]:
    """(the user's module or None, the recipe's model name) for ``compress(model)``."""
    if model is None or isinstance(model, str):
        return None, model
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a zoo name, 'file.py:factory' or a "
                                f"torch.nn.Module, not a {type(model).__name__}")
    cls = type(model)
    return model, f"{cls.__module__}.{cls.__qualname__}"


def _open_output(out: str | Path | None, profile: str, recipe: CompressRecipe, *,
                 resume: bool, overwrite: bool) -> tuple[Path, Path, bool]:
    """(output folder, the unfinished-run folder to write into, whether it is resumed)."""
    out_dir = _out_dir(out, profile, resume=resume)
    if not resume and out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite)"
        )
    check_writable(out_dir, kind="dir")
    identity = {"model": recipe.model, "target": profile}
    staging, resuming = open_partial(out_dir, identity, resume=resume, overwrite=overwrite)
    return out_dir, staging, resuming


def _training_threads(requested: int | None) -> int:
    """Set torch's threads for training and QAT: ``requested``, or the CPUs this process
    may use shared among the processes torchrun started on this machine; the number
    before, to put back."""
    import torch

    from edgekit.core.threads import available_cpus, training_threads

    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    count = training_threads(requested) if requested else max(1, available_cpus() // local)
    previous = torch.get_num_threads()
    _set_torch_threads(count)
    return previous


def _set_torch_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


def _silent(message: str) -> None:
    pass


def _out_dir(out: str | Path | None, profile: str, *, resume: bool) -> Path:
    if out is not None:
        return Path(out)
    base = Path("runs") / f"compress-{profile}"
    if resume:
        found = unfinished_default(base)
        if found is None:
            raise InvalidInputError(f"no unfinished run for {profile} under runs/ to resume; "
                                    "pass --out DIR")
        return found
    return _free_dir(base)


def _free_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``... : a default output never replaces an earlier run."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _manifest(recipe, profile, ctx, artifacts, metrics, started, staging) -> dict[str, Any]:
    from edgekit import __version__

    return {
        "format": "edgekit-compress-manifest",
        "version": 1,
        "edgekit_version": __version__,
        "created_unix": started,
        "duration_s": round(time.time() - started, 1),
        "recipe": recipe.to_dict(),
        "target": {"profile": profile.name, "runtime": profile.runtime},
        "input": ctx.input_spec(),
        "toolchain": _toolchain_versions(),
        "host": {"machine": platform.machine(), "python": sys.version.split()[0],
                 "platform": platform.platform()},
        "artifacts": {
            name: {"path": str(path.relative_to(staging)), "bytes": path.stat().st_size,
                   "sha256": sha256_file(path)}
            for name, path in artifacts.items()
        },
        "metrics": metrics,
        "resumed": resumed_record(staging, ctx.reused),  # None: made in one go
    }


def _toolchain_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    dists = ("torch", "nncf", "onnx", "onnxruntime", "litert-torch", "ai-edge-litert", "tensorrt")
    for dist in dists:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _stderr(message: str) -> None:
    print(message, file=console(), flush=True)
