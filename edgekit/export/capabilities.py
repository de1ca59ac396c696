"""The exporter capability table, as data: suffix, precisions, options, host requirements.

``export()`` looks a format up here and validates every option *before* any work starts
(Ultralytics keeps the same facts in a DataFrame; here they are typed). Each row names
the function that does the work by module path, so reading the table imports nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.core.lazy import require
from edgekit.core.registry import Registry, close_names


@dataclass(frozen=True)
class Option:
    """One keyword an exporter accepts: its type, allowed values and default."""

    types: tuple[type, ...]
    default: Any = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def check(self, fmt: str, name: str, value: Any) -> None:
        if value is None:
            return
        wrong_bool = isinstance(value, bool) and bool not in self.types
        if not isinstance(value, self.types) or wrong_bool:
            kinds = "/".join(t.__name__ for t in self.types)
            raise InvalidInputError(f"{fmt} option {name}={value!r} must be {kinds}")
        if self.choices is not None and value not in self.choices:
            raise InvalidInputError(f"{fmt} option {name}={value!r} must be one of "
                                    f"{', '.join(map(str, self.choices))}")


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str
    precisions: tuple[str, ...]
    function: str  # "module:callable" that writes the file and returns an Artifact
    requires: tuple[str, ...]  # importable modules the host must have
    options: Mapping[str, Option] = field(default_factory=dict)
    description: str = ""
    runtime: str | None = None  # the runtime that verifies the file (None: by its suffix)

    def validate(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Reject unknown or ill-typed options; return them (``None`` values dropped)."""
        for key, value in options.items():
            spec = self.options.get(key)
            if spec is None:
                close = close_names(key, self.options, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise InvalidInputError(f"{self.name} export has no option {key!r}{hint} "
                                        f"(options: {', '.join(sorted(self.options))})")
            spec.check(self.name, key, value)
        return {k: v for k, v in options.items() if v is not None}

    def check_host(self) -> None:
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                require(module, purpose=f"{self.name} export")  # raises with the extra to install

    def exporter(self) -> Callable[..., Any]:
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "suffix": self.suffix, "precisions": list(self.precisions),
                "requires": list(self.requires), "description": self.description,
                "runtime": self.runtime,
                "options": {k: {"types": [t.__name__ for t in o.types], "default": o.default,
                                "choices": list(o.choices) if o.choices else None, "help": o.help}
                            for k, o in self.options.items()}}


_SHAPE = Option((tuple, list), help="(C, H, W) of one sample; defaults to the calibrated shape")
_META = Option((dict,), help="extra provenance entries stored in the file")

FORMATS: Registry[ExportFormat] = Registry("export format")

FORMATS.register("onnx")(ExportFormat(
    name="onnx", suffix=".onnx", precisions=("fp32", "int8"),
    function="edgekit.export.onnx:export_onnx", requires=("torch", "onnx"),
    description="ONNX; int8 as QuantizeLinear/DequantizeLinear (TensorRT, onnxruntime)",
    options={"input_shape": _SHAPE, "dynamic_batch": Option((bool,), True),
             "opset": Option((int,), 17, choices=tuple(range(13, 22))), "metadata": _META},
))
FORMATS.register("tflite")(ExportFormat(
    name="tflite", suffix=".tflite", precisions=("fp32", "int8"),
    function="edgekit.export.tflite:export_tflite", requires=("torch", "litert_torch"),
    description="TFLite flatbuffer via litert-torch; int8 is full-integer",
    options={"calibration": Option((object,), help="N×C×H×W float32 samples"),
             "io_dtype": Option((str,), None, choices=("int8", "uint8", "float32")),
             "input_shape": _SHAPE, "metadata": _META},
))
FORMATS.register("lce")(ExportFormat(
    name="lce", suffix=".tflite", precisions=("binary", "int8 weights"),
    function="edgekit.export.lce:export_lce", requires=("torch", "ai_edge_litert"),
    description="TFLite with Larq Compute Engine's 1-bit ops (LceBconv2d) for the low-bit "
                "zoo's binary nets; ternary nets as int8 weights; verified in LCE's interpreter",
    options={"input_shape": _SHAPE, "metadata": _META}, runtime="lce",
))
FORMATS.register("engine")(ExportFormat(
    name="engine", suffix=".engine", precisions=("fp32", "fp16", "int8"),
    function="edgekit.export.tensorrt:export_engine", requires=("torch", "onnx"),
    description="TensorRT engine from the QDQ ONNX (built where tensorrt imports; otherwise "
                "the ONNX, a trtexec command and a build config are written for the device)",
    options={"input_shape": _SHAPE, "metadata": _META,
             "fp16": Option((bool,), True, help="allow fp16 for layers without Q/DQ"),
             "max_batch": Option((int,), 8), "opt_batch": Option((int,), 1),
             "workspace_mib": Option((int,), 1024),
             "timing_cache": Option((str,), None, help="path of a timing cache to reuse")},
))


def list_formats() -> list[dict[str, Any]]:
    """Every export format as a plain dict (what `edgekit export --list` prints)."""
    return [FORMATS.get(name).to_dict() for name in FORMATS]
