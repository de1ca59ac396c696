"""Export edgekit's binary nets to TFLite with Larq Compute Engine's 1-bit ops (``--format lce``).

The model is materialized (``edgekit.lowbit.materialize``) and walked layer by layer
(the low-bit zoo's nets are sequential, plus Bi-Real blocks):

* a conv / linear on binary inputs (after a sign activation, or an XNOR layer) becomes
  ``LceQuantize`` + ``LceBconv2d`` (a linear is a 1x1 bconv) with bit-packed OHWI filters;
  the weights' per-channel magnitude and the following BatchNorm fold into the bconv's
  ``post_activation_multiplier`` / ``_bias``. XNOR's data-dependent input scale (K, beta)
  stays float: ``MEAN(ABS(x))`` (+ a box ``CONV_2D``) and a ``MUL`` after the bconv.
* the first and the last weight layer stay dense, as in LCE's own models: int8 weights +
  per-channel ``DEQUANTIZE`` where the weights take two or three values per channel
  ({-a, 0, +a}: binary and ternary weights, exact in int8), float32 otherwise. A last layer
  on binary inputs reads them through ``LceQuantize`` + ``LceDequantize``.
* max-pool, global average pool, flatten (the next linear's columns are permuted from
  torch's C,H,W order to NHWC's H,W,C) and Bi-Real shortcuts (``ADD``, ``CONCATENATION``)
  are builtin float ops.

The file's input is float32 NHWC ``[1, H, W, C]``, its output float32 ``[1, classes]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import InvalidInputError, UnsupportedOpError
from edgekit.core.io import atomic_write_bytes, sha256_file
from edgekit.core.lazy import require
from edgekit.export.artifact import Artifact
from edgekit.export.lce_flatbuffer import (
    LCE_BCONV2D,
    LCE_DEQUANTIZE,
    LCE_QUANTIZE,
    SAME,
    VALID,
    GraphBuilder,
    bconv_options,
    pack_signs,
    packed_size,
)
from edgekit.export.tflite_flatbuffer import add_metadata

__all__ = ["export_lce", "lce_model_bytes"]


def export_lce(model: Any, path: str | os.PathLike[str], *,
               input_shape: tuple[int, ...] | None = None,
               metadata: dict[str, Any] | None = None) -> Artifact:
    """Write ``model`` (a binary net of the low-bit zoo, trained or materialized) as an
    LCE ``.tflite`` at ``path``, atomically, with provenance metadata."""
    shape = input_shape or _config_shape(model)
    provenance = {"format": "lce", "converter": "edgekit.export.lce", "input_shape": shape,
                  "ops": "LceQuantize, LceBconv2d, LceDequantize; first/last layer dense",
                  **(metadata or {})}
    data, bconvs = _convert(model, shape)
    # Without a layer on binary inputs (ternary weights, ReLU activations) the file has no
    # LCE op: int8 weights holding {-1, 0, +1} codes, float compute; LiteRT runs it too.
    precision = "binary" if bconvs else "int8 weights"
    provenance["precision"] = precision
    out = atomic_write_bytes(path, add_metadata(data, provenance))
    return Artifact(path=Path(out), format="lce", precision=precision,
                    input_shape=tuple(shape), sha256=sha256_file(out), metadata=provenance)


def lce_model_bytes(model: Any, input_shape: tuple[int, ...]) -> bytes:
    """The LCE flatbuffer of ``model`` for one C×H×W input."""
    return _convert(model, input_shape)[0]


def _convert(model: Any, input_shape: tuple[int, ...]) -> tuple[bytes, int]:
    require("torch", purpose="LCE export")
    from torch import nn

    from edgekit.lowbit import materialize
    from edgekit.models.lowbit.nets import LowBitNet

    # the walk follows the layers in order: the forward of these two, and of nothing else
    if not isinstance(model, (LowBitNet, nn.Sequential)):
        raise UnsupportedOpError(f"LCE export takes the low-bit zoo's nets and nn.Sequential "
                                 f"stacks of their layers, not a {type(model).__name__} with "
                                 "a forward of its own")
    if len(input_shape) != 3:
        raise InvalidInputError(f"input_shape is C, H, W; got {input_shape}")
    plain = materialize(model)
    converter = _Converter(GraphBuilder(), tuple(int(s) for s in input_shape))
    converter.names = {id(m): name for name, m in plain.named_modules()}
    converter.run(_steps(plain))
    return converter.finish(type(model).__name__), converter.bconvs


def _config_shape(model: Any) -> tuple[int, int, int]:
    config = getattr(model, "edgekit_config", None) or {}
    if "in_channels" not in config or "input_size" not in config:
        raise InvalidInputError("pass input_shape (C, H, W): the model has no edgekit_config")
    return (int(config["in_channels"]), int(config["input_size"]), int(config["input_size"]))


def _steps(module: Any) -> list[Any]:
    from torch import nn

    from edgekit.models._blocks import InputCheck
    from edgekit.models.lowbit.nets import LowBitNet

    if isinstance(module, LowBitNet):
        return [*_steps(module.features), nn.Flatten(), *_steps(module.classifier)]
    if isinstance(module, nn.Sequential):
        return [s for m in module for s in _steps(m)]
    if isinstance(module, (nn.Identity, InputCheck)):
        return []
    return [module]


def _affine(bn: Any | None, out: int) -> tuple[np.ndarray, np.ndarray]:
    """(g, h) with BN(x) = g * x + h per channel (identity without a BatchNorm)."""
    if bn is None:
        return np.ones(out), np.zeros(out)
    g = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
    return g, _np(bn.bias) - _np(bn.running_mean) * g


def _np(t: Any) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _levels(w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes in {-1, 0, +1}, magnitude a per output channel) if every weight of channel c
    is -a_c, 0 or +a_c, else None."""
    flat = w.reshape(len(w), -1)
    a = np.abs(flat).max(axis=1)
    if not np.all((np.abs(flat) == a[:, None]) | (flat == 0)):
        return None
    return np.sign(w).astype(np.int8), a


