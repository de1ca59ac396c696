"""Per-layer records (op kind, MACs, weight and activation bytes, precision) of a deployed
.onnx or .tflite file, for the latency model in ``edgekit.devices.latency_model``.

ONNX: this layer may not import the ``onnx`` package (boards run it with numpy and a
runtime only), so the graph is read through onnxruntime itself: one profiled run with
graph optimisations off records every node's op type and its input and output shapes.
TFLite: the LiteRT interpreter lists each op with its tensors (shapes, types, constants).

Only kernels are kept. Activations, batch norm and quantize/dequantize pairs of a QDQ
graph are left out (TensorRT and LiteRT fuse them into the producing convolution), and so
are shape-only ops (reshape, flatten, squeeze).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import FormatError, InvalidInputError
from edgekit.devices.latency_model import LayerRecord

_FUSED = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Tanh",
          "Elu", "Selu", "BatchNormalization", "QuantizeLinear", "DequantizeLinear",
          "DynamicQuantizeLinear", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape",
          "Gather", "Constant", "Identity", "Cast", "ConstantOfShape", "Dropout",
          "RELU", "RELU6", "LOGISTIC", "HARD_SWISH", "TANH", "LEAKY_RELU", "PRELU",
          "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "DELEGATE"}
_ORT_COMPUTE = {"Conv": "conv", "ConvTranspose": "conv", "QLinearConv": "conv",
                "ConvInteger": "conv", "Gemm": "matmul", "MatMul": "matmul",
                "QLinearMatMul": "matmul", "MatMulInteger": "matmul"}
_ORT_WEIGHT_INPUT = {"QLinearConv": 3, "QLinearMatMul": 3}
_SIZES = {"float": 4, "float16": 2, "int8": 1, "uint8": 1, "int32": 4, "int64": 8, "bool": 1}


def layer_records(path: str | Path) -> list[LayerRecord]:
    """The kernels of an .onnx or .tflite file, batch 1 (a dynamic batch is set to 1)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    if path.suffix == ".onnx":
        return _onnx_records(path)
    if path.suffix == ".tflite":
        return _tflite_records(path)
    raise InvalidInputError(f"{path.name}: layer records are read from .onnx or .tflite files")


def _onnx_events(path: Path) -> list[dict[str, Any]]:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        opts.intra_op_num_threads = 1
        # a file it cannot load is reported by the error below; without this, the profiler
        # also prints "Could not write a profile" to stderr on the way out
        opts.log_severity_level = 4
        # pre-packed weights drop out of the profiled inputs; keep them to count their bytes
        opts.add_session_config_entry("session.disable_prepacking", "1")
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable files
            raise FormatError(f"{path.name}: onnxruntime cannot load it: {exc}") from None
        feeds = {}
        for i in sess.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
            dtype = np.uint8 if "uint8" in i.type else np.int8 if "int8" in i.type \
                else np.int64 if "int64" in i.type else np.float32
            feeds[i.name] = np.zeros(shape, dtype=dtype)
        sess.run(None, feeds)
        trace = Path(sess.end_profiling())
        events = json.loads(trace.read_text())
    return [e for e in events if e.get("cat") == "Node"
            and str(e.get("name", "")).endswith("_kernel_time")]


def _shapes(entries: list[dict[str, list[int]]]) -> list[tuple[str, list[int]]]:
    return [(t, list(s)) for entry in entries for t, s in entry.items()]


def _onnx_records(path: Path) -> list[LayerRecord]:
    return [record for _, record in named_onnx_records(path)]


