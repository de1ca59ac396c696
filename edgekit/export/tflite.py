"""TFLite export through litert-torch: float files, full-integer int8 files, a vendor baseline.

* A float ``nn.Module`` becomes a float32 ``.tflite``.
* A ``QuantizedModel`` from ``quantize_for_tflite`` becomes a full-integer ``.tflite``: its
  PT2E graph is converted (``convert_pt2e``) and lowered by ``litert_torch.convert``, so
  the ranges QAT learned are the ones in the file. int8 I/O by default; uint8 or float32
  I/O add one QUANTIZE/DEQUANTIZE per edge (``tflite_flatbuffer.set_io_dtype``).
* ``vendor_ptq_tflite`` is litert's own PT2E PTQ (its ``PT2EQuantizer``), kept as the
  baseline edgekit's files are compared against.

Every file is written atomically, carries provenance JSON in its TFLite metadata
(``edgekit_provenance``), and is checked right after writing: it must load in the LiteRT
interpreter and agree with the torch model it came from on the calibration samples.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.core.errors import BenchError, ExportError, FormatError, InvalidInputError, first_line
from edgekit.core.io import atomic_write_bytes, sha256_file
from edgekit.core.lazy import require
from edgekit.export.artifact import Artifact
from edgekit.export.litert_ops import OpInfo, float_compute_ops, inspect_tflite, open_interpreter
from edgekit.export.tflite_flatbuffer import IO_DTYPES, add_metadata, read_metadata, set_io_dtype
from edgekit.quantization.pt2e.quantize import converted_graph
from edgekit.quantization.types import QuantizedModel, TFLiteQuantizedModel

if TYPE_CHECKING:
    import torch

__all__ = [
    "OpInfo",
    "export_tflite",
    "float_compute_ops",
    "inspect_tflite",
    "read_tflite_provenance",
    "run_tflite",
    "vendor_ptq_tflite",
]

SELF_CHECK_SAMPLES = 16


def export_tflite(
    model: Any,
    path: str | os.PathLike[str],
    *,
    calibration: np.ndarray | None = None,
    io_dtype: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Artifact:
    """Write ``model`` (a float nn.Module or a TFLite QuantizedModel) to ``path``.

    ``calibration`` (N×C×H×W float32) gives the samples of the post-export self-check
    (and the input shape); ``io_dtype`` defaults to "int8" for quantized models and
    must be "float32" (the default) for float ones.
    """
    torch = require("torch", purpose="TFLite export")
    shape = _input_shape(model, input_shape, calibration)
    example = torch.zeros(1, *shape)
    if isinstance(model, QuantizedModel) and not isinstance(model, TFLiteQuantizedModel):
        raise ExportError(f"a {type(model).__name__} (target {model.config.target!r}) cannot "
                          "be exported to TFLite; quantize it with target='tflite'")
    quantized = isinstance(model, TFLiteQuantizedModel)
    io_dtype = io_dtype or ("int8" if quantized else "float32")
    if io_dtype not in IO_DTYPES:
        raise InvalidInputError(f"io_dtype must be one of {IO_DTYPES}, not {io_dtype!r}")
    if not quantized and io_dtype != "float32":
        raise InvalidInputError("a float model exports with float32 I/O; quantize it first "
                                "(quantize_for_tflite) for int8/uint8 I/O")
    provenance = _provenance(model, shape, io_dtype, metadata)
    if quantized:
        graph = converted_graph(model)
        data = _convert(graph, example, quantizer=model.quantizer)
        data = set_io_dtype(data, io_dtype)
        reference = model.model
    else:
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"cannot export a {type(model).__name__}; pass a "
                                    "QuantizedModel or a torch.nn.Module")
        reference = model.eval()
        data = _convert(reference, example, quantizer=None)
    return _write_checked(data, Path(path), provenance, reference, shape, calibration,
                          precision="int8" if quantized else "fp32")


def vendor_ptq_tflite(
    float_model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    calibration: np.ndarray,
    input_shape: tuple[int, ...] | None = None,
) -> Artifact:
    """litert-torch's own PT2E PTQ (per-channel, its quantizer as shipped): the vendor baseline."""
    torch = require("torch", purpose="TFLite export")
    from litert_torch.quantize.pt2e_quantizer import (
        PT2EQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    calib = _calibration_array(calibration)
    shape = _input_shape(float_model, input_shape, calib)
    example = torch.zeros(1, *shape)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    try:
        graph = torch.export.export(float_model.eval(), (example,)).module()
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for sample in torch.from_numpy(calib):
                prepared(sample[None])
        converted = convert_pt2e(prepared, fold_quantize=False)
    except Exception as exc:
        raise ExportError(f"litert PT2E PTQ failed: {first_line(exc)}") from exc
    data = _convert(converted, example, quantizer=quantizer)
    provenance = _provenance(float_model, shape, "int8",
                             {"recipe": "litert PT2E PTQ (vendor baseline)", "precision": "int8"})
    return _write_checked(data, Path(path), provenance, converted, shape, calib,
                          precision="int8")


def run_tflite(path: str | os.PathLike[str], x: np.ndarray, *, threads: int = 1,
               xnnpack: bool = True) -> np.ndarray:
    """Run ``x`` (N×C×H×W float32) through the file; returns float32 (dequantized) outputs.

    int8/uint8 inputs are quantized with the file's own scale and zero point, and NCHW
    is transposed to NHWC when the file's input is channel-last (``Runner.predict``).
    ``xnnpack=False`` runs TFLite's builtin kernels instead of the XNNPACK delegate (their
    int8 arithmetic can differ by several output steps on hardswish-heavy nets; see
    docs/tflite.md).
    """
    from edgekit.runtime.litert import LiteRTRunner

    if not os.path.isfile(path):
        raise FormatError(f"no such .tflite file: {path}")
    runner = LiteRTRunner(path, threads=threads, options={"xnnpack": xnnpack})
    try:
        runner.load()
    except BenchError as exc:  # an unreadable file is a format problem outside the harness
        raise FormatError(str(exc)) from None
    return runner.predict(x)


def read_tflite_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The provenance dict ``export_tflite`` embedded in the file, or None."""
    return read_metadata(Path(path).read_bytes())


def _convert(module: Any, example: torch.Tensor, *, quantizer: Any) -> bytes:
    litert_torch = require("litert_torch", purpose="TFLite export")
    kwargs = {}
    if quantizer is not None:
        from litert_torch.quantize.quant_config import QuantConfig as LiteQuantConfig

        kwargs["quant_config"] = LiteQuantConfig(pt2e_quantizer=quantizer)
    try:
        edge = litert_torch.convert(module, (example,), **kwargs)
        return bytes(edge.model_content())
    except Exception as exc:  # litert/torch.export raise many types; the first line explains
        raise ExportError(f"litert-torch cannot convert the model: {first_line(exc)}") from exc


def _write_checked(data: bytes, path: Path, provenance: dict[str, Any], reference: Any,
                   shape: tuple[int, ...], calibration: np.ndarray | None, *,
                   precision: str) -> Artifact:
    """Embed provenance, stage the file, check it in LiteRT, then move it into place."""
    data = add_metadata(data, provenance)
    staged = path.with_name(f".{path.name}.check")
    try:
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(data)
        open_interpreter(staged)  # loads and allocates, or raises FormatError
        check = _self_check(staged, reference, shape, calibration)
    finally:
        staged.unlink(missing_ok=True)
    atomic_write_bytes(path, data)
    meta = dict(provenance)
    meta["self_check"] = check
    return Artifact(path=path, format="tflite", precision=precision, input_shape=shape,
                    sha256=sha256_file(path), metadata=meta)


def _self_check(path: Path, reference: Any, shape: tuple[int, ...],
                calibration: np.ndarray | None) -> dict[str, Any]:
    """Top-1 agreement and max |error| between the file and its torch model on a few samples."""
    import torch

    if calibration is None:
        x = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    else:
        x = _calibration_array(calibration)[:SELF_CHECK_SAMPLES]
    got = run_tflite(path, x)
    with torch.no_grad():  # one sample at a time: vendor PT2E graphs have a fixed batch of 1
        want = np.concatenate([reference(torch.from_numpy(s[None])).float().numpy() for s in x])
    if got.shape != want.shape:
        raise ExportError(f"the .tflite output shape {got.shape} differs from the torch "
                          f"model's {want.shape}")
    return {
        "samples": len(x),
        "top1_agreement": float(np.mean(got.argmax(1) == want.argmax(1))),
        "max_abs_error": float(np.abs(got - want).max()),
    }


def _calibration_array(calibration: Any) -> np.ndarray:
    x = np.asarray(getattr(calibration, "x", calibration), dtype=np.float32)
    if x.ndim != 4 or len(x) == 0:
        raise InvalidInputError(f"calibration must be a non-empty N×C×H×W array, got {x.shape}")
    return x


def _input_shape(model: Any, input_shape: tuple[int, ...] | None,
                 calibration: Any) -> tuple[int, ...]:
    shape = input_shape or getattr(model, "input_shape", None)
    if not shape and calibration is not None:
        shape = _calibration_array(calibration).shape[1:]
    if not shape:
        raise InvalidInputError("input_shape (C, H, W) is required to export a float model")
    shape = tuple(int(d) for d in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidInputError(f"input_shape must be (C, H, W) with positive sizes, got {shape}")
    return shape


def _provenance(model: Any, shape: tuple[int, ...], io_dtype: str,
                extra: dict[str, Any] | None) -> dict[str, Any]:
    import litert_torch
    import torch

    from edgekit import __version__

    prov: dict[str, Any] = {
        "producer": "edgekit",
        "edgekit_version": __version__,
        "torch_version": torch.__version__,
        "litert_torch_version": getattr(litert_torch, "__version__", "unknown"),
        "python_version": platform.python_version(),
        "input_shape": list(shape),
        "input_layout": "NCHW",
        "io_dtype": io_dtype,
    }
    if isinstance(model, TFLiteQuantizedModel):
        config = model.config
        prov.update({
            "precision": "int8",
            "target": config.target,
            "quant_mode": config.mode,
            "recipe": {k: getattr(config, k) for k in
                       ("mode", "epochs", "lr", "calibration_size", "batch_size", "seed")},
            "quant_scheme": model.scheme,
        })
    else:
        prov["precision"] = "fp32"
    prov.update(extra or {})
    return prov