class _Converter:
    """Walks the steps, keeping the current float tensor (NHWC) and whether the next
    weight layer sees sign(x)."""

    def __init__(self, g: GraphBuilder, shape_chw: tuple[int, int, int]) -> None:
        c, h, w = shape_chw
        self.g = g
        self.input = self.cur = g.tensor("input", (1, h, w, c))
        self.shape: tuple[int, ...] = (1, h, w, c)
        self.sign_next = False
        self.bconvs = 0  # LceBconv2d ops written
        self.flat_from: tuple[int, int, int] | None = None  # torch's (C, H, W) before flatten
        self.names: dict[int, str] = {}  # id(module) -> its name in the model, for errors

    def run(self, steps: list[Any]) -> None:
        from torch import nn

        weighted = [i for i, s in enumerate(steps) if isinstance(s, (nn.Conv2d, nn.Linear))]
        i = 0
        while i < len(steps):
            step = steps[i]
            bn = steps[i + 1] if i + 1 < len(steps) and isinstance(
                steps[i + 1], (nn.BatchNorm1d, nn.BatchNorm2d)) else None
            try:
                if isinstance(step, (nn.Conv2d, nn.Linear)):
                    self.weight_layer(step, bn, last=i in (weighted[0], weighted[-1]))
                    i += 2 if bn is not None else 1
                    continue
                self.other(step)
            except UnsupportedOpError as exc:
                raise UnsupportedOpError(f"{exc} (layer "
                                         f"{self.names.get(id(step)) or '?'})") from None
            i += 1

    def other(self, step: Any) -> None:
        from torch import nn

        from edgekit.models.lowbit.bireal import BiRealBlock
        from edgekit.models.lowbit.layers import SignActivation

        if isinstance(step, SignActivation):
            self.sign_next = True
        elif isinstance(step, nn.ReLU):
            self.cur = self.g.elementwise("RELU", [self.cur], self.shape)
        elif isinstance(step, nn.Flatten):
            self.flatten()
        elif isinstance(step, nn.MaxPool2d):
            self.max_pool(step)
        elif isinstance(step, nn.AdaptiveAvgPool2d) and step.output_size in (1, (1, 1)):
            self.cur = self.g.mean(self.cur, [1, 2], self.shape)
            self.shape = (1, 1, 1, self.shape[3])
        elif isinstance(step, BiRealBlock):
            self.bireal_block(step)
        else:
            raise UnsupportedOpError(f"LCE export has no mapping for {type(step).__name__}")

    # ---------------------------------------------------------------- weight layers

    def weight_layer(self, layer: Any, bn: Any | None, *, last: bool) -> None:
        from edgekit.models.lowbit.materialization import XnorScaledConv2d, XnorScaledLinear

        xnor = isinstance(layer, (XnorScaledConv2d, XnorScaledLinear))
        binary_in, self.sign_next = self.sign_next or xnor, False
        w = self.oriented_weight(layer)
        g, h = _affine(bn, len(w))
        mul = g * (_np(layer.alpha) if xnor else 1.0)
        shift = h + (g * _np(layer.bias) if layer.bias is not None else 0.0)
        if xnor:  # the data-dependent scale K / beta is computed from the real-valued input
            scale = self.xnor_scale(layer)
        if binary_in and not last:
            self.bconv(layer, w, mul, 0.0 if xnor else shift)
        else:
            if binary_in:
                self.cur = self.signs(self.cur)
            self.dense(layer, w, mul, 0.0 if xnor else shift)
        if xnor:
            if len(self.shape) == 2:  # beta of a linear: [1, 1, 1, 1] -> [1, 1]
                scale = self.g.reshape(scale, (1, 1))
            self.cur = self.g.elementwise("MUL", [self.cur, scale], self.shape)
            self.cur = self.g.elementwise("ADD", [self.cur, self.g.constant(
                self.g.unique("xnor_bias"), shift.astype(np.float32))], self.shape)

    def oriented_weight(self, layer: Any) -> np.ndarray:
        """The weight in TFLite layout: OHWI for convs, [O, I] (NHWC-flattened) for linears."""
        from torch import nn

        w = _np(layer.weight)
        if isinstance(layer, nn.Conv2d):
            if layer.groups != 1 or tuple(layer.dilation) != (1, 1):
                raise UnsupportedOpError("LCE export supports groups=1, dilation=1 convs")
            return w.transpose(0, 2, 3, 1)
        if self.flat_from is not None:
            c, hh, ww = self.flat_from
            w = w.reshape(len(w), c, hh, ww).transpose(0, 2, 3, 1).reshape(len(w), -1)
            self.flat_from = None
        return w

    def bconv(self, layer: Any, w: np.ndarray, mul: np.ndarray, shift: Any) -> None:
        from torch import nn

        levels = _levels(w)
        if levels is None or np.any(levels[0] == 0):
            raise UnsupportedOpError(f"a layer on binary inputs needs weights ±a per channel "
                                     f"for LceBconv2d ({type(layer).__name__})")
        codes, a = levels
        conv = isinstance(layer, nn.Conv2d)
        x = self.as_4d()
        _, hh, ww, c = self.shape
        k, stride, pad = ((layer.kernel_size, layer.stride, self.padding(layer)) if conv
                          else ((1, 1), (1, 1), VALID))
        packed = self.g.tensor(self.g.unique("packed"), (1, hh, ww, packed_size(c)), np.int32)
        self.g.custom(LCE_QUANTIZE, [x], [packed])
        oh, ow = _out_hw((hh, ww), k, stride, pad)
        out = self.g.tensor(self.g.unique("bconv"), (1, oh, ow, len(w)))
        filters = self.g.constant(self.g.unique("bconv_filter"),
                                  pack_signs(codes.reshape(len(w), *k, c)))
        multiplier = self.g.constant(self.g.unique("mul"), (a * mul).astype(np.float32))
        bias = self.g.constant(self.g.unique("bias"),
                               np.broadcast_to(shift, len(w)).astype(np.float32))
        # -1: no output_threshold (used only for bit-packed output)
        self.g.custom(LCE_BCONV2D, [packed, filters, multiplier, bias, -1], [out],
                      bconv_options(c, stride, pad, pad_values=0))
        self.cur, self.shape = out, (1, oh, ow, len(w))
        self.bconvs += 1

    def dense(self, layer: Any, w: np.ndarray, mul: np.ndarray, shift: Any) -> None:
        """Float CONV_2D / FULLY_CONNECTED; int8 weights + DEQUANTIZE where that is exact."""
        from torch import nn

        weights = self.dense_weights(w, mul)
        bias = self.g.constant(self.g.unique("bias"), np.broadcast_to(shift, len(w)).astype(
            np.float32))
        if isinstance(layer, nn.Conv2d):
            pad = self.explicit_padding(layer)
            oh, ow = _out_hw(self.shape[1:3], layer.kernel_size, layer.stride, pad)
            out = self.g.tensor(self.g.unique("conv"), (1, oh, ow, len(w)))
            self.g.builtin("CONV_2D", [self.cur, weights, bias], [out], self.g.options(
                "Conv2DOptions", padding=pad, strideH=layer.stride[0], strideW=layer.stride[1],
                dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=0))
            self.cur, self.shape = out, (1, oh, ow, len(w))
            return
        out = self.g.tensor(self.g.unique("fc"), (1, len(w)))
        self.g.builtin("FULLY_CONNECTED", [self.cur, weights, bias], [out], self.g.options(
            "FullyConnectedOptions", fusedActivationFunction=0, keepNumDims=False))
        self.cur, self.shape = out, (1, len(w))

    def dense_weights(self, w: np.ndarray, mul: np.ndarray) -> int:
        levels = _levels(w)
        if levels is None:
            scaled = w * mul.reshape(-1, *([1] * (w.ndim - 1)))
            return self.g.constant(self.g.unique("weight"), scaled.astype(np.float32))
        codes, a = levels
        scale = a * mul  # per channel; its sign moves into the codes (scales are positive)
        codes = (codes * np.sign(scale).reshape(-1, *([1] * (w.ndim - 1)))).astype(np.int8)
        scale = np.where(scale == 0, 1.0, np.abs(scale))
        q = self.g.constant(self.g.unique("weight_int8"), codes, scale=scale.astype(np.float32))
        out = self.g.tensor(self.g.unique("weight"), w.shape)
        self.g.builtin("DEQUANTIZE", [q], [out])
        return out

    # ---------------------------------------------------------------- helpers

    def padding(self, layer: Any) -> int:
        """TFLite SAME/VALID for a torch conv's symmetric padding (raises where none fits)."""
        p, k, s = layer.padding, layer.kernel_size, layer.stride
        if isinstance(p, str) or tuple(p) == (0, 0):
            if p in ("same",):
                return SAME
            return VALID
        for dim in (0, 1):
            size = self.shape[1 + dim]
            out = (size + 2 * p[dim] - k[dim]) // s[dim] + 1
            total = max((out - 1) * s[dim] + k[dim] - size, 0)
            if -(-size // s[dim]) != out or total // 2 != p[dim]:
                raise UnsupportedOpError(f"padding {tuple(p)} of a {tuple(k)}/{tuple(s)} conv "
                                         f"on {size} px is neither TFLite SAME nor VALID")
        return SAME

    def as_4d(self) -> int:
        if len(self.shape) == 2:
            self.shape = (1, 1, 1, self.shape[-1])
            self.cur = self.g.reshape(self.cur, self.shape)
        return self.cur

    def explicit_padding(self, layer: Any) -> int:
        """A dense conv's padding: SAME/VALID, or a zero ``PAD`` op + VALID where torch's
        symmetric padding is neither (e.g. 3x3 stride 2 on an even size: SAME pads 0/1)."""
        try:
            return self.padding(layer)
        except UnsupportedOpError:
            (ph, pw), (_, h, w, c) = layer.padding, self.shape
            out = self.g.tensor(self.g.unique("pad"), (1, h + 2 * ph, w + 2 * pw, c))
            pads = np.array([[0, 0], [ph, ph], [pw, pw], [0, 0]], np.int32)
            self.g.builtin("PAD", [self.cur, self.g.constant(self.g.unique("pads"), pads)], [out])
            self.cur, self.shape = out, (1, h + 2 * ph, w + 2 * pw, c)
            return VALID

    def signs(self, x: int) -> int:
        """sign(x) as float ±1 (LceQuantize + LceDequantize; sign(0) = +1 as in torch)."""
        shape = self.shape
        packed = self.g.tensor(self.g.unique("packed"), (*shape[:-1], packed_size(shape[-1])),
                               np.int32)
        self.g.custom(LCE_QUANTIZE, [x], [packed])
        out = self.g.tensor(self.g.unique("signs"), shape)
        self.g.custom(LCE_DEQUANTIZE, [packed], [out])
        return out

    def xnor_scale(self, layer: Any) -> int:
        """XNOR-Net's input scale from the real-valued input: K (conv) or beta (linear)."""
        from torch import nn

        absolute = self.g.elementwise("ABS", [self.cur], self.shape)
        if not isinstance(layer, nn.Conv2d):
            return self.g.mean(absolute, list(range(1, len(self.shape))), self.shape)
        a = self.g.mean(absolute, [3], self.shape)
        kh, kw = layer.kernel_size
        pad = self.padding(layer)
        oh, ow = _out_hw(self.shape[1:3], layer.kernel_size, layer.stride, pad)
        box = self.g.constant(self.g.unique("box"), np.full((1, kh, kw, 1), 1.0 / (kh * kw),
                                                         np.float32))
        out = self.g.tensor(self.g.unique("xnor_k"), (1, oh, ow, 1))
        self.g.builtin("CONV_2D", [a, box, self.g.constant(self.g.unique("zero"),
                                                           np.zeros(1, np.float32))], [out],
                       self.g.options("Conv2DOptions", padding=pad, strideH=layer.stride[0],
                                      strideW=layer.stride[1], dilationHFactor=1,
                                      dilationWFactor=1, fusedActivationFunction=0))
        return out

    def flatten(self) -> None:
        if len(self.shape) == 2 or self.flat_from is not None:
            return
        _, h, w, c = self.shape
        self.flat_from = (c, h, w)
        self.shape = (1, 1, 1, h * w * c)
        self.cur = self.g.reshape(self.cur, self.shape)

    def max_pool(self, pool: Any) -> None:
        k = _pair(pool.kernel_size)
        s = _pair(pool.stride or pool.kernel_size)
        if _pair(pool.padding) != (0, 0) or pool.ceil_mode or _pair(pool.dilation) != (1, 1):
            raise UnsupportedOpError("LCE export supports max-pooling without padding")
        oh, ow = _out_hw(self.shape[1:3], k, s, VALID)
        out = self.g.tensor(self.g.unique("maxpool"), (1, oh, ow, self.shape[3]))
        self.g.builtin("MAX_POOL_2D", [self.cur], [out], self.g.options(
            "Pool2DOptions", padding=VALID, strideH=s[0], strideW=s[1], filterHeight=k[0],
            filterWidth=k[1], fusedActivationFunction=0))
        self.cur, self.shape = out, (1, oh, ow, self.shape[3])

    def bireal_block(self, block: Any) -> None:
        """``shortcut(x) + BN(conv(act(x)))``; the shortcut is x or CONCAT(x, x)."""
        x, shape = self.cur, self.shape
        shortcut = x
        if block.doubles:
            shortcut = self.g.tensor(self.g.unique("concat"), (*shape[:3], 2 * shape[3]))
            self.g.builtin("CONCATENATION", [x, x], [shortcut], self.g.options(
                "ConcatenationOptions", axis=3, fusedActivationFunction=0))
        self.other(block.act)
        self.weight_layer(block.conv, block.bn, last=False)
        self.cur = self.g.elementwise("ADD", [self.cur, shortcut], self.shape)

    def finish(self, description: str) -> bytes:
        if len(self.shape) == 4:
            self.shape = (1, self.shape[-1])
            self.cur = self.g.reshape(self.cur, self.shape)
        return self.g.finish([self.input], [self.cur], f"edgekit LCE export of {description}")


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _out_hw(hw: tuple[int, ...], k: Any, s: Any, pad: int) -> tuple[int, int]:
    k, s = _pair(k), _pair(s)
    if pad == SAME:
        return -(-hw[0] // s[0]), -(-hw[1] // s[1])
    return (hw[0] - k[0]) // s[0] + 1, (hw[1] - k[1]) // s[1] + 1
