"""Fold BatchNorm into the convolution before it, so int8 training sees the deployed graph.

litert-torch's PT2E QAT cannot prepare conv+BatchNorm patterns on torch 2.13 + torchao 0.18
(see docs/tflite.md). A BN-free model sidesteps that and is also what TFLite runs anyway:
the converter folds BN into the conv weights, so quantization ranges learned on the folded
weights are the ones the int8 kernel uses.

``fold_batchnorm`` works on the nn.Module (not only on a graph) so the result stays an
ordinary trainable model: every ``BatchNorm2d`` that directly follows a ``Conv2d`` whose
output feeds nothing else is merged into that conv and replaced by ``nn.Identity``; every
other ``BatchNorm2d`` (after a concat, an add, …) becomes the equivalent 1x1 depthwise conv,
which TFLite runs as an int8 DEPTHWISE_CONV_2D with per-channel weights.

``transposed_convs_as_pixel_shuffle`` rewrites ESPNet's decoder upsampling the same way:
litert's converter leaves a quantized TRANSPOSE_CONV in float, while the exactly equivalent
1x1 conv + pixel shuffle lowers to int8 CONV_2D, RESHAPE and TRANSPOSE.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from edgekit.core.errors import ExportError, first_line

if TYPE_CHECKING:
    import torch

_CONV_TARGETS = ("aten.conv2d.default", "aten.convolution.default")
_CONV_FUNCTIONS = ("conv2d", "convolution", "_convolution")
# a tensor read into Python: the forward may branch on data, which one eager run cannot see
# (torch.export then decides, and refuses a data-dependent graph)
_TENSOR_TO_PYTHON = ("__bool__", "item", "tolist", "__int__", "__float__", "__index__")
_BN_TARGETS = (
    "aten.batch_norm.default",
    "aten._native_batch_norm_legit_no_training.default",
)


def _module_path(node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    return list(stack.values())[-1][0]


def _find_bn_pairs(
    model: torch.nn.Module, example_input: torch.Tensor
) -> list[tuple[str | None, str]]:
    """Return (conv_path or None, bn_path) for each BatchNorm call in the model's forward.

    One eager forward, watched, finds them in milliseconds; torch.export (4 s on MobileNetV2,
    paid again by every run that quantizes) is the fallback when the forward calls batch
    norm other than through its modules or may branch on data."""
    pairs = _watched_pairs(model, example_input)
    return pairs if pairs is not None else _exported_pairs(model, example_input)


def _watched_pairs(model: torch.nn.Module, example_input: torch.Tensor
                   ) -> list[tuple[str | None, str]] | None:
    """Pairs from module hooks and a count of every op's tensor inputs; None when a
    BatchNorm call was not its module's own forward (functional batch norm) or the forward
    read a tensor's value into Python."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_flatten

    uses: dict[int, int] = {}
    state = {"batch_norm": 0, "in_bn": False, "concrete": False}

    class CountUses(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            is_bn = name == "batch_norm"
            state["batch_norm"] += is_bn
            state["concrete"] |= name in _TENSOR_TO_PYTHON
            # inside a BatchNorm module only its batch_norm call reads the input (its
            # dim() check is no consumer)
            if is_bn or not state["in_bn"]:
                for value in tree_flatten((args, kwargs))[0]:
                    if isinstance(value, torch.Tensor) and id(value) in conv_of:
                        uses[id(value)] = uses.get(id(value), 0) + 1
            out = func(*args, **kwargs)
            if name in _CONV_FUNCTIONS:
                keep.append(out)
                conv_results.add(id(out))
            return out

    keep: list[torch.Tensor] = []  # conv outputs stay alive, so their ids stay theirs
    conv_of: dict[int, str] = {}
    conv_results: set[int] = set()  # what a conv op returned (not, say, XNOR's scaled output)
    bn_calls: list[tuple[str, int]] = []
    handles = []
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            def after_conv(_m, _i, out, path=path):
                keep.append(out)
                conv_of[id(out)] = path
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            def before_bn(_m, inputs, path=path):
                keep.append(inputs[0])
                bn_calls.append((path, id(inputs[0])))
                state["in_bn"] = True

            def after_bn(_m, _i, _out):
                state["in_bn"] = False
            handles.append(module.register_forward_pre_hook(before_bn))
            handles.append(module.register_forward_hook(after_bn))
    try:
        with torch.no_grad(), CountUses():
            outputs = model(example_input)
        for value in tree_flatten(outputs)[0]:  # returned: a use too, as in torch.export
            if isinstance(value, torch.Tensor) and id(value) in conv_of:
                uses[id(value)] = uses.get(id(value), 0) + 1
    except Exception as exc:  # the model's own error; torch.export would say the same
        raise ExportError(f"cannot run the model to fold BatchNorm: {first_line(exc)}") from exc
    finally:
        for handle in handles:
            handle.remove()
    if state["batch_norm"] != len(bn_calls) or state["concrete"]:
        return None
    # a conv whose output only the BatchNorm reads (one use: the batch_norm call)
    return [(conv_of[x] if x in conv_of and x in conv_results and uses.get(x) == 1 else None,
             path) for path, x in bn_calls]


def _exported_pairs(model: torch.nn.Module, example_input: torch.Tensor
                    ) -> list[tuple[str | None, str]]:
    import torch

    try:
        graph = torch.export.export(model, (example_input,)).graph
    except Exception as exc:  # torch raises many types here; the message is what helps
        raise ExportError(f"cannot trace the model to fold BatchNorm: "
                          f"{first_line(exc)}") from exc
    pairs: list[tuple[str | None, str]] = []
    for node in graph.nodes:
        if node.op != "call_function" or str(node.target) not in _BN_TARGETS:
            continue
        bn_path = _module_path(node)
        if bn_path is None:
            continue
        producer = node.args[0]
        conv_path = None
        if (
            getattr(producer, "op", None) == "call_function"
            and str(producer.target) in _CONV_TARGETS
            and len(producer.users) == 1
        ):
            conv_path = _module_path(producer)
        pairs.append((conv_path, bn_path))
    return pairs


def _bn_scale_shift(bn: torch.nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def _set_submodule(root: torch.nn.Module, path: str, new: torch.nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)


def _fold_into_conv(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> None:
    import torch

    scale, shift = _bn_scale_shift(bn)
    with torch.no_grad():
        w = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
        b = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        b = b * scale + shift
        conv.weight.copy_(w.to(conv.weight.dtype))
        conv.bias = torch.nn.Parameter(b.to(conv.weight.dtype))


def _bn_as_depthwise(bn: torch.nn.BatchNorm2d) -> torch.nn.Conv2d:
    import torch

    scale, shift = _bn_scale_shift(bn)
    ch = scale.numel()
    conv = torch.nn.Conv2d(ch, ch, 1, groups=ch, bias=True)
    with torch.no_grad():
        conv.weight.copy_(scale.reshape(ch, 1, 1, 1).float())
        conv.bias.copy_(shift.float())
    return conv


def _refuse_lowbit(conv: torch.nn.Module | None, path: str) -> None:
    """A low-bit conv (a Conv2d subclass) computes with a quantized copy of its latent weight:
    BatchNorm scaled into the latent weight is re-quantized (TWN re-thresholds it) and the
    output changes. Its materialized form (standard Conv2d, ``edgekit.lowbit.materialize``)
    folds exactly."""
    from edgekit.models.lowbit.layers import LOWBIT_LAYER_TYPES

    if isinstance(conv, LOWBIT_LAYER_TYPES):
        raise ExportError(f"cannot fold BatchNorm into the low-bit {type(conv).__name__} at "
                          f"{path!r}: materialize the net first (edgekit.lowbit.materialize)")


def fold_batchnorm(model: torch.nn.Module, example_input: torch.Tensor) -> torch.nn.Module:
    """Return a BatchNorm-free copy of ``model`` that computes the same function in eval mode.

    ``example_input`` (one batch, NCHW) is used to trace the model and find which conv each
    BatchNorm follows. The input model is not modified.
    """
    import torch

    folded = copy.deepcopy(model).eval()
    pairs = _find_bn_pairs(folded, example_input)
    seen: set[str] = set()
    for conv_path, bn_path in pairs:
        if bn_path in seen:  # a BN module called twice cannot be folded into one conv
            raise ExportError(f"BatchNorm {bn_path!r} is called more than once; cannot fold it")
        seen.add(bn_path)
        bn = folded.get_submodule(bn_path)
        if not isinstance(bn, torch.nn.BatchNorm2d) or not bn.track_running_stats:
            raise ExportError(f"cannot fold {type(bn).__name__} at {bn_path!r}")
        conv = folded.get_submodule(conv_path) if conv_path else None
        _refuse_lowbit(conv, conv_path)
        if isinstance(conv, torch.nn.Conv2d) and conv.padding_mode == "zeros":
            _fold_into_conv(conv, bn)
            _set_submodule(folded, bn_path, torch.nn.Identity())
        else:
            _set_submodule(folded, bn_path, _bn_as_depthwise(bn))
    return folded


def transposed_convs_as_pixel_shuffle(model: torch.nn.Module) -> int:
    """Replace, in place, each non-overlapping ``ConvTranspose2d`` by 1x1 conv + PixelShuffle.

    With kernel == stride (k), no padding, dilation or groups, output pixel (k·i+a, k·j+b)
    of channel o is sum_c x[c, i, j] · W[c, o, a, b] (+ bias[o]): a 1x1 conv to o·k²+a·k+b
    channels followed by ``pixel_shuffle(k)``. Returns how many were replaced.
    """
    import torch

    replaced = 0
    for path, module in list(model.named_modules()):
        if not _pixel_shuffle_equivalent(module):
            continue
        k, cin, cout = module.kernel_size[0], module.in_channels, module.out_channels
        conv = torch.nn.Conv2d(cin, cout * k * k, 1, bias=True)
        with torch.no_grad():
            conv.weight.copy_(module.weight.permute(1, 2, 3, 0).reshape(cout * k * k, cin, 1, 1))
            bias = module.bias if module.bias is not None else torch.zeros(cout)
            conv.bias.copy_(bias.repeat_interleave(k * k))
        _set_submodule(model, path, torch.nn.Sequential(conv, torch.nn.PixelShuffle(k)))
        replaced += 1
    return replaced


def _pixel_shuffle_equivalent(module: torch.nn.Module) -> bool:
    import torch

    if not isinstance(module, torch.nn.ConvTranspose2d):
        return False
    k = module.kernel_size
    return (k[0] == k[1] and tuple(module.stride) == tuple(k) and module.groups == 1
            and tuple(module.padding) == (0, 0) and tuple(module.output_padding) == (0, 0)
            and tuple(module.dilation) == (1, 1) and module.padding_mode == "zeros")


def count_batchnorm(model: torch.nn.Module) -> int:
    """Number of BatchNorm modules left in ``model`` (0 after ``fold_batchnorm``)."""
    import torch

    return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
