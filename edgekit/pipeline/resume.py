"""Unfinished runs: where a compress run is written until it succeeds, and what it can reuse.

A run is written into ``.<name>.partial`` beside its output folder and renamed into place
only when every stage succeeded. A run that stops after real work (killed, interrupted, a
crash) keeps that folder and says so; ``resume=True`` (``--resume``) continues it. The
expensive stages keep a record under ``stages/`` with the hash of everything they depend
on (the stage keys chain, so a changed recipe field invalidates exactly the stages
downstream of it) and epoch checkpoints under ``checkpoints/`` (``edgekit.training.
epoch_state``), so a run killed mid-QAT loses at most one epoch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import InvalidInputError
from edgekit.core.io import atomic_path, atomic_write_json, sha256_file

RUN_RECORD = "run.json"
STAGES = "stages"
CHECKPOINTS = "checkpoints"
_SAMPLED_ROWS = 32  # rows hashed from inputs too large (or too slow) to hash whole
_HASH_WHOLE_BYTES = 256 << 20


def partial_dir(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.partial")


def unfinished_default(base: Path) -> Path | None:
    """The first ``base``, ``base-2``... whose unfinished run exists (``--resume`` without
    ``--out``)."""
    candidate, n = base, 1
    while candidate.exists() or partial_dir(candidate).exists():
        if partial_dir(candidate).exists():
            return candidate
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return None


def open_partial(out_dir: Path, identity: dict[str, Any], *, resume: bool,
                 overwrite: bool) -> tuple[Path, bool]:
    """The folder to write the run into, and whether it continues an unfinished run."""
    partial = partial_dir(out_dir)
    if partial.exists():
        record = _read_record(partial)
        if resume:
            if record is None:
                raise InvalidInputError(f"{partial} holds no edgekit compress run to resume")
            theirs = {k: record.get(k) for k in identity}
            if theirs != identity:
                raise InvalidInputError(f"{partial} is an unfinished run of {theirs['model']} "
                                        f"for {theirs['target']}, not of {identity['model']} "
                                        f"for {identity['target']}")
            atomic_write_json(partial / RUN_RECORD, {**record, "resumed": True})
            return partial, True
        if not overwrite:
            stage = (record or {}).get("stage", "?")
            raise InvalidInputError(f"an unfinished run (stopped in stage {stage}) is in "
                                    f"{partial}: continue it with --resume (resume=True), or "
                                    "start again with --overwrite")
        shutil.rmtree(partial)
    elif resume:
        state = ("a finished run" if (out_dir / "manifest.json").is_file()
                 else "no edgekit run" if out_dir.exists() else "nothing")
        raise InvalidInputError(f"nothing to resume for {out_dir}: it holds {state} "
                                f"(an unfinished run would be in {partial})")
    partial.mkdir(parents=True)
    atomic_write_json(partial / RUN_RECORD, {"format": "edgekit-compress-partial", **identity,
                                             "stage": "prepare"})
    return partial, False


def _read_record(partial: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((partial / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("format") == "edgekit-compress-partial" else None


def resumed_record(partial: Path, reused: list[str]) -> dict[str, Any] | None:
    """For the manifest: None for a run made in one go, else what the resume reused."""
    record = _read_record(partial) or {}
    return {"reused": list(reused)} if record.get("resumed") else None


def mark_stage(partial: Path, stage: str) -> None:
    """Record the stage in progress (what the "unfinished run" message names)."""
    record = _read_record(partial) or {}
    atomic_write_json(partial / RUN_RECORD, {**record, "stage": stage})


def worth_keeping(partial: Path) -> bool:
    """Whether a stopped run did work a resume would reuse (else it is removed)."""
    return any((partial / d).is_dir() and any((partial / d).iterdir())
               for d in (STAGES, CHECKPOINTS))


def finish(partial: Path, out_dir: Path) -> None:
    """The run succeeded: drop the epoch checkpoints and rename it into place."""
    shutil.rmtree(partial / CHECKPOINTS, ignore_errors=True)
    (partial / RUN_RECORD).unlink(missing_ok=True)
    if out_dir.is_dir() and not out_dir.is_symlink():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)


def stage_key(*parts: Any) -> str:
    """The hash of what a stage depends on (JSON of ``parts``; earlier keys chain in)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_stage(partial: Path, stage: str, key: str) -> dict[str, Any] | None:
    """The stage's record when it was made with ``key``; a stale or torn one is removed,
    with the checkpoint it governs."""
    path = partial / STAGES / f"{stage}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = None
    if record is not None and record.get("key") == key:
        return record
    path.unlink(missing_ok=True)
    (partial / CHECKPOINTS / f"{stage}.pt").unlink(missing_ok=True)
    return None


