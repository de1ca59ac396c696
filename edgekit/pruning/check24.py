"""Does a weight tensor, or every Conv/Gemm/MatMul of an ONNX file, hold the 2:4 pattern?

TensorRT's pattern: in every group of 4 consecutive input channels, at least 2 zeros,
for each output channel and kernel position. In an int8 QDQ file the weight is an int8
initializer feeding DequantizeLinear, and "zero" means the stored value equals the zero
point (0 for TensorRT's symmetric weights); a float weight behind QuantizeLinear counts as
zero where it quantizes to the zero point. A layer is *eligible* when TensorRT can run it
with sparse weights at all (``SparsityConfig``'s shape rule, the rule ``sparsify_24``
masks by); ``pattern_ok`` asks every eligible layer to conform.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekit.core.errors import FormatError
from edgekit.core.lazy import require
from edgekit.pruning.config import SparsityConfig


@dataclass(frozen=True)
class LayerConformance:
    """One Conv/Gemm/MatMul of a file: its weight's 2:4 conformance and why not."""

    name: str
    op: str
    shape: tuple[int, ...]  # weight as [out, in, ...] (Gemm/MatMul transposed to that)
    int8: bool  # read from an integer initializer through DequantizeLinear
    eligible: bool  # TensorRT could run it 2:4 sparse (groups == 1, channel alignment)
    conforms: bool
    reason: str  # why it does not conform, or why it is not eligible; "" otherwise

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["shape"] = list(self.shape)
        return out


def check_24(weight: Any, *, zero_point: Any = 0) -> tuple[bool, str]:
    """(conforms, reason) for a [K, C, ...] weight (torch tensor or numpy array); a value
    counts as zero where it equals ``zero_point`` (a scalar, or one per output channel)."""
    w = _numpy(weight)
    if w.ndim < 2:
        return False, f"weight has {w.ndim} dimension(s); expected [out, in, ...]"
    k, c = w.shape[0], w.shape[1]
    if c % 4:
        return False, f"input channels {c} not a multiple of 4"
    zp = np.asarray(_numpy(zero_point)).reshape(-1)
    zp = zp.reshape((-1,) + (1,) * (w.ndim - 1)) if zp.size > 1 else zp.reshape(())
    nonzero = np.moveaxis(w != zp, 1, -1).reshape(k, -1, c // 4, 4).sum(-1)
    bad = nonzero > 2
    if not bad.any():
        return True, ""
    out, pos, group = (int(i[0]) for i in np.nonzero(bad))
    return False, (f"{int(bad.sum())} of {bad.size} groups of 4 input channels have more than "
                   f"2 non-zeros (first: output {out}, input channels {4 * group}-"
                   f"{4 * group + 3}, kernel position {pos})")


def pattern_ok(rows: list[LayerConformance]) -> bool:
    """Every eligible layer conforms (and there is at least one)."""
    eligible = [r for r in rows if r.eligible]
    return bool(eligible) and all(r.conforms for r in eligible)


def check_24_onnx(path: str | os.PathLike[str], config: SparsityConfig | None = None
                  ) -> list[LayerConformance]:
    """Per Conv/Gemm/MatMul whose weight is an initializer (or a Constant): conformance."""
    onnx = require("onnx", purpose="checking 2:4 sparsity in an ONNX file")
    from onnx import numpy_helper

    config = config or SparsityConfig()
    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise FormatError(f"{path}: not a readable ONNX file ({exc})") from None
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.name == "value":
                consts[node.output[0]] = numpy_helper.to_array(attr.t)
    producer = {o: n for n in graph.node for o in n.output}
    rows = []
    for index, node in enumerate(graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        found = _weight(node.input[1], consts, producer)
        if found is None:
            continue  # an activation x activation MatMul: no weight to check
        weight, zp, int8 = found
        weight, zp = _as_out_in(node, weight, zp)
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        reason = _ineligible(node.op_type, weight, groups, config)
        ok, why = check_24(weight, zero_point=zp)
        rows.append(LayerConformance(node.name or f"{node.op_type}_{index}", node.op_type,
                                     tuple(int(d) for d in weight.shape), int8,
                                     reason is None, ok, why if reason is None else reason))
    return rows


def format_conformance(rows: list[LayerConformance]) -> str:
    """The table ``edgekit inspect FILE.onnx`` prints."""
    lines = [f"{'layer':<44} {'op':<7} {'weight':<18} {'int8':<5} {'2:4':<10} reason"]
    for r in rows:
        state = ("yes" if r.conforms else "NO") if r.eligible else "dense"
        shape = "x".join(str(d) for d in r.shape)
        lines.append(f"{r.name[-44:]:<44} {r.op:<7} {shape:<18} {'yes' if r.int8 else 'no':<5} "
                     f"{state:<10} {r.reason}")
    eligible = [r for r in rows if r.eligible]
    lines.append(f"{sum(r.conforms for r in eligible)} of {len(eligible)} eligible layers hold "
                 f"2:4 ({len(rows) - len(eligible)} not eligible); pattern_ok="
                 f"{pattern_ok(rows)}")
    return "\n".join(lines)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _weight(name: str, consts: dict[str, np.ndarray], producer: dict[str, Any]
            ) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """(values, zero point, int8) behind a weight input: an initializer, or one reached
    through DequantizeLinear (and QuantizeLinear for a float initializer)."""
    if name in consts:
        return consts[name], np.zeros(()), False
    node = producer.get(name)
    if node is None or node.op_type != "DequantizeLinear" or node.input[0] == "":
        return None
    zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    zp = np.zeros((), dtype=np.int64) if zp is None else zp.astype(np.int64)
    if node.input[0] in consts:
        return consts[node.input[0]].astype(np.int64), zp, True
    quant = producer.get(node.input[0])
    if quant is None or quant.op_type != "QuantizeLinear" or quant.input[0] not in consts:
        return None
    scale = consts.get(quant.input[1])
    if scale is None:
        return None
    w = consts[quant.input[0]]
    axis = next((a.i for a in quant.attribute if a.name == "axis"), 1)
    shape = [1] * w.ndim
    if scale.size > 1:
        shape[axis] = -1
    q = np.rint(w / scale.reshape(shape)) + zp.reshape(shape if zp.size > 1 else ())
    return q.astype(np.int64), zp, True


def _as_out_in(node: Any, weight: np.ndarray, zp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weight laid out [out, in, ...]: Gemm without transB and MatMul hold [in, out]."""
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    if node.op_type == "MatMul" or (node.op_type == "Gemm" and not trans_b):
        if weight.ndim != 2:
            return weight, zp
        return weight.T, zp
    if zp.size > 1 and zp.shape[0] != weight.shape[0]:
        raise FormatError(f"{node.name}: zero point of size {zp.size} does not match the "
                          f"weight's {weight.shape[0]} output channels")
    return weight, zp


def _ineligible(op: str, weight: np.ndarray, groups: int, config: SparsityConfig) -> str | None:
    if op == "Conv" and groups > 1:
        kind = "depthwise" if weight.shape[1] == 1 else "grouped"
        return f"{kind} convolution (group={groups}): no sparse tensor-core tactic"
    if op != "Conv" and not config.include_linear:
        return "Gemm layers excluded by the config"
    k, c = weight.shape[0], weight.shape[1] if weight.ndim > 1 else 1
    if c % config.in_channels_multiple:
        return f"input channels {c} not a multiple of {config.in_channels_multiple}"
    if k % config.out_channels_multiple:
        return f"output channels {k} not a multiple of {config.out_channels_multiple}"
    return None
