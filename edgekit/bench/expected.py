"""``reference.npz``: what the trained model computed, so a board without torch can verify.

`edgekit compress` writes it into the deploy bundle: test inputs after preprocessing, the
trained model's outputs on them (one array per deployed precision), the labels, and a JSON
record naming each deployed file (SHA-256, which outputs it must reproduce, its output
quantization step and the onnxruntime kernels that stand in for its runtime).
``verify_expected`` runs a file in its runtime on those inputs and reports the same
figures as the workstation's verify. numpy + the runtime only; read without unpickling,
every array checked against the others before use.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import DataError, VerificationError
from edgekit.core.io import atomic_write_bytes, sha256_file
from edgekit.runtime.parity import (
    PARITY_THRESHOLD,
    VerifyReport,
    compare,
    onnx_kernels,
    output_step,
    require_file,
    run_deployed,
    runtime_of,
)

FORMAT = "edgekit-reference"
VERSION = 1


def write_reference(path: str | Path, inputs: np.ndarray, outputs: dict[str, np.ndarray],
                    labels: np.ndarray | None, record: dict[str, Any]) -> Path:
    """Write ``reference.npz``: ``outputs`` maps a precision ("int8", "fp32") to the trained
    model's outputs on ``inputs``; ``record`` holds "task", "files" and anything else."""
    arrays = {"inputs": np.ascontiguousarray(inputs, dtype=np.float32)}
    arrays.update({f"outputs_{k}": np.ascontiguousarray(v, dtype=np.float32)
                   for k, v in outputs.items()})
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    meta = {"format": FORMAT, "version": VERSION, **record}
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_reference(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, record) of a reference file, every shape checked against the inputs'."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"reference file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # one .npy array, not an archive
            raise DataError(f"{path.name} is a single .npy array, not an .npz reference")
        with data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # BadZipFile: a truncated archive, or a member whose CRC does not match
        raise DataError(f"cannot read {path.name} as an .npz reference: {exc}") from None
    meta = arrays.pop("meta", None)
    try:
        record = json.loads(str(meta)) if meta is not None and meta.ndim == 0 else None
    except ValueError:
        record = None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(f"{path.name} is not an edgekit reference file (no 'meta' record); "
                        "it is written by `edgekit compress` into the bundle")
    if record.get("version") != VERSION:
        raise DataError(f"{path.name} is reference format version {record.get('version')}; "
                        f"this edgekit reads version {VERSION}")
    _check_record(path, record)
    _check_arrays(path, arrays)
    return arrays, record


