"""Lazy import of optional back-ends; a missing one names the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgekit.errors import MissingBackendError

# import name -> pip extra of edgekit that provides it
EXTRAS = {
    "torch": "torch",
    "safetensors": "torch",
    "onnx": "torch",
    "bitarray": "torch",
    "constriction": "torch",
    "mlxtend": "torch",
    "sklearn": "torch",
    "onnxruntime": "ort",
    "ai_edge_litert": "litert",
    "tflite_runtime": "litert",
    "litert_torch": "tflite",
    "nncf": "nncf",
    "matplotlib": "report",
    "pynvml": "nvml",
    "tensorrt": None,  # only from NVIDIA's index or JetPack
}


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise MissingBackendError telling how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        why = f" (needed for {purpose})" if purpose else ""
        if top == "tensorrt":
            how = "install TensorRT from NVIDIA (JetPack on Jetson, pypi.nvidia.com on x86)"
        elif extra:
            how = f"pip install 'edgekit[{extra}]'"
        else:
            how = f"pip install {top}"
        raise MissingBackendError(f"{module} is not installed{why}: {how} ({exc})") from None
