"""`edgekit compress`: train (or load) → int8 QAT for the target → export → verify → bench → report.

Each stage takes explicit values and returns explicit values; the output directory is
staged in a temporary sibling and renamed into place only when every stage succeeded, so
a failed run leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from edgekit.core.errors import InvalidInputError, VerificationError
from edgekit.core.io import atomic_path, atomic_write_json, atomic_write_text, sha256_file
from edgekit.devices.roofline import Estimate
from edgekit.export.verify import VerifyReport
from edgekit.pipeline.recipe import CompressRecipe

if TYPE_CHECKING:
    import torch

Log = Callable[[str], None]
T = TypeVar("T")


@dataclass
class CompressResult:
    """What a compress run produced: where, the verified file, and what was measured.

    ``deployed`` is the file the target runs (int8 unless the recipe asked for fp32),
    ``verification`` its parity with the trained model in its runtime on this host,
    ``benchmarks`` the host measurements per precision (``edgekit bench`` records),
    ``estimates`` the roofline figures on the target's profile. Paths are in ``out_dir``.
    """

    out_dir: Path
    target: str
    runtime: str
    artifacts: dict[str, Path]
    deployed: Path
    verification: VerifyReport
    benchmarks: dict[str, dict[str, Any]]
    estimates: list[Estimate]
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
    **overrides: Any,
) -> CompressResult:
    """Compress ``model`` for ``target`` and write deployable files plus a report to ``out``.

    ``model``: a zoo name, the user's factory (``"path/to/file.py:factory"`` or
    ``"package.module:factory"``, called with ``model_args=``; this imports and runs that
    code), or a ``torch.nn.Module`` (copied, never re-created by name; trained when
    ``epochs > 0``). ``data``: an embedded set's name, an image folder, ``.npy``/``.npz``,
    an ``ArrayDataset``, a torch ``Dataset`` of ``(x, y)`` or a ``DataLoader``.
    ``recipe`` is a :class:`CompressRecipe`, a TOML path, or None for the defaults;
    keyword ``overrides`` (``weights=``, ``epochs=``, ``qat_epochs=``, ``input_size=``,
    ``mean=``, ``std=`` ...) change single recipe fields. Raises an
    :class:`~edgekit.core.errors.EdgekitError` on bad input, before anything is written.
    """
    from edgekit.devices import get_profile

    log = log or _stderr
    if isinstance(recipe, (str, Path)):
        recipe = CompressRecipe.from_toml(recipe)
    module, model_name = _model_argument(model)
    data_given = data is not None and not isinstance(data, (str, os.PathLike))
    data_name = f"<{type(data).__name__}>" if data_given else data and os.fspath(data)
    recipe = (recipe or CompressRecipe()).replace(model=model_name, data=data_name,
                                                  **overrides)
    profile = get_profile(target)
    out_dir = Path(out) if out is not None else _free_dir(Path("runs") / f"compress-{profile.name}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"{out_dir} exists and is not empty (pass overwrite=True / --overwrite)"
        )

    started = time.time()
    with atomic_path(out_dir) as staging:
        staging.mkdir()
        from edgekit.pipeline import measure, stages

        ctx = stages.prepare(recipe, profile, staging, log,
                             data=data if data_given else None, module=module)
        fp32 = stages.build_model(ctx, module)
        stages.preflight(ctx, fp32)
        fp32 = stages.train_or_load(ctx, fp32)
        quantized = stages.quantize(ctx, fp32)
        artifacts = stages.export(ctx, fp32, quantized)
        verification = measure.verify(ctx, quantized, fp32, artifacts)
        bench = measure.bench(ctx, artifacts)
        estimates = measure.target_estimates(ctx, fp32)
        metrics = measure.collect_metrics(ctx, verification, bench, artifacts, estimates)
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
    return CompressResult(
        out_dir, profile.name, profile.runtime, final,
        deployed=final["int8" if "int8" in final else "fp32"],
        verification=_typed(VerifyReport, verification),
        benchmarks=bench, estimates=[_typed(Estimate, e) for e in estimates],
        metrics=metrics, manifest=manifest)


def _typed(cls: type[T], record: dict[str, Any]) -> T:
    """The dataclass ``cls`` from a record holding its fields (and maybe more)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in record.items() if k in names})


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
