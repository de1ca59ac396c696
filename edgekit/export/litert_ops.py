"""Look inside a .tflite with the LiteRT interpreter: every op and the dtypes it runs in.

The interpreter is opened without its default (XNNPACK) delegate so that the op list is
the model's own, not one DELEGATE node. An op "computes in float" when any of its
activation tensors is float32; constant int32 operands (shapes, axes, biases) do not count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgekit.core.errors import FormatError, first_line

# TFLite builtins that do arithmetic (as opposed to moving or re-typing data).
COMPUTE_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL",
    "ADD", "SUB", "MUL", "DIV", "MEAN", "SUM", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "HARD_SWISH", "LOGISTIC", "SOFTMAX", "RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1",
    "PRELU", "LEAKY_RELU", "TANH", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "RSQRT", "SQRT", "EXP", "LOG", "POW",
    "NEG", "ABS", "CONCATENATION", "PAD", "PADV2",
})
REQUANTIZE_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@dataclass(frozen=True)
class OpInfo:
    """One op of the model's (only) subgraph, in execution order."""

    index: int
    op_name: str
    input_dtypes: tuple[str, ...]
    output_dtypes: tuple[str, ...]
    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()

    @property
    def runs_in_float(self) -> bool:
        return "float32" in self.input_dtypes or "float32" in self.output_dtypes


def open_interpreter(path: str | os.PathLike[str], *, threads: int = 1, delegate: bool = True):
    """A LiteRT interpreter for ``path`` (ai-edge-litert, or tflite-runtime on a board)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        from edgekit.core.lazy import require

        tfl = require("tflite_runtime.interpreter", purpose="running .tflite files")
        Interpreter, OpResolverType = tfl.Interpreter, tfl.OpResolverType
    if not os.path.isfile(path):
        raise FormatError(f"no such .tflite file: {path}")
    resolver = (OpResolverType.AUTO if delegate
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    try:
        interp = Interpreter(model_path=os.fspath(path), num_threads=threads,
                             experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise FormatError(f"LiteRT cannot load {path}: {first_line(exc)}") from None
    return interp


def inspect_tflite(path: str | os.PathLike[str]) -> list[OpInfo]:
    """Every op of the model with the dtypes of its tensors (constant int32 operands included)."""
    interp = open_interpreter(path, delegate=False)
    ops = []
    for op in interp._get_ops_details():
        ins = tuple(i for i in op["inputs"] if i >= 0)
        outs = tuple(op["outputs"])
        ops.append(OpInfo(
            index=int(op["index"]),
            op_name=str(op["op_name"]),
            input_dtypes=tuple(_dtype(interp, i) for i in ins),
            output_dtypes=tuple(_dtype(interp, i) for i in outs),
            inputs=ins,
            outputs=outs,
        ))
    return ops


def _dtype(interp, tensor: int) -> str:
    return interp._get_tensor_details(tensor, 0)["dtype"].__name__


def float_compute_ops(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(op_name, reason) for every op touching float32 activations; empty for a full-int8 body.

    QUANTIZE/DEQUANTIZE ops on the model's inputs/outputs are listed with the reason
    "I/O edge"; anywhere else they mark a float island and say which op they feed.
    """
    interp = open_interpreter(path, delegate=False)
    graph_inputs = {d["index"] for d in interp.get_input_details()}
    graph_outputs = {d["index"] for d in interp.get_output_details()}
    ops = inspect_tflite(path)
    consumers: dict[int, list[str]] = {}
    for op in ops:
        for t in op.inputs:
            consumers.setdefault(t, []).append(op.op_name)
    found = []
    for op in ops:
        if not op.runs_in_float:
            continue
        if op.op_name in REQUANTIZE_OPS:
            if set(op.inputs) & graph_inputs:
                reason = f"I/O edge: model input {op.input_dtypes[0]} → {op.output_dtypes[0]}"
            elif set(op.outputs) & graph_outputs:
                reason = f"I/O edge: model output {op.input_dtypes[0]} → {op.output_dtypes[0]}"
            else:
                feeds = sorted({c for t in op.outputs for c in consumers.get(t, [])})
                reason = (f"float island: {op.op_name} feeds {', '.join(feeds) or 'nothing'} "
                          "(an op the quantizer left un-annotated)")
        elif op.op_name in COMPUTE_OPS:
            reason = "computes in float32: no int8 quantization parameters on its tensors"
        else:
            reason = "moves float32 data between float ops"
        found.append((op.op_name, reason))
    return found


def op_counts(path: str | os.PathLike[str]) -> dict[str, int]:
    """How many of each op the model holds."""
    counts: dict[str, int] = {}
    for op in inspect_tflite(path):
        counts[op.op_name] = counts.get(op.op_name, 0) + 1
    return counts
