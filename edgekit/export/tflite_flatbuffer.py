"""Edit a converted .tflite flatbuffer: I/O type of a full-integer model, provenance metadata.

litert-torch emits a full-integer model with int8 input and output. ``set_io_dtype``
gives it uint8 or float32 I/O the way TensorFlow's ``modify_model_interface`` does: the
int8 edge tensors stay, and one QUANTIZE (uint8→int8 / float32→int8) or DEQUANTIZE
(int8→float32) op is added at each edge, so the body of the graph is untouched.
"""

from __future__ import annotations

import json
from typing import Any

from edgekit.core.errors import ExportError, FormatError, InvalidInputError

PROVENANCE_KEY = "edgekit_provenance"
IO_DTYPES = ("int8", "uint8", "float32")


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    return schema, fbu


def _read(data: bytes):
    _, fbu = _schema()
    try:
        return fbu.read_model_from_bytearray(bytearray(data))
    except Exception as exc:  # flatbuffers raises struct/index errors on garbage
        raise FormatError(f"not a readable .tflite flatbuffer: {exc}") from None


def _write(model) -> bytes:
    _, fbu = _schema()
    return bytes(fbu.convert_object_to_bytearray(model))


def _opcode_index(model, builtin: int) -> int:
    schema, _ = _schema()
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _new_tensor(subgraph, like, dtype: int, zero_shift: int | None) -> int:
    """A tensor shaped like ``like``; quantized with ``like``'s scale when zero_shift is set."""
    schema, _ = _schema()
    t = schema.TensorT()
    t.shape = list(like.shape)
    t.shapeSignature = list(like.shapeSignature) if like.shapeSignature is not None else None
    t.type = dtype
    t.buffer = 0
    t.name = like.name
    like.name = (like.name.decode() if isinstance(like.name, bytes) else like.name) + "_int8"
    if zero_shift is not None:
        q = schema.QuantizationParametersT()
        q.scale = list(like.quantization.scale)
        q.zeroPoint = [int(z) + zero_shift for z in like.quantization.zeroPoint]
        q.quantizedDimension = 0
        t.quantization = q
    subgraph.tensors.append(t)
    return len(subgraph.tensors) - 1


def _op(opcode: int, src: int, dst: int):
    schema, _ = _schema()
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs = [src]
    op.outputs = [dst]
    return op


def set_io_dtype(data: bytes, io_dtype: str) -> bytes:
    """Return the model with ``io_dtype`` inputs and outputs (from an int8-I/O model)."""
    if io_dtype not in IO_DTYPES:
        raise InvalidInputError(f"io_dtype must be one of {IO_DTYPES}, not {io_dtype!r}")
    if io_dtype == "int8":
        return data
    schema, _ = _schema()
    model = _read(data)
    if len(model.subgraphs) != 1:
        raise ExportError("only single-subgraph models can change their I/O type")
    sg = model.subgraphs[0]
    int8 = schema.TensorType.INT8
    to_type = schema.TensorType.UINT8 if io_dtype == "uint8" else schema.TensorType.FLOAT32
    shift = 128 if io_dtype == "uint8" else None
    quantize = _opcode_index(model, schema.BuiltinOperator.QUANTIZE)
    out_code = quantize if io_dtype == "uint8" else _opcode_index(
        model, schema.BuiltinOperator.DEQUANTIZE)
    remap: dict[int, int] = {}
    head, tail = [], []
    for pos, idx in enumerate(sg.inputs):
        if sg.tensors[idx].type != int8:
            continue
        new = _new_tensor(sg, sg.tensors[idx], to_type, shift)
        head.append(_op(quantize, new, idx))
        sg.inputs[pos] = remap[idx] = new
    for pos, idx in enumerate(sg.outputs):
        if sg.tensors[idx].type != int8:
            continue
        new = _new_tensor(sg, sg.tensors[idx], to_type, shift)
        tail.append(_op(out_code, idx, new))
        sg.outputs[pos] = remap[idx] = new
    if not remap:
        raise ExportError("the model has no int8 input or output to re-type")
    sg.operators = head + list(sg.operators) + tail
    for sig in model.signatureDefs or []:
        for entry in list(sig.inputs or []) + list(sig.outputs or []):
            entry.tensorIndex = remap.get(entry.tensorIndex, entry.tensorIndex)
    return _write(model)


def add_metadata(data: bytes, provenance: dict[str, Any]) -> bytes:
    """Embed ``provenance`` as JSON under the model metadata key ``edgekit_provenance``."""
    schema, _ = _schema()
    model = _read(data)
    buf = schema.BufferT()
    import numpy as np

    text = json.dumps(provenance, sort_keys=True, default=str).encode("utf-8")
    buf.data = np.frombuffer(text, dtype=np.uint8).copy()
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = PROVENANCE_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m) != PROVENANCE_KEY] + [entry]
    return _write(model)


def read_metadata(data: bytes) -> dict[str, Any] | None:
    """The provenance dict embedded by ``add_metadata``, or None."""
    model = _read(data)
    for entry in model.metadata or []:
        if _name(entry) != PROVENANCE_KEY:
            continue
        if not 0 <= entry.buffer < len(model.buffers):
            raise FormatError("provenance metadata points outside the buffer table")
        raw = model.buffers[entry.buffer].data
        try:
            return json.loads(bytes(raw if raw is not None else b"").decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"provenance metadata is not JSON: {exc}") from None
    return None


def _name(entry) -> str:
    name = entry.name
    return name.decode() if isinstance(name, bytes) else str(name)
