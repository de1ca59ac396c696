"""Pre-flight: which ops of a model the target runs in int8, runs in float, or cannot run.

Runs before any training: the model is exported to a float ONNX (in a temporary folder)
and each node is looked up in the target's table. The tables are curated from the
vendors' lists — onnx-tensorrt's supported-operator list (TensorRT 8.6/10) and TFLite's
builtin operators with int8 kernels (TFLite 8-bit quantization spec) — and are plain data.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgekit.core.errors import FormatError, InvalidInputError, UnsupportedOpError
from edgekit.core.lazy import require

TARGETS = ("tensorrt", "onnxruntime", "tflite")

# ONNX ops TensorRT computes in int8 when their inputs carry Q/DQ (explicit quantization).
TRT_INT8 = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "AveragePool",
            "GlobalAveragePool", "MaxPool", "GlobalMaxPool", "Concat", "Relu", "Clip",
            "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity",
            "Constant", "Shape", "Gather", "Slice", "Split", "Pad", "Resize", "Mul",
            "ReduceMean", "Dropout", "QuantizeLinear", "DequantizeLinear", "Cast", "Sub"}
# Supported by TensorRT's ONNX parser, but computed in fp16/fp32 (or fused into the
# int8 convolution before them).
TRT_FLOAT = {"HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Div",
             "Exp", "Log", "Sqrt", "Pow", "Erf", "Gelu", "Elu", "Selu", "LeakyRelu", "PRelu",
             "BatchNormalization", "InstanceNormalization", "LayerNormalization",
             "GroupNormalization", "ReduceMax", "ReduceSum", "ReduceMin", "ArgMax", "TopK",
             "Softplus", "Where", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
             "Max", "Min", "Neg", "Abs",
             "Reciprocal", "Floor", "Ceil", "Expand", "Tile", "ConstantOfShape", "Range",
             "Einsum", "CumSum", "DepthToSpace", "SpaceToDepth", "Upsample", "LRN",
             "Sum", "Mean", "Not", "And", "Or", "GatherElements", "GatherND", "ScatterND",
             "NonZero", "OneHot", "Trilu", "GridSample", "RoiAlign", "If", "Loop", "LSTM",
             "GRU", "RNN", "Mish", "Sign", "Round", "Sin", "Cos"}
# ONNX op -> TFLite builtin with an int8 kernel (what the full-integer converter emits).
TFLITE_INT8 = {"Conv": "CONV_2D / DEPTHWISE_CONV_2D", "ConvTranspose": "TRANSPOSE_CONV",
               "Gemm": "FULLY_CONNECTED", "MatMul": "FULLY_CONNECTED / BATCH_MATMUL",
               "Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Relu": "RELU (fused)",
               "Clip": "RELU6 / RELU_N1_TO_1 (fused)", "HardSwish": "HARD_SWISH",
               "Sigmoid": "LOGISTIC", "HardSigmoid": "HARD_SWISH pattern / LOGISTIC",
               "Tanh": "TANH", "Softmax": "SOFTMAX", "AveragePool": "AVERAGE_POOL_2D",
               "GlobalAveragePool": "MEAN", "ReduceMean": "MEAN", "MaxPool": "MAX_POOL_2D",
               "GlobalMaxPool": "REDUCE_MAX", "Concat": "CONCATENATION",
               "Reshape": "RESHAPE", "Flatten": "RESHAPE", "Transpose": "TRANSPOSE",
               "Squeeze": "SQUEEZE", "Unsqueeze": "RESHAPE", "Pad": "PAD",
               "Resize": "RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR", "Slice": "STRIDED_SLICE",
               "Split": "SPLIT", "PRelu": "PRELU", "LeakyRelu": "LEAKY_RELU",
               "BatchNormalization": "folded into CONV_2D", "Identity": "(removed)",
               "Constant": "(constant tensor)", "Dropout": "(removed)",
               "Gather": "GATHER", "Max": "MAXIMUM", "Min": "MINIMUM"}
# Builtins TFLite has, but only in float (no int8 kernel): they force DEQUANTIZE/QUANTIZE.
TFLITE_FLOAT = {"Div": "DIV", "Exp": "EXP", "Log": "LOG", "Sqrt": "SQRT", "Pow": "POW",
                "Erf": "(decomposed, float)", "Gelu": "GELU", "Elu": "ELU",
                "Reciprocal": "DIV", "Floor": "FLOOR", "Ceil": "CEIL", "Shape": "SHAPE",
                "Cast": "CAST", "Where": "SELECT_V2", "Equal": "EQUAL", "Greater": "GREATER",
                "Less": "LESS", "ArgMax": "ARG_MAX", "TopK": "TOPK_V2",
                "InstanceNormalization": "(decomposed, float)", "LayerNormalization":
                "(decomposed, float)", "Expand": "BROADCAST_TO", "Tile": "TILE",
                "ReduceMax": "REDUCE_MAX", "ReduceSum": "SUM", "Neg": "NEG", "Abs": "ABS",
                "DepthToSpace": "DEPTH_TO_SPACE", "SpaceToDepth": "SPACE_TO_DEPTH",
                "Upsample": "RESIZE_NEAREST_NEIGHBOR", "LogSoftmax": "LOG_SOFTMAX",
                "Range": "RANGE", "ConstantOfShape": "FILL", "Softplus": "(decomposed, float)"}


@dataclass(frozen=True)
class Finding:
    layer: str  # the ONNX node name, which carries the torch module path
    op: str
    status: str  # "int8" | "float" | "unsupported"
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def check_model(model: Any, target: str, input_shape: tuple[int, ...] | None = None, *,
                include_int8: bool = False, strict: bool = True) -> list[Finding]:
    """Findings for the ops ``target`` runs in float or cannot run (int8 ones on request).

    ``model`` is a torch module (exported to a temporary float ONNX with ``input_shape``)
    or the path of an .onnx file. With ``strict`` an op the target cannot run raises
    UnsupportedOpError naming the op, the layer and the target.
    """
    if target not in TARGETS:
        raise InvalidInputError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    nodes = _onnx_nodes(model, input_shape)
    findings = [_classify(name, op, target) for name, op in nodes]
    if strict:
        bad = next((f for f in findings if f.status == "unsupported"), None)
        if bad is not None:
            raise UnsupportedOpError(f"{target} cannot run op {bad.op} (layer {bad.layer}): "
                                     f"{bad.reason}")
    return [f for f in findings if include_int8 or f.status != "int8"]


def _classify(layer: str, op: str, target: str) -> Finding:
    if target == "tflite":
        if op in TFLITE_INT8:
            return Finding(layer, op, "int8", f"builtin {TFLITE_INT8[op]}")
        if op in TFLITE_FLOAT:
            return Finding(layer, op, "float", f"builtin {TFLITE_FLOAT[op]} has no int8 "
                           "kernel; the converter brackets it with DEQUANTIZE/QUANTIZE")
        return Finding(layer, op, "unsupported", "no TFLite builtin op")
    if op in TRT_INT8:
        return Finding(layer, op, "int8", "int8 with Q/DQ on its inputs")
    if op in TRT_FLOAT:
        reason = ("runs in fp16/fp32 unless fused into the preceding int8 layer"
                  if target == "tensorrt" else "onnxruntime has no int8 kernel; runs in fp32")
        return Finding(layer, op, "float", reason)
    if target == "onnxruntime":  # the CPU provider implements every standard op
        return Finding(layer, op, "float", "no int8 kernel in onnxruntime; runs in fp32")
    return Finding(layer, op, "unsupported", "not in TensorRT's ONNX operator list")


def _onnx_nodes(model: Any, input_shape: tuple[int, ...] | None) -> list[tuple[str, str]]:
    onnx = require("onnx", purpose="the pre-flight op check")
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file() or path.suffix != ".onnx":
            raise InvalidInputError(f"{path} is not an .onnx file")
        try:
            proto = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError and others for a damaged file
            raise FormatError(f"{path}: not a readable ONNX file ({exc})") from None
    else:
        from edgekit.export.onnx import export_onnx

        with tempfile.TemporaryDirectory(prefix="edgekit-check-") as tmp:
            art = export_onnx(model, Path(tmp) / "model.onnx", input_shape=input_shape)
            proto = onnx.load(str(art.path))
    return [(n.name or n.output[0], n.op_type) for n in proto.graph.node]
