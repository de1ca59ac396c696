"""ONNX Runtime: CPU, and the CUDA / TensorRT execution providers where they are installed."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.core.errors import BenchError, InvalidInputError
from edgekit.core.lazy import require
from edgekit.runtime.base import Runner, TensorSpec

_ORT_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(bool)": np.bool_,
}
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}

_OPT_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
               "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


class OrtRunner(Runner):
    name = "onnxruntime"
    suffixes = (".onnx",)

    def load(self) -> None:
        ort = require("onnxruntime", purpose="benchmarking .onnx models")
        wanted = _PROVIDERS.get(self.device)
        if wanted is None:
            raise InvalidInputError(f"onnxruntime device must be one of {sorted(_PROVIDERS)}")
        available = set(ort.get_available_providers())
        if wanted[0] not in available:
            raise BenchError(
                f"onnxruntime has no {wanted[0]} here (available: {sorted(available)})"
            )
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        level = self.options.get("graph_optimization", "all")
        if level not in _OPT_LEVELS:
            raise InvalidInputError(f"onnxruntime graph_optimization must be one of "
                                    f"{sorted(_OPT_LEVELS)}, not {level!r}")
        # "disabled" keeps the reference kernels: unfused Q/DQ, as TensorRT defines them.
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[level])
        self._level = level
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=[p for p in wanted if p in available]
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise BenchError(f"onnxruntime cannot load {self.path.name}: {exc}") from None
        self._version = ort.__version__
        self._feeds: dict[str, np.ndarray] = {}
        self._out: list[np.ndarray] = []

    def input_specs(self) -> list[TensorSpec]:
        specs = []
        for node in self.session.get_inputs():
            if node.type not in _ORT_TYPES:
                raise BenchError(f"input {node.name!r} has unsupported type {node.type}")
            shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
            specs.append(TensorSpec(node.name, shape, np.dtype(_ORT_TYPES[node.type])))
        return specs

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        names = [n.name for n in self.session.get_inputs()]
        self._feeds = dict(zip(names, arrays, strict=True))

    def run(self) -> None:
        # session.run copies outputs to host numpy arrays, so a GPU provider is synchronized.
        self._out = self.session.run(None, self._feeds)

    def outputs(self) -> list[np.ndarray]:
        return list(self._out)

    def metadata(self) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": self._version,
                "providers": self.session.get_providers(), "graph_optimization": self._level}
