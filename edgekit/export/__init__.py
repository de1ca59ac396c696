"""Export a float or quantized model to a deployable file, then verify it in its runtime.

``export(model, "onnx" | "tflite" | "engine", path, data=..., **options)``: the format
comes from the capability table (``edgekit.export.capabilities``), options are validated
before any work, and when ``data`` is given the written file is run in its real runtime
and compared with ``model`` (``edgekit.export.verify``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.export.artifact import Artifact
from edgekit.export.capabilities import FORMATS, ExportFormat, list_formats
from edgekit.export.verify import PARITY_THRESHOLD

__all__ = ["FORMATS", "Artifact", "ExportFormat", "export", "list_formats"]


def export(
    model: Any,
    fmt: str,
    out_path: str | Path,
    *,
    data: Any = None,
    threshold: float = PARITY_THRESHOLD,
    report_path: str | Path | None = None,
    **options: Any,
) -> Artifact:
    """Write ``model`` as ``fmt`` to ``out_path``; verify it on ``data`` when given.

    Raises VerificationError (after writing the report) when the deployed file agrees
    with ``model`` on fewer than ``threshold`` of the samples.
    """
    spec = FORMATS.get(fmt)
    kwargs = spec.validate(options)
    spec.check_host()
    artifact = spec.exporter()(model, out_path, **kwargs)
    if data is not None:
        from edgekit.export.verify import verify

        report_path = report_path or Path(str(artifact.path) + ".verify.json")
        artifact.verify_report = verify(artifact.path, model, data, threshold=threshold,
                                        report_path=report_path, runtime=spec.runtime)
    return artifact