def named_onnx_records(path: str | Path) -> list[tuple[str, LayerRecord]]:
    """(node name, record) of every kernel of an ONNX file, in graph order; the names are
    the exporter's (module scope: ``edgekit.bench.layer_latency.layer_of`` reads them)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    events = _onnx_events(path)
    # QDQ graphs: weights dequantized from 8-bit; QOperator graphs: integer kernels
    quantized = any((e["args"]["op_name"] == "DequantizeLinear"
                     and _shapes(e["args"]["input_type_shape"])[0][0] in ("int8", "uint8"))
                    or e["args"]["op_name"] in ("QLinearConv", "QLinearMatMul", "ConvInteger",
                                                "MatMulInteger")
                    for e in events)
    precision = "int8" if quantized else "fp32"
    width = 1 if quantized else 4
    records = []
    for e in events:
        op = e["args"]["op_name"]
        if op in _FUSED:
            continue
        ins = _shapes(e["args"]["input_type_shape"])
        outs = _shapes(e["args"]["output_type_shape"])
        out_elems = sum(math.prod(s) for _, s in outs)
        kind = _ORT_COMPUTE.get(op, "memory")
        macs, weight_elems = 0.0, 0
        if kind != "memory" and len(ins) > 1:
            w = ins[_ORT_WEIGHT_INPUT.get(op, 1)][1]
            weight_elems = math.prod(w)
            x = ins[0][1]
            if op == "ConvTranspose":
                macs = float(math.prod(x) * math.prod(w[1:]))
            elif kind == "conv":
                macs = float(out_elems * math.prod(w[1:]))
                if len(x) > 1 and w[1] == 1 and x[1] > 1:
                    kind = "depthwise"
            else:
                macs = float(out_elems * x[-1])
        act_elems = math.prod(ins[0][1]) + out_elems if ins else out_elems
        if kind == "memory":  # every activation-sized input is read
            act_elems = sum(math.prod(s) for _, s in ins) + out_elems
        records.append((str(e["name"])[:-len("_kernel_time")],
                        LayerRecord(op, kind, macs, float(weight_elems * width),
                                    float(act_elems * width), precision)))
    if not records:
        raise FormatError(f"{path.name}: no kernels found in the graph")
    return records


_TFL_COMPUTE = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise",
                "FULLY_CONNECTED": "matmul", "BATCH_MATMUL": "matmul",
                "TRANSPOSE_CONV": "conv", "CONV_3D": "conv"}


def _tflite_records(path: Path) -> list[LayerRecord]:
    from edgekit.runtime.litert import import_interpreter_module

    module = import_interpreter_module()
    try:  # no delegate: XNNPACK would replace the ops by one DELEGATE node
        interp = module.Interpreter(model_path=str(path), experimental_op_resolver_type=(
            module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    except (ValueError, RuntimeError) as exc:
        raise FormatError(f"{path.name}: LiteRT cannot load it: {exc}") from None
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    produced = {i for op in ops for i in op["outputs"]}
    inputs = {d["index"] for d in interp.get_input_details()}

    def size(i: int) -> tuple[int, int]:
        t = tensors.get(i)
        if t is None or i < 0:
            return 0, 0
        shape = [max(int(d), 1) for d in t["shape"]]
        return math.prod(shape), np.dtype(t["dtype"]).itemsize

    records = []
    for op in ops:
        name = op["op_name"]
        if name in _FUSED:
            continue
        kind = _TFL_COMPUTE.get(name, "memory")
        ins = [i for i in op["inputs"] if i >= 0]
        const = [i for i in ins if i not in produced and i not in inputs]
        acts = [i for i in ins if i not in const]
        outs = list(op["outputs"])
        out_elems = sum(size(i)[0] for i in outs)
        weight = const[0] if kind != "memory" and const else None
        if name == "TRANSPOSE_CONV":  # inputs: output shape, weights, activations
            weight = ins[1] if len(ins) > 1 else None
        macs = 0.0
        if weight is not None and kind != "memory":
            w = [max(int(d), 1) for d in tensors[weight]["shape"]]
            if name == "TRANSPOSE_CONV":
                macs = float(sum(size(i)[0] for i in acts) * math.prod(w[:3]))
            elif kind == "depthwise":
                macs = float(out_elems * w[1] * w[2])
            else:
                macs = float(out_elems * math.prod(w[1:]))
        w_elems, w_size = size(weight) if weight is not None else (0, 0)
        act_bytes = sum(math.prod(size(i)) for i in acts + outs)
        dtype = np.dtype(tensors[weight]["dtype"] if weight is not None
                         else tensors[outs[0]]["dtype"])
        precision = {1: "int8", 2: "fp16"}.get(dtype.itemsize, "fp32")
        records.append(LayerRecord(name, kind, macs, float(w_elems * w_size),
                                   float(act_bytes), precision))
    if not records:
        raise FormatError(f"{path.name}: no kernels found in the graph")
    return records


def summary(records: list[LayerRecord]) -> dict[str, Any]:
    """Totals of a file's records (what the report prints beside an estimate)."""
    return {"layers": len(records), "macs": sum(r.macs for r in records),
            "weight_bytes": sum(r.weight_bytes for r in records),
            "activation_bytes": sum(r.activation_bytes for r in records),
            "precisions": sorted({r.precision for r in records})}
