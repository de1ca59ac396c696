"""A PT2E quantizer that annotates every op TFLite has an int8 kernel for.

litert-torch's ``PT2EQuantizer`` annotates conv, linear, add, mul, cat, pooling and
sigmoid/softmax only, and finds add/mul through ``source_fn_stack`` metadata that
``torch.export`` on torch 2.13 no longer records. Everything it misses (hardswish, the
residual ADD of MobileNetV2, MEAN after an un-annotated op, PReLU, …) is left between a
DEQUANTIZE and a QUANTIZE and runs in float. This quantizer reuses litert's quantization
specs (int8 asymmetric per-tensor activations, int8 symmetric per-channel weights) but
annotates from plain tables of aten ops, so which op gets what is data you can print:

* ``WEIGHTED``: conv/linear, weights per-channel, bias int32 at input × weight scale (as
  the kernels store it; ``int32_bias``); a following ReLU/ReLU6 is fused (one output
  quantizer after the activation, as TFLite's fused activation computes it).
* ``INDEPENDENT``: ops whose int8 kernel rescales (ADD, SUB, MUL, HARD_SWISH, PRELU, …):
  own output quantizer.
* ``SHARED``: data movement, pooling, resizing and monotone clamps (RESHAPE, TRANSPOSE,
  SLICE, MAX/AVERAGE_POOL_2D, MEAN, RESIZE_BILINEAR, RELU, …): output shares the input's
  scale, as the converter's same-scale constraints for those kernels require.
* ``CONCAT``: an input whose producer feeds only the concat is quantized at the concat's
  scale (the converter folds that requantization into the producer). Inputs that also
  feed other ops join that scale when all those ops are in the concat's group (running
  sums that feed each other and the concat); otherwise every input keeps its own scale
  and the converter re-scales them with int8→int8 QUANTIZE ops. A concat with no such
  private input gets its own output quantizer.
* ``FIXED``: LOGISTIC and SOFTMAX, whose int8 kernels require scale 1/256, zero point -128.

The graph rewrites in ``graph_rewrites`` run before annotation, so the graph only holds
ops with int8 kernels.
"""

from __future__ import annotations

import torch
from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
from litert_torch.quantize.pt2e_quantizer_utils import (
    QuantizationConfig,
    _convert_scalars_to_attrs,
)
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.quantizer import (
    FixedQParamsQuantizationSpec,
    QuantizationAnnotation,
    QuantizationSpec,
    QuantizationSpecBase,
    SharedQuantizationSpec,
)

from edgekit.quantization.pt2e.graph_rewrites import rewrite_for_int8_kernels
from edgekit.quantization.pt2e.int32_bias import int32_bias_spec

aten = torch.ops.aten

WEIGHTED = {aten.conv1d.default, aten.conv2d.default, aten.convolution.default, aten.linear.default}
FUSABLE_ACTIVATIONS = {aten.relu.default, aten.relu6.default, aten.hardtanh.default}
INDEPENDENT = {
    aten.add.Tensor,
    aten.sub.Tensor,
    aten.mul.Tensor,
    aten.hardswish.default,
    aten.leaky_relu.default,
    aten.tanh.default,
}
SHARED = {
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.permute.default,
    aten.transpose.int,
    aten.flatten.using_ints,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.unsqueeze.default,
    aten.contiguous.default,
    aten.clone.default,
    aten.slice.Tensor,
    aten.select.int,
    aten.max_pool2d.default,
    aten.avg_pool2d.default,
    aten.adaptive_avg_pool2d.default,
    aten.mean.dim,
    aten.mean.default,
    aten.upsample_bilinear2d.vec,
    aten.upsample_bilinear2d.default,
    aten.relu.default,
    aten.relu6.default,
    aten.hardtanh.default,
    aten.pad.default,
    aten.constant_pad_nd.default,
    aten.upsample_nearest2d.vec,
    aten.upsample_nearest2d.default,
    aten.pixel_shuffle.default,
    aten.dropout.default,
}
FIXED = {aten.sigmoid.default, aten._softmax.default, aten.softmax.int}
CONCAT = {aten.cat.default, aten.concat.default}


def tflite_int8_config(*, is_qat: bool) -> QuantizationConfig:
    """litert's own int8 spec: asymmetric per-tensor activations, symmetric per-channel weights."""
    return get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat)


class TFLiteInt8Quantizer(PT2EQuantizer):
    """``PT2EQuantizer`` with full-graph annotation; accepted by ``litert_torch.convert``."""

    def __init__(self, *, is_qat: bool = False) -> None:
        super().__init__()
        self.set_global(tflite_int8_config(is_qat=is_qat))

    def transform_for_annotation(self, model: GraphModule) -> GraphModule:
        rewrite_for_int8_kernels(model)
        return _convert_scalars_to_attrs(model)

    def annotate(self, model: GraphModule) -> GraphModule:
        annotate_tflite_int8(model, self.global_config)
        return model


def _is_float_tensor(arg: object) -> bool:
    if not isinstance(arg, Node):
        return False
    val = arg.meta.get("val")
    if val is None:  # get_attr constants made by the scalar pass carry no meta
        return arg.op == "get_attr"
    return isinstance(val, torch.Tensor) and val.dtype.is_floating_point


def _annotated(node: Node) -> bool:
    ann = node.meta.get("quantization_annotation")
    return ann is not None and ann._annotated


def _mark(node: Node, inputs: dict, output) -> None:
    node.meta["quantization_annotation"] = QuantizationAnnotation(
        input_qspec_map=inputs, output_qspec=output, _annotated=True
    )


