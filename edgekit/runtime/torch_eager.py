"""PyTorch eager (CPU or CUDA); torch is imported only when this runner is used.

Model files are ``torch.export`` archives (.pt2, loaded without unpickling arbitrary
objects); an ``nn.Module`` in memory is benchmarked with ``TorchRunner.from_module``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import BenchError
from edgekit.core.lazy import require
from edgekit.runtime.base import Runner, TensorSpec


class TorchRunner(Runner):
    name = "torch"
    suffixes = (".pt2",)

    @classmethod
    def from_module(
        cls, module: Any, input_shape: tuple[int, ...], *, device: str = "cpu",
        threads: int | None = None, dtype: str = "float32",
    ) -> TorchRunner:
        runner = cls(Path("<module>"), threads=threads, device=device)
        runner._module = module
        runner._input_shape = tuple(input_shape)
        runner._dtype_name = dtype
        return runner

    def load(self) -> None:
        self.torch = require("torch", purpose="the PyTorch eager runner")
        if self.threads:
            self.torch.set_num_threads(self.threads)
        if self.device.startswith("cuda"):
            if not self.torch.cuda.is_available():
                raise BenchError("torch has no CUDA device here")
            # the GPU memory figure covers this benchmark, not the process's earlier work
            self.torch.cuda.reset_peak_memory_stats()
        if not hasattr(self, "_module"):
            try:
                program = self.torch.export.load(str(self.path))
            except Exception as exc:  # torch raises many types for a bad archive
                raise BenchError(f"torch cannot load {self.path.name}: {exc}") from None
            self._module = program.module()
            example = program.example_inputs[0][0] if program.example_inputs else None
            if example is None:
                raise BenchError(f"{self.path.name} carries no example input shape")
            self._input_shape = tuple(example.shape)
            self._dtype_name = str(example.dtype).removeprefix("torch.")
        dtype = getattr(self.torch, self._dtype_name)
        self._module = self._module.to(self.device, dtype=dtype)
        with contextlib.suppress(NotImplementedError):  # exported graphs refuse eval()
            self._module.eval()
        self._inputs: list[Any] = []
        self._out: Any = None

    def input_specs(self) -> list[TensorSpec]:
        np_dtype = np.float16 if self._dtype_name == "float16" else np.float32
        return [TensorSpec("input", self._input_shape, np.dtype(np_dtype))]

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        self._inputs = [self.torch.from_numpy(a).to(self.device) for a in arrays]

    def run(self) -> None:
        with self.torch.inference_mode():
            self._out = self._module(*self._inputs)
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()  # kernels are asynchronous; wait for them

    def outputs(self) -> list[np.ndarray]:
        out = self._out if isinstance(self._out, (tuple, list)) else [self._out]
        return [o.detach().float().cpu().numpy() for o in out]

    def gpu_memory_bytes(self) -> int | None:
        if self.device.startswith("cuda"):
            return int(self.torch.cuda.max_memory_allocated())
        return None

    def detected_precision(self) -> str | None:
        return {"float16": "fp16", "float32": "fp32"}.get(self._dtype_name)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self.torch.__version__}
