"""`edgekit compress`: train (or load) → int8 QAT for the target → export → verify → bench → report.

Each stage takes explicit values and returns explicit values; the output directory is
staged in a temporary sibling and renamed into place only when every stage succeeded, so
a failed run leaves nothing half-written.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.errors import InvalidInputError, VerificationError
from edgekit.core.io import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from edgekit.pipeline.recipe import CompressRecipe

Log = Callable[[str], None]


@dataclass
class CompressResult:
    """What a compress run produced: where, and the figures it measured."""

    out_dir: Path
    target: str
    runtime: str
    artifacts: dict[str, Path]
    metrics: dict[str, Any]
    manifest: dict[str, Any] = field(repr=False)


def compress(
    model: str | None = None,
    target: str = "jetson",
    *,
    recipe: CompressRecipe | str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    log: Log | None = None,
    **overrides: Any,
) -> CompressResult:
    """Compress ``model`` for ``target`` and write deployable files plus a report to ``out``.

    ``recipe`` is a :class:`CompressRecipe`, a TOML path, or None for the defaults;
    keyword ``overrides`` (``data=``, ``weights=``, ``epochs=``, ``qat_epochs=`` ...) change
    single recipe fields. Raises an :class:`~edgekit.core.errors.EdgekitError` on bad input.
    """
    from edgekit.devices import get_profile

    log = log or _stderr
    if isinstance(recipe, (str, Path)):
        recipe = CompressRecipe.from_toml(recipe)
    recipe = (recipe or CompressRecipe()).replace(model=model, **overrides)
    profile = get_profile(target)
    out_dir = Path(out) if out is not None else _free_dir(Path("runs") / f"compress-{profile.name}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite)"
        )

    started = time.time()
    with atomic_path(out_dir) as staging:
        staging.mkdir()
        from edgekit.pipeline import stages

        ctx = stages.prepare(recipe, profile, staging, log)
        fp32 = stages.train_or_load(ctx)
        quantized = stages.quantize(ctx, fp32)
        artifacts = stages.export(ctx, fp32, quantized)
        verification = stages.verify(ctx, quantized, fp32, artifacts)
        bench = stages.bench(ctx, artifacts)
        estimates = stages.target_estimates(ctx, fp32)
        metrics = stages.collect_metrics(ctx, verification, bench, artifacts, estimates)
        manifest = _manifest(recipe, profile, ctx, artifacts, metrics, started, staging)
        atomic_write_json(staging / "manifest.json", manifest)
        from edgekit.pipeline.report import render_report

        atomic_write_text(staging / "report.md", render_report(manifest))
    final = {name: out_dir / path.relative_to(staging) for name, path in artifacts.items()}
    if not verification.get("passed", True):
        raise VerificationError(f"the deployed file does not match the trained model "
                                f"(agreement {verification['agreement']:.4f}); files and "
                                f"report kept in {out_dir}")
    log(f"done in {time.time() - started:.0f} s: {out_dir / 'report.md'}")
    return CompressResult(out_dir, profile.name, profile.runtime, final, metrics, manifest)


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
    print(message, file=sys.stderr, flush=True)
