"""Is the deployed file the trained model? Run it in its runtime, compare with reference outputs.

numpy and the one runtime only: the workstation's ``edgekit.export.verify`` (reference =
the torch model) and the board's ``edgekit verify FILE --expected reference.npz``
(reference = outputs recorded at compress time) both end here, so both report the same
figures: top-1 agreement (pixel agreement for segmentation outputs), the output error in
units of the output quantization step, and each side's accuracy when labels are given.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import InvalidInputError, VerificationError
from edgekit.runtime.registry import open_runner

RUNTIMES = {".onnx": "onnxruntime", ".tflite": "litert", ".engine": "tensorrt",
            ".plan": "tensorrt"}
# Runtimes a file is checked in only when named: an LCE file is a .tflite LiteRT cannot run.
NAMED_RUNTIMES = ("lce",)
# The parity target (README, docs/results.md): the deployed file must agree with the trained
# model on at least 99.5% of top-1 decisions (of pixels, for segmentation). Not 100%: the
# runtime's int8 kernels round requantization their own way, and a one-step difference at a
# near-tie flips the odd argmax; a real deployment bug costs far more than 0.5%.
PARITY_THRESHOLD = 0.995
# Float summation order alone moves a deep int8 network's outputs: the same fake-quant
# EfficientNet-Lite0 run by torch with another thread count and batch size agreed with
# itself on 98.5% of 1,000-way top-1 decisions, 0.11 output steps apart on average and up
# to 3.2 (one activation at a rounding boundary flips a step, and the flip travels). So the
# deployed file is judged where such noise cannot change the answer: on the *decisive*
# inputs, whose reference margin (top-1 minus top-2 output) exceeds twice the tolerance (two
# outputs may each move by it). The tolerance is the 99th percentile of the per-output error,
# clamped to [TOLERANCE_MIN, TOLERANCE_MAX] steps, so a broken file cannot widen it past
# TOLERANCE_MAX; its mean error must also stay within MEAN_ERROR_LIMIT steps.
TOLERANCE_MIN, TOLERANCE_MAX = 1.0, 6.0
MEAN_ERROR_LIMIT = 1.0
# fewer decisive inputs than this cannot resolve the threshold: all inputs are judged
MIN_DECISIVE = 50
REFERENCE_KERNELS = "reference (unfused Q/DQ, TensorRT semantics)"


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
    # the criterion (see PARITY_THRESHOLD): agreement on the decisive inputs (pixels), whose
    # reference margin exceeds 2 x tolerance_steps
    decisive: int = 0
    decisive_agreement: float | None = None
    tolerance_steps: float = 0.0
    reason: str = ""  # why it failed, in a line
    threshold: float = PARITY_THRESHOLD
    passed: bool = True
    kernels: str = "runtime default"  # which kernels of the runtime produced `deployed`
    runtime_version: str = ""
    host: str = ""  # the machine the file ran on: "<hostname> (<arch>)"
    reference: str = ""  # what the deployed outputs were compared with
    notes: list[str] = field(default_factory=list)
    # what was compared: file_sha256, reference_sha256, bundle_id (verify --expected)
    identity: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        acc = ""
        if self.deployed_accuracy is not None:
            acc = (f", accuracy {self.deployed_accuracy:.4f} deployed vs "
                   f"{self.reference_accuracy:.4f} reference")
        decisive = ""
        if self.decisive_agreement is not None:
            decisive = (f" ({self.decisive_agreement:.4f} on the {self.decisive} decisive, "
                        f"margin > {2 * self.tolerance_steps:.1f} steps)")
        reason = f" — {self.reason}" if self.reason else ""
        return (f"{'PASSED' if self.passed else 'FAILED'}: {self.runtime} "
                f"{self.runtime_version} ({self.kernels} kernels) on {self.host}: agreement "
                f"{self.agreement:.4f} on {self.samples} samples{decisive}, "
                f"error max {self.max_error_steps:.2f} / mean {self.mean_error_steps:.3f} "
                f"output steps{acc}{reason}")


def this_host() -> str:
    return f"{socket.gethostname()} ({platform.machine()})"


def runtime_of(path: Path, runtime: str | None = None) -> str:
    runtime = runtime or RUNTIMES.get(path.suffix.lower())
    known = {*RUNTIMES.values(), *NAMED_RUNTIMES}
    if runtime not in known:
        raise InvalidInputError(f"cannot tell the runtime of {path.name}; pass runtime= one of "
                                f"{', '.join(sorted(known))}")
    return runtime


def run_deployed(path: Path, x: np.ndarray, *, runtime: str, kernels: str, threads: int = 1,
                 batch_size: int = 64) -> tuple[np.ndarray, tuple[float, int] | None, str]:
    """(outputs, the file's output quantization, runtime version) of ``path`` on ``x``."""
    runner = open_runner(path, runtime=runtime, threads=threads,
                         device="cuda" if runtime == "tensorrt" else "cpu",
                         onnx_reference=kernels.startswith("reference"))
    try:
        deployed = np.concatenate([runner.predict(x[i:i + batch_size])
                                   for i in range(0, len(x), batch_size)])
        return deployed, runner.output_quantization(), str(runner.info().get("version", ""))
    finally:
        runner.close()


def onnx_kernels(path: Path) -> str:
    """Which onnxruntime kernels stand in for the runtime the ONNX file was made for.

    A TensorRT file is checked with onnxruntime's reference kernels: unfused
    DequantizeLinear → float op → QuantizeLinear, the arithmetic that TensorRT's explicit
    quantization defines (int32 accumulation, no saturation). onnxruntime's own fused x86
    int8 kernels differ from it (16-bit intermediate saturation on CPUs without VNNI), so
    they are the right check only for files deployed to onnxruntime itself.
    """
    runner = open_runner(path, runtime="onnxruntime", threads=1)
    try:
        target = runner.metadata().get("target")
    finally:
        runner.close()
    return REFERENCE_KERNELS if target == "tensorrt" else "optimized"


def output_step(reference: np.ndarray, file_quant: tuple[float, int] | None,
                known: tuple[float, str] | None = None) -> tuple[float, str]:
    """The quantization step of the output: the file's own when it has one."""
    if file_quant is not None:
        return file_quant[0], "output tensor scale of the file"
    if known is not None:
        return known
    peak = float(np.abs(reference).max()) or 1.0
    return peak / 127.0, "int8 step of the reference output range (max|y|/127)"


def compare(path: Path, runtime: str, deployed: np.ndarray, reference: np.ndarray,
            labels: np.ndarray | None, step: float, source: str, threshold: float
            ) -> VerifyReport:
    if deployed.shape != reference.shape:
        raise VerificationError(f"{path.name}: output shape {deployed.shape} differs from the "
                                f"reference's {reference.shape}")
    task = "segmentation" if deployed.ndim == 4 else "classification"
    pred_dep, pred_ref = deployed.argmax(1), reference.argmax(1)
    same = pred_dep == pred_ref
    err = np.abs(deployed.astype(np.float64) - reference) / step
    acc_ref = acc_dep = None
    if labels is not None and labels.shape == pred_ref.shape:
        acc_ref = float((pred_ref == labels).mean())
        acc_dep = float((pred_dep == labels).mean())
    judged = judge(same, err, margins(reference) / step, threshold)
    return VerifyReport(
        artifact=str(path), runtime=runtime, samples=len(deployed), task=task,
        agreement=float(same.mean()), max_error_steps=float(err.max()),
        mean_error_steps=float(err.mean()), output_step=step, step_source=source,
        reference_accuracy=acc_ref, deployed_accuracy=acc_dep, threshold=threshold,
        host=this_host(), **judged)


def margins(outputs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 output of each sample (each pixel: class axis 1)."""
    top2 = np.partition(outputs, -2, axis=1)
    return np.take(top2, -1, axis=1) - np.take(top2, -2, axis=1)


def judge(same: np.ndarray, err: np.ndarray, margin_steps: np.ndarray, threshold: float
          ) -> dict[str, Any]:
    """The verdict fields of a VerifyReport: agreement on the decisive decisions, the mean
    error within its limit (see PARITY_THRESHOLD); ``threshold`` 0 reports and never
    fails."""
    tolerance = float(np.clip(np.quantile(err, 0.99), TOLERANCE_MIN, TOLERANCE_MAX))
    decisive = margin_steps > 2 * tolerance
    count = int(decisive.sum())
    if count >= MIN_DECISIVE:
        agreement = float(same[decisive].mean())
        basis = f"the {count} decisive decisions"
    else:  # too few to resolve the threshold: every decision counts
        agreement = float(same.mean())
        basis = f"all decisions (only {count} decisive)"
    mean_error = float(err.mean())
    reason = ""
    if threshold <= 0:  # figures only (a comparison shown beside the real check)
        pass
    elif agreement < threshold:
        reason = f"agreement {agreement:.4f} on {basis} is below {threshold:.4f}"
    elif mean_error > MEAN_ERROR_LIMIT:
        reason = (f"mean output error {mean_error:.2f} steps exceeds {MEAN_ERROR_LIMIT:.1f} "
                  "(summation order gives a small fraction of a step)")
    return {"decisive": count, "decisive_agreement": agreement if count >= MIN_DECISIVE
            else None, "tolerance_steps": tolerance, "passed": not reason, "reason": reason}


def require_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no artifact at {path}")
    return path
