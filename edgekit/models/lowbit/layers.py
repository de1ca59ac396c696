"""Low-bit drop-in layers: BNN, XNOR-Net, TWN, TTQ and HashedNets (Linear and Conv2d).

Each layer keeps a float "latent" parameter for training and exposes
``quantized_weight()``: the exact weight tensor its forward uses. ``materialize`` (see
``materialize.py``) copies that tensor into a standard ``nn.Conv2d`` / ``nn.Linear``.
The ``kind`` attribute names the storage record the layer is saved as.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.core import hashing
from edgekit.models.lowbit.quantizers import (
    binarize_ste,
    channel_mean_abs,
    sign_pm1,
    ttq_codes,
    ttq_weight,
    twn_codes_and_scale,
    twn_weight,
    xnor_weight,
)


class BinaryActivation(nn.Module):
    """BNN activation: sign(x) in {-1, +1}, hard-tanh straight-through gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binarize_ste(x)


class SignActivation(nn.Module):
    """Export form of a binary activation: one Where op (ONNX Where, TFLite SELECT)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_pm1(x)


# ---------------------------------------------------------------- weight kinds (mixins)


class _Binary:
    """BNN (Courbariaux/Hubara): weights sign(W), no scale."""

    kind = "binary"
    weight: nn.Parameter

    def quantized_weight(self) -> torch.Tensor:
        return binarize_ste(self.weight)


class _Xnor:
    """XNOR-Net weights alpha_c * sign(W_c); see XnorConv2d for the activation side."""

    kind = "xnor"
    weight: nn.Parameter

    def quantized_weight(self) -> torch.Tensor:
        return xnor_weight(self.weight)


class _Twn:
    """TWN: alpha * {-1, 0, +1} with threshold 0.7 * mean|W| (per layer, as in the paper)."""

    kind = "twn"
    weight: nn.Parameter

    def quantized_weight(self) -> torch.Tensor:
        return twn_weight(self.weight)

    @torch.no_grad()
    def ternary_parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(codes, value of +1, magnitude of -1): what the tern2 record stores."""
        codes, alpha = twn_codes_and_scale(self.weight)
        return codes, alpha, alpha


