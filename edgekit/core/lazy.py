"""Lazy import of optional back-ends; a missing one names the extra that installs it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from edgekit.core.errors import MissingBackendError

# import name -> pip extra of edgekit that provides it
EXTRAS = {
    "torch": "torch",
    "safetensors": "torch",
    "onnx": "torch",
    "bitarray": "torch",
    "constriction": "torch",
    "torch_pruning": "torch",
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


def lazy_exports(package: str, table: dict[str, str], *, eager: tuple[str, ...] = (),
                 submodules: tuple[str, ...] = ()
                 ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` (PEP 562) for ``package``.

    ``table`` maps each public name to the module that defines it; the module is imported on
    first access and the value cached in the package, so importing the package stays light.
    ``eager`` names are defined in the package itself (e.g. ``__version__``); ``submodules``
    are sub-packages reachable as attributes (``edgekit.export``), imported on first access.
    """
    clash = sorted(n for n in table if f"{package}.{n}" in table.values())
    if clash:  # importing that submodule would overwrite the lazily exported name with it
        raise ValueError(f"{package}: exported names equal to submodule names: {clash}")
    public = [*eager, *sorted([*table, *submodules])]

    def __getattr__(name: str) -> Any:
        if name in submodules:  # the import binds it in the package too
            return importlib.import_module(f"{package}.{name}")
        source = table.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return public

    return public, __getattr__, __dir__
