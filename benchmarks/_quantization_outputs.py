"""Outputs of a torch model or a deployed file on test inputs (benchmarks/quantization.py),
and onnxruntime's own static PTQ, the vendor baseline of the ONNX files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def torch_out(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + 128])).numpy()
                               for i in range(0, len(x), 128)])


def ort_out(path: Path, x: np.ndarray, *, reference: bool = False) -> np.ndarray:
    """Outputs of the file in onnxruntime, through the runner ``verify`` uses;
    ``reference``: graph optimization off, each Q/DQ and float op unfused as the ONNX
    operators define them (the arithmetic TensorRT runs)."""
    from edgekit.runtime import open_runner

    runner = open_runner(path, runtime="onnxruntime", threads=2, onnx_reference=reference)
    try:
        return np.concatenate([runner.predict(x[i:i + 128]) for i in range(0, len(x), 128)])
    finally:
        runner.close()


def tfl_out(tflite: Any, path: Path, x: np.ndarray) -> np.ndarray:
    return np.concatenate([tflite.run_tflite(path, x[i:i + 128], threads=2)
                           for i in range(0, len(x), 128)])


class _Reader:
    """Feeds the calibration array to onnxruntime's calibrator one sample at a time."""

    def __init__(self, calib: np.ndarray) -> None:
        self.batches = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def ort_quantize_static(fp32: Path, out: Path, calib: np.ndarray) -> Path:
    """onnxruntime's static PTQ with its defaults (QDQ, S8S8: int8 activations and weights),
    per-channel weights."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    quantize_static(str(fp32), str(out), _Reader(calib), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    return out


def ort_quantize_recommended(fp32: Path, out: Path, calib: np.ndarray, *, vnni: bool) -> Path:
    """onnxruntime's PTQ with the settings its documentation advises for an x86 CPU: U8S8
    (uint8 activations, int8 per-channel weights) after ``quant_pre_process``, with
    ``reduce_range`` (7-bit weights) where the CPU has no VNNI.

    onnxruntime 1.32, ``quantize_static`` docstring, "Choosing parameters for CPU inference":
    x86/x64 without VNNI -> QUInt8 activations, QInt8 weights, ``reduce_range=True`` ("to reduce
    the risk of integer saturation on CPUs that typically lack the VNNI dot-product
    instruction"); with VNNI -> the same types, ``reduce_range=False``; ARM -> QInt8 for both
    (the default S8S8). Pre-processing (symbolic shape inference + graph optimization) is
    advised before QDQ quantization in
    https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html
    """
    import contextlib
    import tempfile

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # its symbolic shape inference leaves temporary files in the working directory
        # when it fails (ESPNetv2): keep them in the temporary one
        with contextlib.chdir(tmp):
            quant_pre_process(str(fp32.resolve()), str(pre))
        quantize_static(str(pre), str(out), _Reader(calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=not vnni,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def has_vnni(flags: list[str]) -> bool:
    return "avx512_vnni" in flags or "avx_vnni" in flags
