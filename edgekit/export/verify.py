"""Prove the deployed file is the trained model: run it in its real runtime and compare.

The reference is the trained torch model (the fake-quant module of a QuantizedModel, or a
float module); the comparison itself is ``edgekit.runtime.parity``, which the board's
torch-free ``edgekit verify --expected`` shares. Below ``threshold`` agreement,
VerificationError is raised — after the report has been written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import InvalidInputError, VerificationError
from edgekit.core.io import atomic_write_json
from edgekit.core.lazy import require
from edgekit.quantization.types import QuantizedModel
from edgekit.runtime.parity import (
    PARITY_THRESHOLD,
    VerifyReport,
    compare,
    output_step,
    require_file,
    run_deployed,
    runtime_of,
)
from edgekit.runtime.parity import onnx_kernels as kernels_for_onnx

__all__ = ["PARITY_THRESHOLD", "VerifyReport", "load_report", "onnx_output_step",
           "torch_outputs", "verify"]


def verify(
    artifact_path: str | Path,
    reference_model: Any,
    data: Any,
    *,
    runtime: str | None = None,
    threshold: float = PARITY_THRESHOLD,
    report_path: str | Path | None = None,
    batch_size: int = 64,
    threads: int = 1,
    onnx_kernels: str | None = None,
    reference_outputs: np.ndarray | None = None,
) -> VerifyReport:
    """Compare ``artifact_path`` run in its runtime with ``reference_model`` on ``data``.

    ``onnx_kernels`` ("reference" or "optimized") overrides which onnxruntime kernels run
    an ONNX file; by default TensorRT-bound files use the reference ones
    (``edgekit.runtime.parity.onnx_kernels``). ``reference_outputs``: the model's
    ``torch_outputs`` on ``data`` when already computed (one forward for several files).
    """
    from edgekit.calibration.forms import inputs_array, labels_array

    path = require_file(artifact_path)
    runtime = runtime_of(path, runtime)
    x, y = inputs_array(data), labels_array(data)
    if len(x) == 0:
        raise InvalidInputError("the verification data set is empty")
    kernels = "runtime default"
    if runtime == "onnxruntime":
        kernels = onnx_kernels or kernels_for_onnx(path)
    elif runtime == "lce":  # edgekit.runtime.lce runs LceBconv2d's reference kernel
        kernels = "LCE reference bconv"
    deployed, file_quant, version = run_deployed(path, x, runtime=runtime, kernels=kernels,
                                                 threads=threads, batch_size=batch_size)
    if reference_outputs is None:
        reference = torch_outputs(reference_model, x, batch_size)
    elif len(reference_outputs) != len(x):
        raise InvalidInputError(f"reference_outputs has {len(reference_outputs)} rows for "
                                f"{len(x)} samples")
    else:
        reference = reference_outputs
    known = onnx_output_step(path) if runtime == "onnxruntime" else None
    step, source = output_step(reference, file_quant, known)
    report = compare(path, runtime, deployed, reference, y, step, source, threshold)
    report.kernels, report.runtime_version = kernels, version
    report.reference = "the trained torch model"
    if report_path is not None:
        atomic_write_json(report_path, report.to_dict())
    if not report.passed:
        raise VerificationError(f"{path.name} does not match the trained model: "
                                f"{report.summary()} (threshold {threshold:.4f})")
    return report


def torch_outputs(model: Any, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """``model``'s float32 outputs on ``x`` (a QuantizedModel runs its fake-quant module)."""
    import torch

    module = model.model if isinstance(model, QuantizedModel) else model
    module.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = module(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])))
            out = out[0] if isinstance(out, (tuple, list)) else out  # the main head
            outs.append(out.float().numpy())
    return np.concatenate(outs)


def onnx_output_step(path: Path) -> tuple[float, str] | None:
    """The scale of the DequantizeLinear that produces the ONNX file's output, if any."""
    onnx = require("onnx", purpose="reading ONNX outputs")
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    producer = {o: n for n in graph.node for o in n.output}.get(graph.output[0].name)
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    scale = {i.name: i for i in graph.initializer}.get(producer.input[1])
    if scale is None:
        return None
    return (float(numpy_helper.to_array(scale).max()),
            "scale of the DequantizeLinear producing the ONNX output")


def load_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
