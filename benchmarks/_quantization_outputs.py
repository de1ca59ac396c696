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


def ort_quantize_static(fp32: Path, out: Path, calib: np.ndarray) -> Path:
    """onnxruntime's own static PTQ as shipped (QDQ, u8 activations, s8 per-channel weights)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    quantize_static(str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True)
    return out
