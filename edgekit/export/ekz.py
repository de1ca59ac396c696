"""``.ekz`` → something that runs: a torch state dict / model, safetensors, or ONNX.

A device that received only the ``.ekz`` file rebuilds the architecture from the stored
``model`` config (``edgekit.models.create_model``) and either exports it to ONNX or fills
the initializers of an existing ONNX graph with the decoded weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import ExportError, FormatError
from edgekit.core.io import atomic_path, atomic_write_bytes
from edgekit.deep_compression.ekz.container import EkzFile, load_ekz

if TYPE_CHECKING:
    import torch

Source = str | os.PathLike[str] | EkzFile


def _file(source: Source) -> EkzFile:
    return source if isinstance(source, EkzFile) else load_ekz(source)


def ekz_state_dict(source: Source) -> dict[str, torch.Tensor]:
    import torch

    return {name: torch.from_numpy(array.copy()) for name, array in _file(source).tensors().items()}


def ekz_model(source: Source) -> torch.nn.Module:
    """Rebuild the model from the stored config and load the decoded weights (strict)."""
    from edgekit.models import create_model

    ekz = _file(source)
    if not ekz.model_config:
        raise FormatError("this .ekz file stores no model config; load its state dict instead")
    model = create_model(**ekz.model_config)
    try:
        model.load_state_dict(ekz_state_dict(ekz), strict=True)
    except RuntimeError as exc:
        raise FormatError(f"weights do not fit {ekz.model_config.get('name')}: {exc}") from None
    return model.eval()


def _example_input(config: dict[str, Any]):
    import torch

    size = int(config.get("input_size", 28))
    return torch.zeros(1, int(config.get("in_channels", 1)), size, size)


def ekz_to_onnx(source: Source, out: str | os.PathLike[str], *, opset: int = 17) -> Path:
    """Export the rebuilt model with ``torch.onnx.export`` (TorchScript exporter, opset 17)."""
    import torch

    ekz = _file(source)
    model = ekz_model(ekz)
    with atomic_path(out) as tmp:
        try:
            torch.onnx.export(model, (_example_input(ekz.model_config),), str(tmp),
                              dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["output"], do_constant_folding=False,
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
        except Exception as exc:  # the exporter raises many types; report one
            raise ExportError(f"ONNX export of the rebuilt model failed: {exc}") from exc
    return Path(out)


def fill_onnx_initializers(onnx_path: str | os.PathLike[str], source: Source,
                           out: str | os.PathLike[str], *, strict: bool = True) -> Path:
    """Replace the initializers of ``onnx_path`` named like the file's tensors."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    tensors = _file(source).tensors()
    graph_model = onnx.load(str(onnx_path))
    filled = set()
    for init in graph_model.graph.initializer:
        if init.name in tensors:
            old = numpy_helper.to_array(init)
            new = tensors[init.name].astype(old.dtype)
            if new.shape != old.shape:
                raise ExportError(f"{init.name}: file has {new.shape}, graph has {old.shape}")
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(new), init.name))
            filled.add(init.name)
    missing = {n for n in tensors if n.endswith(("weight", "bias"))} - filled
    if strict and missing:
        raise ExportError(f"graph has no initializers for {sorted(missing)[:5]}")
    return atomic_write_bytes(out, graph_model.SerializeToString())


def ekz_to_safetensors(source: Source, out: str | os.PathLike[str]) -> Path:
    from edgekit.core.lazy import require

    st = require("safetensors.numpy", purpose="writing safetensors")
    ekz = _file(source)
    meta = {"edgekit_config": json.dumps(ekz.model_config)}
    return atomic_write_bytes(out, st.save(ekz.tensors(), metadata=meta))


def ekz_to_tflite(source: Source, out: str | os.PathLike[str]) -> Path:
    """Rebuild the model and convert it to a float ``.tflite`` (edgekit.export.tflite)."""
    from edgekit.export.tflite import export_tflite

    ekz = _file(source)
    model = ekz_model(ekz)
    shape = tuple(_example_input(ekz.model_config).shape[1:])
    export_tflite(model, out, input_shape=shape, metadata={"source": "ekz"})
    return Path(out)
