"""Prove the deployed file is the trained model: run it in its real runtime and compare.

The reference is the trained torch model (the fake-quant module of a QuantizedModel, or a
float module). Reported: top-1 agreement (pixel agreement for segmentation outputs), max
and mean output error in units of the output quantization step, and the accuracy of each
side when labels are given. Below ``threshold`` agreement, VerificationError is raised —
after the report has been written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import InvalidInputError, VerificationError
from edgekit.core.io import atomic_write_json
from edgekit.core.lazy import require
from edgekit.quantization.types import QuantizedModel
from edgekit.runtime import open_runner

RUNTIMES = {".onnx": "onnxruntime", ".tflite": "litert", ".engine": "tensorrt"}
# The parity target (README, docs/results.md): the deployed file must agree with the trained
# model on at least 99.5% of top-1 decisions (of pixels, for segmentation). Not 100%: the
# runtime's int8 kernels round requantization their own way, and a one-step difference at a
# near-tie flips the odd argmax; a real deployment bug costs far more than 0.5%.
PARITY_THRESHOLD = 0.995


@dataclass
class VerifyReport:
    artifact: str
    runtime: str
    samples: int
    task: str  # "classification" (top-1) or "segmentation" (per pixel)
    agreement: float  # fraction of argmax decisions equal to the reference's
    max_error_steps: float  # |deployed - reference| in output quantization steps
    mean_error_steps: float
    output_step: float
    step_source: str  # where the output step comes from
    reference_accuracy: float | None = None
    deployed_accuracy: float | None = None
    threshold: float = PARITY_THRESHOLD
    passed: bool = True
    kernels: str = "runtime default"  # which kernels of the runtime produced `deployed`
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        acc = ""
        if self.deployed_accuracy is not None:
            acc = (f", accuracy {self.deployed_accuracy:.4f} deployed vs "
                   f"{self.reference_accuracy:.4f} reference")
        return (f"{self.runtime} ({self.kernels} kernels): agreement {self.agreement:.4f} "
                f"on {self.samples} samples, "
                f"error max {self.max_error_steps:.2f} / mean {self.mean_error_steps:.3f} "
                f"output steps{acc}")


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
) -> VerifyReport:
    """Compare ``artifact_path`` run in its runtime with ``reference_model`` on ``data``.

    ``onnx_kernels`` ("reference" or "optimized") overrides which onnxruntime kernels run
    an ONNX file; by default TensorRT-bound files use the reference ones (see _onnx_kernels).
    """
    from edgekit.calibration.forms import inputs_array, labels_array

    path = Path(artifact_path)
    if not path.is_file():
        raise InvalidInputError(f"no artifact at {path}")
    runtime = runtime or RUNTIMES.get(path.suffix)
    if runtime not in RUNTIMES.values():
        raise InvalidInputError(f"cannot tell the runtime of {path.name}; pass runtime= one of "
                                f"{', '.join(sorted(set(RUNTIMES.values())))}")
    x, y = inputs_array(data), labels_array(data)
    if len(x) == 0:
        raise InvalidInputError("the verification data set is empty")
    kernels = "runtime default"
    if runtime == "onnxruntime":
        kernels = onnx_kernels or _onnx_kernels(path)
    runner = open_runner(path, runtime=runtime, threads=threads,
                         device="cuda" if runtime == "tensorrt" else "cpu",
                         onnx_reference=kernels.startswith("reference"))
    try:
        deployed = np.concatenate([runner.predict(x[i:i + batch_size])
                                   for i in range(0, len(x), batch_size)])
        file_quant = runner.output_quantization()
    finally:
        runner.close()
    reference = _torch_outputs(reference_model, x, batch_size)
    if deployed.shape != reference.shape:
        raise VerificationError(f"{path.name}: output shape {deployed.shape} differs from the "
                                f"reference's {reference.shape}")
    step, source = _output_step(runtime, path, reference, file_quant)
    report = _compare(path, runtime, deployed, reference, y, step, source, threshold)
    report.kernels = kernels
    if report_path is not None:
        atomic_write_json(report_path, report.to_dict())
    if not report.passed:
        raise VerificationError(f"{path.name} does not match the trained model: "
                                f"{report.summary()} (threshold {threshold:.4f})")
    return report


def _compare(path: Path, runtime: str, deployed: np.ndarray, reference: np.ndarray,
             labels: np.ndarray | None, step: float, source: str, threshold: float
             ) -> VerifyReport:
    task = "segmentation" if deployed.ndim == 4 else "classification"
    pred_dep, pred_ref = deployed.argmax(1), reference.argmax(1)
    agreement = float((pred_dep == pred_ref).mean())
    err = np.abs(deployed.astype(np.float64) - reference) / step
    acc_ref = acc_dep = None
    if labels is not None and labels.shape == pred_ref.shape:
        acc_ref = float((pred_ref == labels).mean())
        acc_dep = float((pred_dep == labels).mean())
    return VerifyReport(
        artifact=str(path), runtime=runtime, samples=len(deployed), task=task,
        agreement=agreement, max_error_steps=float(err.max()),
        mean_error_steps=float(err.mean()), output_step=step, step_source=source,
        reference_accuracy=acc_ref, deployed_accuracy=acc_dep, threshold=threshold,
        passed=agreement >= threshold)


def _torch_outputs(model: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    import torch

    module = model.model if isinstance(model, QuantizedModel) else model
    module.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(module(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])))
                        .float().numpy())
    return np.concatenate(outs)


def _output_step(runtime: str, path: Path, reference: np.ndarray,
                 file_quant: tuple[float, int] | None) -> tuple[float, str]:
    """The quantization step of the output: the file's own when it has one."""
    if runtime == "litert" and file_quant is not None:
        return file_quant[0], "output tensor scale of the .tflite"
    if runtime == "onnxruntime":
        scale = _onnx_output_dq_scale(path)
        if scale:
            return scale, "scale of the DequantizeLinear producing the ONNX output"
    peak = float(np.abs(reference).max()) or 1.0
    return peak / 127.0, "int8 step of the reference output range (max|y|/127)"


def _onnx_output_dq_scale(path: Path) -> float | None:
    onnx = require("onnx", purpose="reading ONNX outputs")
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    producer = {o: n for n in graph.node for o in n.output}.get(graph.output[0].name)
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    inits = {i.name: i for i in graph.initializer}
    scale = inits.get(producer.input[1])
    return float(numpy_helper.to_array(scale).max()) if scale is not None else None


def _onnx_kernels(path: Path) -> str:
    """Which onnxruntime kernels stand in for the runtime the file was made for.

    A TensorRT file is checked with onnxruntime's reference kernels: unfused
    DequantizeLinear → float op → QuantizeLinear, the arithmetic that TensorRT's explicit
    quantization defines (int32 accumulation, no saturation). onnxruntime's own fused x86
    int8 kernels differ from it (16-bit intermediate saturation on CPUs without VNNI), so
    they are the right check only for files deployed to onnxruntime itself.
    """
    from edgekit.export.onnx import read_metadata

    target = read_metadata(path).get("target")
    return "reference (unfused Q/DQ, TensorRT semantics)" if target == "tensorrt" else "optimized"


def load_report(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