def write_stage(partial: Path, stage: str, record: dict[str, Any]) -> None:
    atomic_write_json(partial / STAGES / f"{stage}.json", record)


def claim_stage(partial: Path, stage: str, key: str) -> dict[str, Any] | None:
    """The stage's record when it matches ``key`` (finished or not); a finished one is
    left as it is, otherwise a fresh "started" record replaces it (a stale one goes with
    its checkpoint). Rank 0 only."""
    record = read_stage(partial, stage, key)
    if record is not None and record.get("done"):
        return record
    write_stage(partial, stage, {"key": key, "done": False})
    return record


def files_record(partial: Path, files: dict[str, Path]) -> dict[str, list[str]]:
    """name → [path relative to the run, SHA-256]: what a stage wrote, to check on reuse."""
    return {name: [str(path.relative_to(partial)), sha256_file(path)]
            for name, path in files.items()}


def intact_files(partial: Path, files: dict[str, list[str]]) -> dict[str, Path] | None:
    """The recorded files when every one is still there with its SHA-256; else None."""
    found = {}
    for name, (relative, sha256) in files.items():
        path = partial / relative
        if not path.is_file() or sha256_file(path) != sha256:
            return None
        found[name] = path
    return found


def save_array(partial: Path, name: str, array: np.ndarray | None) -> dict[str, str]:
    """``array`` saved beside the checkpoints (gone when the run finishes), for a stage
    record: a resumed run loads it instead of computing it again."""
    if array is None:
        return {}
    path = partial / CHECKPOINTS / f"{name}.npy"
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    return {"array": str(path.relative_to(partial)), "array_sha256": sha256_file(path)}


def load_array(partial: Path, record: dict[str, Any]) -> np.ndarray | None:
    """The array ``save_array`` recorded, when its file is intact."""
    path = partial / record.get("array", "-")
    if "array" not in record or not path.is_file() or sha256_file(path) != record["array_sha256"]:
        return None
    return np.load(path, allow_pickle=False)


def checkpoint_path(partial: Path, stage: str) -> Path:
    path = partial / CHECKPOINTS / f"{stage}.pt"
    path.parent.mkdir(exist_ok=True)
    return path


def data_fingerprint(*splits: Any) -> str:
    """A hash of the data a run trains and tests on: sizes, every label, and the inputs
    (whole when small and in memory; else evenly spaced rows, decoded as training does)."""
    digest = hashlib.sha256()
    for split in splits:
        x, y = split.x, np.asarray(split.y)
        digest.update(json.dumps([len(split), list(x.shape[1:]), split.task]).encode())
        digest.update(np.ascontiguousarray(y).tobytes())
        if isinstance(x, np.ndarray) and not isinstance(x, np.memmap) \
                and x.nbytes <= _HASH_WHOLE_BYTES:
            digest.update(np.ascontiguousarray(x).tobytes())
        else:
            rows = np.unique(np.linspace(0, len(split) - 1, _SAMPLED_ROWS).astype(np.int64))
            digest.update(np.ascontiguousarray(x[rows]).tobytes())
    return digest.hexdigest()


def model_hash(model: Any) -> str:
    """The model's class and its starting weights and buffers, as one hash."""
    from edgekit.training.distributed import state_digest

    return stage_key(type(model).__qualname__, state_digest(model))


def toolchain() -> list[str]:
    """edgekit's and the training libraries' versions: a new one invalidates every stage."""
    from importlib import metadata

    from edgekit import __version__

    found = [__version__]
    for dist in ("torch", "nncf", "litert-torch", "torchao"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} -")
    return found
