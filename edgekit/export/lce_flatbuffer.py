"""Write TFLite flatbuffers that carry Larq Compute Engine's 1-bit custom ops.

No TensorFlow: the TFLite schema object API of ``ai_edge_litert`` builds the model and
``flatbuffers.flexbuffers`` the custom-op options. The conventions are LCE's
(larq/compute-engine, ``core/bitpacking/bitpack.h`` and ``mlir/ir/lce_ops.cc``):

* bit-packing runs along the last (channel) axis, 32 values per int32 word, value ``i`` of
  a word in bit ``i`` (LSB first); bit set = -1 (``x < 0``), bit clear = +1; the tail bits
  of the last word are 0.
* ``LceBconv2d`` inputs: bit-packed int32 input, int32 OHWI filter ``[O, H, W, ceil(I/32)]``,
  ``post_activation_multiplier`` and ``post_activation_bias`` (f32[O]), ``output_threshold``
  (unused with float output: optional input -1). Float output =
  ``(I - 2 * popcount(x XOR w)) * multiplier + bias`` (the dot product of the ±1 values).
* options: a flexbuffer map of ints ``channels_in``, ``stride_height``/``_width``,
  ``dilation_height_factor``/``_width_factor``, ``padding`` (TFLite: SAME 0, VALID 1),
  ``pad_values`` (0: zeros, 1: +1) and ``fused_activation_function`` (NONE 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekit.core.errors import InvalidInputError

BITS = 32
LCE_QUANTIZE, LCE_BCONV2D, LCE_DEQUANTIZE = "LceQuantize", "LceBconv2d", "LceDequantize"
SAME, VALID = 0, 1  # tflite.Padding


def packed_size(channels: int) -> int:
    return -(-channels // BITS)


def pack_signs(values: np.ndarray) -> np.ndarray:
    """Bit-pack the last axis of ``values`` into int32 words the way LCE does (bit = x < 0)."""
    values = np.asarray(values)
    channels = values.shape[-1]
    words = packed_size(channels)
    bits = np.zeros((*values.shape[:-1], words * BITS), dtype=np.uint8)
    bits[..., :channels] = values < 0
    weights = (np.uint64(1) << np.arange(BITS, dtype=np.uint64))
    grouped = bits.reshape(*values.shape[:-1], words, BITS).astype(np.uint64)
    return (grouped * weights).sum(axis=-1).astype(np.uint32).view(np.int32)


def unpack_signs(words: np.ndarray, channels: int) -> np.ndarray:
    """±1 float32 values from LCE words (inverse of ``pack_signs`` on ±1 input)."""
    u = np.asarray(words, dtype=np.int32).view(np.uint32).astype(np.uint64)
    bits = (u[..., None] >> np.arange(BITS, dtype=np.uint64)) & np.uint64(1)
    bits = bits.reshape(*u.shape[:-1], -1)[..., :channels]
    return np.where(bits == 1, -1.0, 1.0).astype(np.float32)


def bconv_options(channels_in: int, stride: tuple[int, int], padding: int, pad_values: int,
                  dilation: tuple[int, int] = (1, 1)) -> bytes:
    """The flexbuffer options map of one ``LceBconv2d``."""
    if padding not in (SAME, VALID) or pad_values not in (0, 1):
        raise InvalidInputError(f"padding must be SAME/VALID and pad_values 0 or 1, got "
                                f"{padding}, {pad_values}")
    from flatbuffers import flexbuffers

    return bytes(flexbuffers.Dumps({
        "channels_in": int(channels_in), "stride_height": int(stride[0]),
        "stride_width": int(stride[1]), "dilation_height_factor": int(dilation[0]),
        "dilation_width_factor": int(dilation[1]), "padding": int(padding),
        "pad_values": int(pad_values), "fused_activation_function": 0,
    }))


@dataclass
class GraphBuilder:
    """One subgraph, built op by op: ``tensor``/``constant`` make tensors, ``builtin`` and
    ``custom`` append operators, ``finish`` serializes the model."""

    tensors: list = field(default_factory=list)
    buffers: list = field(default_factory=list)
    operators: list = field(default_factory=list)
    opcodes: dict = field(default_factory=dict)
    opcode_list: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.schema = _schema()
        self.buffers.append(self.schema.BufferT())  # buffer 0: the empty buffer by convention

    def tensor(self, name: str, shape: tuple[int, ...], dtype: type = np.float32) -> int:
        t = self.schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), _tflite_type(dtype), 0
        self.tensors.append(t)
        return len(self.tensors) - 1

    def constant(self, name: str, array: np.ndarray, *, scale: np.ndarray | None = None,
                 axis: int = 0) -> int:
        """A constant tensor; ``scale`` makes it an int8 tensor with per-``axis`` scales."""
        array = np.ascontiguousarray(array)
        index = self.tensor(name, array.shape, array.dtype.type)
        buf = self.schema.BufferT()
        buf.data = np.frombuffer(array.tobytes(), dtype=np.uint8).copy()
        self.buffers.append(buf)
        self.tensors[index].buffer = len(self.buffers) - 1
        if scale is not None:
            q = self.schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [0] * len(q.scale)
            q.quantizedDimension = axis
            self.tensors[index].quantization = q
        return index

    def _opcode(self, builtin: int, custom: str | None = None) -> int:
        key = (builtin, custom)
        if key not in self.opcodes:
            code = self.schema.OperatorCodeT()
            code.builtinCode, code.deprecatedBuiltinCode = builtin, min(builtin, 127)
            code.customCode, code.version = custom, 1
            self.opcode_list.append(code)
            self.opcodes[key] = len(self.opcode_list) - 1
        return self.opcodes[key]

    def builtin(self, op: str, inputs: list[int], outputs: list[int],
                options: object | None = None) -> None:
        o = self.schema.OperatorT()
        o.opcodeIndex = self._opcode(getattr(self.schema.BuiltinOperator, op))
        o.inputs, o.outputs = list(inputs), list(outputs)
        if options is not None:
            o.builtinOptionsType = getattr(self.schema.BuiltinOptions,
                                           type(options).__name__[:-1])
            o.builtinOptions = options
        self.operators.append(o)

    def custom(self, name: str, inputs: list[int], outputs: list[int],
               options: bytes = b"") -> None:
        o = self.schema.OperatorT()
        o.opcodeIndex = self._opcode(self.schema.BuiltinOperator.CUSTOM, name)
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.customOptions = np.frombuffer(options, dtype=np.uint8).copy() if options else None
        o.customOptionsFormat = self.schema.CustomOptionsFormat.FLEXBUFFERS
        self.operators.append(o)

    def unique(self, stem: str) -> str:
        return f"{stem}_{len(self.tensors)}"

    def reshape(self, x: int, shape: tuple[int, ...]) -> int:
        out = self.tensor(self.unique("reshape"), shape)
        target = self.constant(self.unique("shape"), np.array(shape, np.int32))
        self.builtin("RESHAPE", [x, target], [out],
                     self.options("ReshapeOptions", newShape=list(shape)))
        return out

    def mean(self, x: int, axes: list[int], shape: tuple[int, ...]) -> int:
        """MEAN over ``axes`` (kept as size 1): ``shape`` is the input's."""
        out = self.tensor(self.unique("mean"),
                          tuple(1 if i in axes else d for i, d in enumerate(shape)))
        self.builtin("MEAN", [x, self.constant(self.unique("axes"), np.array(axes, np.int32))],
                     [out], self.options("ReducerOptions", keepDims=True))
        return out

    def elementwise(self, op: str, inputs: list[int], shape: tuple[int, ...]) -> int:
        """ADD / MUL (broadcasting, no fused activation) or a one-input op (ABS, RELU)."""
        out = self.tensor(self.unique(op.lower()), shape)
        kind = {"ADD": "AddOptions", "MUL": "MulOptions"}.get(op)
        self.builtin(op, inputs, [out],
                     self.options(kind, fusedActivationFunction=0) if kind else None)
        return out

    def options(self, kind: str, **values: object) -> object:
        """A builtin options object, e.g. ``options("Conv2DOptions", strideH=1)``."""
        obj = getattr(self.schema, kind + "T")()
        for key, value in values.items():
            setattr(obj, key, value)
        return obj

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        from ai_edge_litert.tools import flatbuffer_utils as fbu

        sg = self.schema.SubGraphT()
        sg.tensors, sg.operators = self.tensors, self.operators
        sg.inputs, sg.outputs, sg.name = list(inputs), list(outputs), "main"
        model = self.schema.ModelT()
        model.version, model.description = 3, description
        model.operatorCodes, model.subgraphs, model.buffers = self.opcode_list, [sg], self.buffers
        return bytes(fbu.convert_object_to_bytearray(model))


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _tflite_type(dtype: type) -> int:
    types = _schema().TensorType
    table = {np.float32: types.FLOAT32, np.int32: types.INT32, np.int8: types.INT8}
    if dtype not in table:
        raise InvalidInputError(f"no TFLite tensor type for {dtype}")
    return table[dtype]