def _check_record(path: Path, record: dict[str, Any]) -> None:
    """The per-file entries verify_expected reads: a mapping of mappings, numeric steps."""
    files = record.get("files") or {}
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise DataError(f"{path.name}: meta 'files' must map file names to records")
    for name, entry in files.items():
        if not isinstance(entry.get("runtime", ""), str):
            raise DataError(f"{path.name}: runtime of {name} must be a name, "
                            f"got {entry['runtime']!r}")
        step = entry.get("output_step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                                 or not math.isfinite(step) or step <= 0):
            raise DataError(f"{path.name}: output_step of {name} must be a positive number, "
                            f"got {step!r}")


def _check_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    x = arrays.get("inputs")
    if x is None or x.dtype != np.float32 or x.ndim != 4 or len(x) == 0:
        raise DataError(f"{path.name}: 'inputs' must be a non-empty float32 N×C×H×W array")
    outputs = [k for k in arrays if k.startswith("outputs_")]
    if not outputs:
        raise DataError(f"{path.name} holds no outputs_* array")
    for key in outputs:
        y = arrays[key]
        if y.dtype != np.float32 or y.ndim not in (2, 4) or len(y) != len(x):
            raise DataError(f"{path.name}: {key} must be float32 N×K or N×K×H×W with "
                            f"N = {len(x)}, got {y.dtype} {y.shape}")
    labels = arrays.get("labels")
    if labels is not None and (labels.dtype.kind not in "iu" or len(labels) != len(x)):
        raise DataError(f"{path.name}: labels must be {len(x)} integers")


class ModifiedFileError(VerificationError):
    """The file's SHA-256 differs from the one the reference lists for it."""

    def __init__(self, message: str, identity: dict[str, Any]) -> None:
        super().__init__(message)
        self.identity = identity


def verify_expected(artifact_path: str | Path, reference_path: str | Path, *,
                    runtime: str | None = None, threshold: float = PARITY_THRESHOLD,
                    onnx_kernels_override: str | None = None, threads: int = 1,
                    allow_modified: bool = False) -> VerifyReport:
    """Run ``artifact_path`` in its runtime on the reference inputs; compare with the
    outputs the trained model gave. Returns the report; ``passed`` says the verdict.

    A file listed in the reference by name whose SHA-256 differs is refused before it runs
    (``ModifiedFileError``) unless ``allow_modified``: then it is verified and reported as
    a different file. The report's ``identity`` names the file, reference and bundle."""
    path = require_file(artifact_path)
    arrays, record = read_reference(reference_path)
    entry, notes, identity = _file_entry(path, record)
    # the reference names the runtime of a file its suffix does not tell (an LCE .tflite)
    runtime = runtime_of(path, runtime or entry.get("runtime"))
    identity["reference_sha256"] = sha256_file(reference_path)
    identity["bundle_id"] = record.get("bundle_id")
    if identity["match"] == "modified":
        if not allow_modified:
            raise ModifiedFileError(
                f"{path.name} is not the file {Path(reference_path).name} lists (its SHA-256 "
                f"{identity['file_sha256'][:16]}… differs from {entry['sha256'][:16]}…): "
                "modified or corrupted; --allow-modified verifies it anyway", identity)
        notes = [f"{path.name} is a DIFFERENT file from the one the reference lists "
                 "(modified or corrupted; verified with --allow-modified)"]
    key = f"outputs_{entry.get('outputs', record.get('deployed', 'int8'))}"
    if key not in arrays:
        raise DataError(f"{Path(reference_path).name} has no {key} array for {path.name}")
    kernels = "runtime default"
    if runtime == "onnxruntime":
        kernels = onnx_kernels_override or onnx_kernels(path)
    deployed, file_quant, version = run_deployed(path, arrays["inputs"], runtime=runtime,
                                                 kernels=kernels, threads=threads)
    known = (float(entry["output_step"]), str(entry["step_source"])) \
        if entry.get("output_step") else None
    step, source = output_step(arrays[key], file_quant, known)
    report = compare(path, runtime, deployed, arrays[key], arrays.get("labels"), step, source,
                     threshold)
    report.kernels, report.runtime_version = kernels, version
    report.reference = (f"{Path(reference_path).name} ({key[8:]} outputs of the trained model, "
                        f"recorded by edgekit {record.get('edgekit_version', '?')})")
    report.notes, report.identity = notes, identity
    return report


def _file_entry(path: Path, record: dict[str, Any]
                ) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """The reference's entry for ``path`` (by SHA-256, else by name, else none), notes, and
    the identity: its SHA-256, the name it is listed as and how it matched ("sha256",
    "engine": built on the board from the listed ONNX, "modified", "unlisted")."""
    files = record.get("files") or {}
    digest = sha256_file(path)

    def identity(listed: str | None, match: str) -> dict[str, Any]:
        return {"file": path.name, "file_sha256": digest, "listed_as": listed, "match": match}

    for name, entry in files.items():
        if entry.get("sha256") == digest:
            notes = [] if name == path.name else [f"same bytes as {name}"]
            return entry, notes, identity(name, "sha256")
    # an engine is built on the board from the ONNX of the same name
    for name in (path.name, path.with_suffix(".onnx").name):
        if name in files:
            if path.suffix in (".engine", ".plan"):
                return files[name], [f"engine built from {name}"], identity(name, "engine")
            return files[name], [], identity(name, "modified")
    return {}, [f"{path.name} is not listed in the reference; compared with the deployed "
                "precision's outputs"], identity(None, "unlisted")