def _fused_activation(node: Node) -> Node | None:
    if len(node.users) != 1:
        return None
    user = next(iter(node.users))
    if user.op != "call_function" or user.target not in FUSABLE_ACTIVATIONS:
        return None
    if user.target == aten.hardtanh.default and tuple(user.args[1:3]) not in ((0, 6), (0.0, 6.0)):
        return None
    return user


def annotate_tflite_int8(gm: GraphModule, config: QuantizationConfig) -> None:
    """Annotate every node of ``gm`` that has a TFLite int8 kernel, in topological order."""
    act = config.input_activation
    out_act = config.output_activation
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    for node in gm.graph.nodes:
        if node.op != "call_function" or _annotated(node):
            continue
        target = node.target
        if target in WEIGHTED:
            _annotate_weighted(node, config)
        elif target in INDEPENDENT:
            inputs = {a: _input_spec(a, act) for a in node.args if _is_float_tensor(a)}
            _mark(node, inputs, out_act)
        elif target in CONCAT:
            tensors = [t for t in node.args[0] if _is_float_tensor(t)]
            if tensors:
                _annotate_concat(node, tensors, act, out_act, order)
        elif target in SHARED:
            tensors = [t for t in [node.args[0]] if _is_float_tensor(t)]
            if not tensors:
                continue
            first = tensors[0]
            shared = SharedQuantizationSpec((first, node))
            inputs = {first: _input_spec(first, act), **{t: shared for t in tensors[1:]}}
            _mark(node, inputs, shared)
        elif target in FIXED and _is_float_tensor(node.args[0]):
            _mark(node, {node.args[0]: _input_spec(node.args[0], act)}, config.fixed_qparams)


def _input_spec(arg: Node, act: QuantizationSpec) -> QuantizationSpecBase:
    """The spec of an activation input edge: a fixed-range producer's own spec where it
    has one (every op but CONCATENATION, whose file re-scales its inputs itself).

    LOGISTIC and SOFTMAX write int8 at the fixed 1/256 scale, and the converter lets the
    consumer read that tensor as it is, also through same-scale ops (RESHAPE, …). With
    ``act`` on the edge, PT2E re-quantized it to an observed range first (a second rounding
    the file does not have): ESPNetv2's gate MUL (``x * sigmoid(g)``) was then a step off
    in XNNPACK on some elements while both of its inputs matched exactly.
    """
    spec = _output_spec(arg)
    return spec if isinstance(spec, FixedQParamsQuantizationSpec) else act


def _output_spec(node: Node) -> QuantizationSpecBase | None:
    """``node``'s output spec, followed through shared specs to the one they share."""
    ann = node.meta.get("quantization_annotation")
    spec = ann.output_qspec if ann is not None else None
    while isinstance(spec, SharedQuantizationSpec):  # they point at earlier nodes: no cycles
        shared = spec.edge_or_node
        if isinstance(shared, tuple):  # (producer, user): the spec of that input edge
            producer, user = shared
            ann = user.meta.get("quantization_annotation")
            spec = ann.input_qspec_map.get(producer) if ann is not None else None
        else:
            ann = shared.meta.get("quantization_annotation")
            spec = ann.output_qspec if ann is not None else None
    return spec


def _annotate_concat(node: Node, tensors: list[Node], act, out_act, order: dict) -> None:
    """A concat with an input made only for it is quantized at that input's scale, and
    every input is rounded once, straight to that scale.

    The converter folds the requantization of an input made only for the concat into its
    producer (the conv or ADD writes at the concat's scale directly), and re-scales every
    other input with one int8→int8 QUANTIZE. A Q/DQ graph with separate quantizers rounds
    such inputs twice (own scale, then the concat's), which is not what LiteRT runs:
    ShuffleNetV2's branch outputs were off by up to 4 steps at every concat, and so were a
    quarter of an ESPNetv2 EESP unit's concat outputs, its last hierarchical sum (none with
    every input shared; docs/results.md, "One-off checks").
    The private producers and the concat output share one quantizer (rooted at the
    earliest producer: observers are created in graph order); the other inputs' edges
    share it too, so each is re-scaled once, as the QUANTIZE does. PT2E then puts those
    inputs at the shared scale as well, so this is done only when their other users are
    in the same group (ESPNet's and ESPNetv2's running sums); where one of them also feeds
    an op outside it, the converter left that op in float, and the concat keeps separate
    scales for every input.
    """
    private = sorted((t for t in tensors if len(t.users) == 1 and _has_own_output(t)),
                     key=order.__getitem__)
    shared_elsewhere = [t for t in tensors if t not in private and _has_own_output(t)]
    group = {node, *private, *shared_elsewhere}
    if not private or any(u not in group for t in shared_elsewhere for u in t.users):
        _mark(node, {t: act for t in tensors}, out_act)
        return
    shared = SharedQuantizationSpec(private[0])
    for producer in private[1:]:
        producer.meta["quantization_annotation"].output_qspec = shared
    _mark(node, {t: shared for t in tensors}, shared)


def _has_own_output(node: Node) -> bool:
    ann = node.meta.get("quantization_annotation")
    return ann is not None and ann.output_qspec is not None and not isinstance(
        ann.output_qspec, (SharedQuantizationSpec, FixedQParamsQuantizationSpec))


def _annotate_weighted(node: Node, config: QuantizationConfig) -> None:
    inputs = {node.args[0]: _input_spec(node.args[0], config.input_activation),
              node.args[1]: config.weight}
    if len(node.args) > 2 and isinstance(node.args[2], Node):
        inputs[node.args[2]] = int32_bias_spec(node)  # the kernels' int32 bias (int32_bias.py)
    activation = _fused_activation(node)
    if activation is None:
        _mark(node, inputs, config.output_activation)
    else:
        _mark(node, inputs, None)
        _mark(activation, {}, config.output_activation)
