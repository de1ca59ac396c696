"""LiteRT (TFLite) interpreter: thread count and XNNPACK on/off."""

from __future__ import annotations

import importlib
import re
from typing import Any

import numpy as np

from edgekit.core.errors import BenchError, MissingBackendError
from edgekit.runtime.base import Runner, TensorSpec


def import_interpreter_module() -> Any:
    """``ai_edge_litert.interpreter``, else the older ``tflite_runtime.interpreter`` (boards)."""
    for module in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise MissingBackendError(
        "neither ai_edge_litert nor tflite_runtime is installed (needed for benchmarking "
        ".tflite models): pip install 'edgekit[litert]'"
    )


class LiteRTRunner(Runner):
    name = "litert"
    suffixes = (".tflite",)

    def load(self) -> None:
        module = import_interpreter_module()
        xnnpack = bool(self.options.get("xnnpack", True))
        resolver = module.OpResolverType
        kwargs: dict[str, Any] = {
            "model_path": str(self.path),
            # BUILTIN_WITHOUT_DEFAULT_DELEGATES keeps the reference kernels (no XNNPACK).
            "experimental_op_resolver_type": resolver.AUTO if xnnpack
            else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        }
        if self.threads:
            kwargs["num_threads"] = self.threads
        try:
            self.interpreter = module.Interpreter(**kwargs)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            custom = re.search(r"unresolved custom op: (Lce\w+)", str(exc))
            if custom:  # an LCE file (edgekit export --format lce, compress for a Pi)
                raise BenchError(f"{self.path.name} holds Larq Compute Engine ops "
                                 f"({custom.group(1)}) that LiteRT cannot run: use --runtime "
                                 "lce, with LCE's runtime installed") from None
            raise BenchError(f"LiteRT cannot load {self.path.name}: {exc}") from None
        self._module_name = module.__name__.split(".")[0]
        self._xnnpack = xnnpack
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()

    def input_specs(self) -> list[TensorSpec]:
        specs = []
        for d in self._inputs:
            scale, zero = d.get("quantization", (0.0, 0))
            shape = tuple(None if s < 0 else int(s) for s in d["shape_signature"])
            specs.append(TensorSpec(d["name"], shape, np.dtype(d["dtype"]), scale, int(zero)))
        return specs

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        resized = False
        for detail, array in zip(self._inputs, arrays, strict=True):
            if tuple(array.shape) != tuple(detail["shape"]):
                self.interpreter.resize_tensor_input(detail["index"], array.shape)
                self.interpreter.allocate_tensors()
                resized = True
            self.interpreter.set_tensor(detail["index"], array)
        if resized:  # cache the new shapes, so repeated calls (predict's chunks) do not resize
            self._inputs = self.interpreter.get_input_details()

    def run(self) -> None:
        self.interpreter.invoke()

    def outputs(self) -> list[np.ndarray]:
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self._outputs]

    def output_quantization(self) -> tuple[float, int] | None:
        detail = self._outputs[0]
        scale, zero = detail.get("quantization", (0.0, 0))
        if np.dtype(detail["dtype"]).kind == "f" or not scale:
            return None
        return float(scale), int(zero)

    def detected_precision(self) -> str | None:
        dtypes = {np.dtype(d["dtype"]) for d in self.interpreter.get_tensor_details()}
        if np.dtype(np.int8) in dtypes or np.dtype(np.uint8) in dtypes:
            return "int8"
        return "fp16" if np.dtype(np.float16) in dtypes else "fp32"

    def info(self) -> dict[str, Any]:
        version = getattr(importlib.import_module(self._module_name), "__version__", None)
        return {**super().info(), "version": version, "package": self._module_name,
                "xnnpack": self._xnnpack}
