"""The one runner protocol every runtime implements, and the registry that picks one by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import InvalidInputError
from edgekit.registry import Registry


@dataclass(frozen=True)
class TensorSpec:
    """An input as the runtime declares it; ``None`` marks a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    scale: float = 0.0  # int8/uint8 quantization of the input, when the model has one
    zero_point: int = 0

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        """Dynamic leading dimension -> ``batch``; other dynamic dimensions are an error."""
        shape = []
        for i, dim in enumerate(self.shape):
            if dim is None or dim < 0:
                if i != 0:
                    raise InvalidInputError(
                        f"input {self.name!r} has a dynamic dimension {i}; pass --input FILE.npy"
                    )
                dim = batch
            shape.append(int(dim))
        return tuple(shape)


class Runner:
    """Load a model file and run one synchronous inference at a time.

    ``run()`` must return only when the result is ready (GPU runners synchronize), because
    the timing loop wraps it in ``perf_counter_ns``. Inputs are bound once with
    ``set_inputs`` so the timed call does no host-side preparation.
    """

    name: ClassVar[str] = "base"
    suffixes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, path: str | Path, *, threads: int | None = None, device: str = "cpu",
        options: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self.device = device
        self.options = dict(options or {})

    def load(self) -> None:
        raise NotImplementedError

    def input_specs(self) -> list[TensorSpec]:
        raise NotImplementedError

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError

    def outputs(self) -> list[np.ndarray]:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Runtime name, version and the options that shape the timing (threads, delegate)."""
        return {"name": self.name, "threads": self.threads, "device": self.device}

    def gpu_memory_bytes(self) -> int | None:
        return None

    def detected_precision(self) -> str | None:
        return None

    def close(self) -> None:
        pass


RUNNERS: Registry[type[Runner]] = Registry("runtime")


def _load_builtin_runners() -> None:
    # Registration only; each module imports its runtime inside load().
    from edgekit.bench.runners import litert, ort, tensorrt_engine, torch_eager  # noqa: F401


def runner_class(runtime: str | None, path: str | Path) -> type[Runner]:
    """The runner named ``runtime``, or the one whose suffix matches the model file."""
    _load_builtin_runners()
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
