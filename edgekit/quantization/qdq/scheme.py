"""How the TensorRT and onnxruntime QDQ schemes (``edgekit.quantization.types.SCHEMES``) are
set up in nncf: its advanced parameters, signed activations, 7-bit weights."""

from __future__ import annotations

from typing import Any

from edgekit.quantization.types import QuantScheme


def nncf_advanced_parameters(scheme: QuantScheme, ranges: str | None = None) -> Any:
    """nncf's AdvancedQuantizationParameters that realise a symmetric QDQ scheme.

    nncf's overflow fix is off: by default it doubles the first conv's weight range (7
    effective bits, for CPUs whose int8 kernels saturate). TensorRT has no such limit, and
    the onnxruntime scheme sets its 7-bit weights itself (``use_7bit_weights``).

    nncf's fast bias correction is always off: it is computed inside ``nncf.quantize``,
    before the scheme's edits (signed activations, 7-bit weights, the ONNX Q/DQ forward),
    so it corrects for arithmetic the file does not run (docs/results.md, "Bias
    correction"); ``QuantConfig.bias_correction`` is edgekit's own, on the target's grid
    (``edgekit.quantization.rounding``).

    ``ranges`` (``edgekit.quantization.ranges.RANGE_SETTINGS``, None: nncf's default,
    mean-minmax) sets the activations' range estimator; weights keep min-max.
    """
    from nncf.common.quantization.structs import QuantizationScheme
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )

    return AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.DISABLE,
        activations_range_estimator_params=_range_estimator(ranges),
        disable_bias_correction=True,
        weights_quantization_params=QuantizationParameters(
            num_bits=8,
            mode=QuantizationScheme.SYMMETRIC,
            per_channel=True,
            narrow_range=scheme.weight_narrow_range,
        ),
        activations_quantization_params=QuantizationParameters(
            num_bits=8,
            mode=QuantizationScheme.SYMMETRIC,
            per_channel=False,
        ),
    )


def _range_estimator(ranges: str | None) -> Any:
    """nncf's estimator for a range setting; MEAN_QUANTILE's outlier probability is nncf's
    default, 1e-4 (``edgekit.quantization.ranges.PERCENTILE_OUTLIERS``)."""
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet as Set

    if ranges is None:
        return None
    return {"minmax": Set.MINMAX, "mean-minmax": Set.MEAN_MINMAX,
            "percentile": Set.MEAN_QUANTILE, "mse": Set.HISTOGRAM}[ranges]


def keep_weights_float(qmodel: Any, modules: tuple[str, ...]) -> int:
    """Remove the weight quantizers of the ops inside the given module paths; return how
    many. Their activation quantizers stay: a kept layer reads a quantized input (so the
    layer before it still ends in a QuantizeLinear and fuses) and computes in float. (With
    nncf's ignored scope instead, LeNet-5's float fc2 lost its input quantizer, so fc1 lost
    its fused int8 kernel too: 0.31x the all-int8 file, 2026-12-07.)"""
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.wrapper import get_hook_storage

    storage = get_hook_storage(qmodel)
    prefixes = tuple(m.strip(".").replace(".", "/") + "/" for m in modules)
    weights = [name for name, _ in storage.named_hooks()
               if decode_hook_name(name)[0] == "pre_hooks"
               and decode_hook_name(name)[1].startswith(prefixes)]
    for name in weights:
        storage.delete_hook(name)
    return len(weights)


def force_signed_activations(qmodel: Any) -> int:
    """Make every unsigned (post-ReLU, uint8) nncf quantizer signed int8; return how many.

    TensorRT's Q/DQ are int8 only. nncf's hardware configs reject ``signedness_to_force``, so
    the flag is flipped on the inserted quantizers instead: the range (scale) stays, the
    levels become [-128, 127], and QAT then trains with the step TensorRT will use.
    """
    from nncf.torch.quantization.layers import SymmetricQuantizer

    flipped = 0
    for module in qmodel.modules():
        if isinstance(module, SymmetricQuantizer) and not module.signed:
            module.signed = True
            flipped += 1
    return flipped


def use_7bit_weights(qmodel: Any, example: Any) -> int:
    """Give the weight quantizers of every conv but the depthwise ones, and of every linear
    layer, 7-bit levels over the same range; return how many.

    nncf's "half range" quantizers: levels [-63, 63], which ``nncf.strip`` writes as int8
    values on the 7-bit step. (nncf's own overflow fix instead doubles an 8-bit
    quantizer's range for the torch backend, which QAT's trainable scale can shrink back.)
    Depthwise convs keep 8 bits: onnxruntime runs them in a kernel that sums in 32 bits
    (8-bit depthwise weights agreed with the fused kernels: docs/results.md, "One-off
    checks"), and with 9 weights per channel they lose the most from a coarser step.
    """
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.nncf_graph.nncf_graph_builder import build_nncf_graph
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import SymmetricQuantizer

    graph = build_nncf_graph(qmodel, example)
    changed = 0
    for name, module in get_hook_storage(qmodel).named_hooks():
        hook_type, op_name, _ = decode_hook_name(name)
        if hook_type != "pre_hooks" or not isinstance(module, SymmetricQuantizer):
            continue  # activations are post-hooks
        if _is_depthwise_conv(graph.get_node_by_name(op_name).layer_attributes):
            continue
        module._half_range = True  # nncf has no setter; set_levels reads it
        module.set_levels()
        changed += 1
    return changed


def _is_depthwise_conv(attrs: Any) -> bool:
    """Whether an nncf graph node (PT2OpLayerAttributes: the traced call) is a conv with one
    group per input channel: conv2d(input, weight, bias, stride, padding, dilation, groups)."""
    if "conv" not in getattr(getattr(attrs, "func", None), "__name__", ""):
        return False
    args, kwargs = attrs.op_args, attrs.op_kwargs
    groups = kwargs.get("groups", args[6] if len(args) > 6 else 1)
    return groups > 1 and groups == args[0].shape[1]
