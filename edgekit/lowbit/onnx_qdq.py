"""Store exported low-bit weights as int8 + DequantizeLinear where that is exact.

After ``materialize`` and ONNX export (which folds BatchNorm into Conv), a binary or
symmetric-ternary weight still takes per output channel the values {-a_c, 0, +a_c}: int8
codes {-1, 0, 1} with per-channel scale a_c reproduce it exactly, so the file shrinks ~4x
and a QDQ-aware runtime sees the weights as int8. Weights that do not fit (TTQ with
W_p != W_n, hashed layers, full-precision layers) stay float. Only weight-side QDQ is
written: activations stay float, and no runtime here has 1- or 2-bit kernels.
"""

from __future__ import annotations

import os

import numpy as np

from edgekit.core.errors import ExportError
from edgekit.core.io import atomic_path
from edgekit.core.lazy import require

MIN_OPSET = 13  # per-axis DequantizeLinear


def symmetric_levels(weight: np.ndarray) -> np.ndarray | None:
    """Per-output-channel a_c when every channel takes values in {-a_c, 0, +a_c}, else None."""
    rows = np.abs(weight.reshape(weight.shape[0], -1))
    scales = rows.max(axis=1)
    if not np.all((rows == 0) | (rows == scales[:, None])):
        return None
    return np.where(scales > 0, scales, np.float32(1.0)).astype(np.float32)


def _weight_inputs(graph) -> dict[str, int]:
    """Weight input name -> its output-channel axis: Conv and Gemm(transB=1) weights are
    [out, ...] (axis 0); MatMul and Gemm(transB=0) right operands are [in, out] (axis 1)."""
    axes: dict[str, int] = {}
    for node in graph.node:
        if len(node.input) < 2:
            continue
        if node.op_type == "Conv":
            axes.setdefault(node.input[1], 0)
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            axes.setdefault(node.input[1], 0 if trans_b == 1 else 1)
        elif node.op_type == "MatMul":
            axes.setdefault(node.input[1], 1)
    return axes


def weights_to_qdq(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> list[str]:
    """Rewrite every exactly representable Conv/Gemm weight of ``src`` as int8 + DQ.

    Writes ``dst`` atomically and returns the names of the rewritten weights.
    """
    onnx = require("onnx", purpose="low-bit QDQ export")
    from onnx import helper, numpy_helper

    try:
        model = onnx.load(str(src))
    except Exception as exc:  # OSError, protobuf DecodeError, ...: all mean "not readable"
        raise ExportError(f"cannot read ONNX file {src}: {exc}") from None
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ExportError(f"per-channel DequantizeLinear needs opset >= {MIN_OPSET}, "
                          f"the file has {opset}")
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    done: list[str] = []
    new_nodes = []
    for name, axis in _weight_inputs(graph).items():
        if name not in inits:
            continue
        weight = numpy_helper.to_array(inits[name]).astype(np.float32)
        if weight.ndim < 2 or (axis == 1 and weight.ndim != 2):
            continue
        scales = symmetric_levels(weight if axis == 0 else weight.T)
        if scales is None:
            continue
        codes = np.sign(weight).astype(np.int8)
        graph.initializer.remove(inits[name])
        graph.initializer.extend([
            numpy_helper.from_array(codes, f"{name}_int8"),
            numpy_helper.from_array(scales, f"{name}_scale"),
            numpy_helper.from_array(np.zeros_like(scales, dtype=np.int8), f"{name}_zero_point"),
        ])
        new_nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"], [name],
            name=f"{name}_dequantize", axis=axis))
        done.append(name)
    # DequantizeLinear nodes go first: their inputs are initializers, so order stays valid.
    nodes = new_nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    with atomic_path(dst) as tmp:
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
    return done
