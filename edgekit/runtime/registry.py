"""The runners, registered by name here (one line each), and how a file finds its runner.

Each runner module imports its runtime (onnxruntime, LiteRT, TensorRT, torch) only inside
``load()``, so this registry is full after ``import edgekit.runtime`` and imports numpy only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.core.registry import Registry
from edgekit.runtime.base import Runner
from edgekit.runtime.lce import LceRunner
from edgekit.runtime.litert import LiteRTRunner
from edgekit.runtime.ort import OrtRunner
from edgekit.runtime.tensorrt_engine import TensorRTRunner
from edgekit.runtime.torch_eager import TorchRunner

RUNNERS: Registry[type[Runner]] = Registry("runtime")
for _runner in (OrtRunner, LiteRTRunner, TensorRTRunner, TorchRunner, LceRunner):
    RUNNERS.register(_runner.name)(_runner)


def runner_class(runtime: str | None, path: str | Path) -> type[Runner]:
    """The runner named ``runtime``, or the one whose suffix matches the model file."""
    if runtime:
        return RUNNERS.get(runtime)
    suffix = Path(path).suffix.lower()
    for name in RUNNERS:
        if suffix in RUNNERS.get(name).suffixes:
            return RUNNERS.get(name)
    known = sorted(s for n in RUNNERS for s in RUNNERS.get(n).suffixes)
    raise InvalidInputError(
        f"cannot tell the runtime of {Path(path).name!r} from its suffix {suffix!r} "
        f"(known: {', '.join(known)}); pass --runtime"
    )


def open_runner(path: str | Path, *, runtime: str | None = None, threads: int | None = None,
                device: str = "cpu", onnx_reference: bool = False) -> Runner:
    """The loaded runner for ``path`` (runtime from its suffix unless named), as parity checks
    use it: ``onnx_reference`` turns onnxruntime's graph optimization off, so every Q/DQ op
    runs unfused, the arithmetic the ONNX file defines (and TensorRT runs). Close it after."""
    options: dict[str, Any] = {"graph_optimization": "disabled"} if onnx_reference else {}
    runner = runner_class(runtime, path)(path, threads=threads, device=device, options=options)
    try:
        runner.load()
    except BaseException:
        runner.close()  # a half-loaded runtime may hold a session or a device context
        raise
    return runner