class _Ttq:
    """TTQ: {-W_n, 0, +W_p} with learned positive and negative scales."""

    kind = "ttq"
    weight: nn.Parameter

    def _init_scales(self) -> None:
        _, alpha = twn_codes_and_scale(self.weight.detach())
        self.w_pos = nn.Parameter(alpha.clone().reshape(()))
        self.w_neg = nn.Parameter(alpha.clone().reshape(()))

    def quantized_weight(self) -> torch.Tensor:
        return ttq_weight(self.weight, self.w_pos, self.w_neg)

    @torch.no_grad()
    def ternary_parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(codes, W_p, W_n): what the tern2 record stores."""
        return ttq_codes(self.weight), self.w_pos.detach(), self.w_neg.detach()


class _LowBitConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class _LowBitLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


class BinaryConv2d(_Binary, _LowBitConv):
    pass


class BinaryLinear(_Binary, _LowBitLinear):
    pass


class TernaryConv2d(_Twn, _LowBitConv):
    pass


class TernaryLinear(_Twn, _LowBitLinear):
    pass


class TTQConv2d(_Ttq, _LowBitConv):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_scales()


class TTQLinear(_Ttq, _LowBitLinear):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_scales()


# ---------------------------------------------------------------- XNOR-Net


class XnorConv2d(_Xnor, nn.Conv2d):
    """XNOR-Net conv: binary weights with per-output-channel alpha and, when
    ``binary_input``, binary inputs scaled by K = (mean_c |x|) convolved with a k x k
    box filter (the paper's activation scaling). The first layer keeps real inputs.

    With binary inputs the conv runs on sign(x) and sign(W) -- an integer count, exact in
    any summation order -- and is scaled by alpha * K afterwards, as in the paper. That
    order keeps ONNX/TFLite runtimes bit-compatible: alpha * sign(W) would make the sum
    order-dependent, and a tie at 0 feeding the next sign() would flip.
    """

    def __init__(self, *args, binary_input: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if binary_input and (self.groups != 1 or self.dilation != (1, 1)):
            raise ValueError("XnorConv2d with binary_input supports groups=1, dilation=1")
        self.binary_input = binary_input

    def export_weight(self) -> torch.Tensor:
        """The standard conv weight: sign(W) with binary inputs (alpha applied after)."""
        return binarize_ste(self.weight) if self.binary_input else self.quantized_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.binary_input:
            return self._conv_forward(x, self.quantized_weight(), self.bias)
        alpha = channel_mean_abs(self.weight).view(1, -1, 1, 1)
        return xnor_conv(x, binarize_ste(self.weight), alpha, self.bias, self.stride,
                         self.padding, self.kernel_size, binarize_ste)


class XnorLinear(_Xnor, nn.Linear):
    """XNOR-Net linear layer; binary inputs are scaled by beta = mean |x| per sample."""

    def __init__(self, *args, binary_input: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.binary_input = binary_input

    def export_weight(self) -> torch.Tensor:
        return binarize_ste(self.weight) if self.binary_input else self.quantized_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.binary_input:
            return F.linear(x, self.quantized_weight(), self.bias)
        alpha = channel_mean_abs(self.weight).view(1, -1)
        return xnor_linear(x, binarize_ste(self.weight), alpha, self.bias, binarize_ste)


def xnor_conv(x, sign_weight, alpha, bias, stride, padding, kernel_size, binarize):
    """(sign(x) * sign(W)) * (alpha * K) + bias; shared by training and export forms."""
    scale = xnor_input_scale_conv(x, kernel_size, stride, padding)
    out = F.conv2d(binarize(x), sign_weight, None, stride, padding) * (alpha * scale)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def xnor_linear(x, sign_weight, alpha, bias, binarize):
    beta = x.abs().mean(dim=-1, keepdim=True)
    out = F.linear(binarize(x), sign_weight, None) * (alpha * beta)
    return out if bias is None else out + bias


def xnor_input_scale_conv(x, kernel_size, stride, padding) -> torch.Tensor:
    """K = A * k with A = mean over channels of |x|: one scale per output position."""
    a = x.abs().mean(dim=1, keepdim=True)
    kh, kw = kernel_size
    box = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
    return F.conv2d(a, box, stride=stride, padding=padding)


# ---------------------------------------------------------------- HashedNets


class _Hashed(nn.Module):
    """Virtual weight V[i] = sign(i) * buckets[h(i)], h and sign seeded (see hashing.py).

    Only ``buckets`` (and the dense bias) are parameters; the index/sign tables are
    rebuilt from (shape, seed) and not saved (non-persistent buffers).
    """

    kind = "hashed"

    def _init_hashed(self, shape: tuple[int, ...], compression: float, seed: int) -> None:
        self.virtual_shape = tuple(int(s) for s in shape)
        self.seed = int(seed)
        self.compression = float(compression)
        n_virtual = math.prod(self.virtual_shape)
        n_buckets = hashing.buckets_for(n_virtual, compression)
        index, sign = hashing.hash_positions(n_virtual, n_buckets, self.seed)
        self.register_buffer("bucket_index", torch.from_numpy(index), persistent=False)
        self.register_buffer("bucket_sign", torch.from_numpy(sign), persistent=False)
        # Same fan-in scaled uniform init as nn.Linear/Conv2d's default for the weights.
        fan_in = n_virtual // self.virtual_shape[0]
        bound = 1.0 / math.sqrt(fan_in)
        self.buckets = nn.Parameter(torch.empty(n_buckets).uniform_(-bound, bound))

    @property
    def n_buckets(self) -> int:
        return self.buckets.numel()

    def quantized_weight(self) -> torch.Tensor:
        flat = self.buckets[self.bucket_index] * self.bucket_sign
        return flat.view(self.virtual_shape)


class HashedLinear(_Hashed):
    def __init__(
        self, in_features: int, out_features: int, *, compression: float = 1 / 8,
        seed: int = 0, bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_hashed((out_features, in_features), compression, seed)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, buckets={self.n_buckets}, "
                f"compression={self.compression:g}, seed={self.seed}")


class HashedConv2d(_Hashed):
    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
        padding: int = 0, compression: float = 1 / 8, seed: int = 0, bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (kernel_size, kernel_size)
        self.stride, self.padding = (stride, stride), (padding, padding)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self._init_hashed(shape, compression, seed)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.quantized_weight(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, buckets={self.n_buckets}, "
                f"seed={self.seed}")


LOWBIT_LAYER_TYPES: tuple[type[nn.Module], ...] = (
    BinaryConv2d, BinaryLinear, XnorConv2d, XnorLinear, TernaryConv2d, TernaryLinear,
    TTQConv2d, TTQLinear, HashedConv2d, HashedLinear,
)
