"""The one runner protocol every runtime implements (the registry is ``runtime.registry``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.core.errors import InvalidInputError


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

    def output_quantization(self) -> tuple[float, int] | None:
        """(scale, zero_point) of the first output when the file stores it as integers."""
        return None

    def metadata(self) -> dict[str, str]:
        """The file's own key/value metadata where the runtime exposes it (after load)."""
        return {}

    def max_batch(self) -> int | None:
        """The largest batch a dynamic batch dimension accepts (None: unbounded)."""
        return None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Run a float32 N×C×H×W batch of any size through the loaded model; float32 out.

        The one generic path for parity checks (``verify``, ``run_tflite``), as opposed to
        the bind-once timing loop: int8/uint8 inputs are quantized with the file's scale
        and zero point, NCHW becomes NHWC when the file's input is channel-last, a fixed
        batch is filled by repeating the last sample (those rows are dropped again), and
        the first output is dequantized when the runtime reports its quantization.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or len(x) == 0:
            raise InvalidInputError(f"predict needs a non-empty N×C×H×W batch, got shape {x.shape}")
        specs = self.input_specs()
        if len(specs) != 1:
            raise InvalidInputError(f"{self.path.name} has {len(specs)} inputs; predict feeds one")
        spec = specs[0]
        _, c, h, w = x.shape
        if not _fits(spec.shape[1:], (c, h, w)):
            if not _fits(spec.shape[1:], (h, w, c)):
                raise InvalidInputError(
                    f"{self.path} takes inputs of shape {spec.shape}, got {x.shape}")
            x = x.transpose(0, 2, 3, 1)  # a channel-last file (TFLite converts to NHWC)
        fixed = spec.shape[0] if spec.shape[0] is not None and spec.shape[0] > 0 else None
        step = fixed or self.max_batch() or len(x)
        quant = self.output_quantization()
        results = []
        for start in range(0, len(x), step):
            chunk = x[start:start + step]
            real = len(chunk)
            if fixed and real < fixed:  # the graph's batch is fixed: pad the last chunk
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - real, axis=0)])
            self.set_inputs([quantize_input(chunk, spec)])
            self.run()
            results.append(_dequantize(self.outputs()[0], quant)[:real])
        return np.concatenate(results)

    def gpu_memory_bytes(self) -> int | None:
        return None

    def detected_precision(self) -> str | None:
        return None

    def close(self) -> None:
        pass


def quantize_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float data as ``spec`` takes it: cast for float inputs, affine-quantized for int8/uint8."""
    if spec.dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=spec.dtype)
    if spec.dtype in (np.dtype(np.int8), np.dtype(np.uint8)) and spec.scale > 0:
        info = np.iinfo(spec.dtype)
        return np.clip(np.round(x / spec.scale) + spec.zero_point, info.min, info.max
                       ).astype(spec.dtype)
    raise InvalidInputError(f"input {spec.name!r} is {spec.dtype} without a quantization "
                            "scale; float data cannot be fed to it")


def _dequantize(y: np.ndarray, quant: tuple[float, int] | None) -> np.ndarray:
    if quant is None or y.dtype.kind == "f":
        return y.astype(np.float32)
    scale, zero = quant
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


def _fits(declared: tuple[int | None, ...], shape: tuple[int, ...]) -> bool:
    """``shape`` fills ``declared``, whose None/negative dimensions take any size."""
    return len(declared) == len(shape) and all(
        d is None or d < 0 or d == s for d, s in zip(declared, shape, strict=True))
