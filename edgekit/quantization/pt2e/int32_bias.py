"""Conv/linear biases trained at the int32 precision TFLite stores them in.

TFLite's int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels add an int32 bias
whose scale is input scale × weight scale (per output channel). litert's quantizer leaves
the bias float in the PT2E graph and the converter rounds it to that grid, so a model that
trained with the float bias is not the one deployed: each output is off by up to half a
bias step, and where that straddles a rounding boundary of the output the file gives one
step more or less. Over a deep net these steps compound into changed predictions.
Rounding as here removes nearly all of them in XNNPACK; TFLite's builtin kernels are
unchanged: their fixed-point requantization rounds differently again, which this does not
emulate (docs/results.md, "One-off checks").

The converter cannot lower an int32 Q/DQ pair on a bias, so the rounding is done in two
places instead:

* during QAT, ``Int32BiasFakeQuantize`` (the observer PT2E inserts for a derived bias
  spec) rounds the bias to the current int32 grid on every forward, with a straight-through
  gradient;
* before ``convert_pt2e``, ``bake_int32_biases`` writes the rounded values into the bias
  tensors and removes those observers; the float bias the converter sees is then exactly on
  its grid and rounds to the same integers.
"""

from __future__ import annotations

import operator

import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e import DerivedObserverOrFakeQuantize
from torchao.quantization.pt2e.quantizer import DerivedQuantizationSpec

from edgekit.core.errors import ExportError

INT32_MAX = 2**31 - 1


def int32_bias_spec(node: Node) -> DerivedQuantizationSpec:
    """The bias spec of a conv/linear ``node``: int32, scale = input scale × weight scale."""
    activation, weight = node.args[0], node.args[1]
    return DerivedQuantizationSpec(
        derived_from=[(activation, node), (weight, node)],
        derive_qparams_fn=_bias_qparams,
        dtype=torch.int32,
        quant_min=-INT32_MAX,
        quant_max=INT32_MAX,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
    )


def _bias_qparams(observers: list) -> tuple[torch.Tensor, torch.Tensor]:
    input_scale, _ = observers[0].calculate_qparams()
    weight_scale, _ = observers[1].calculate_qparams()
    scale = (input_scale.reshape(-1) * weight_scale.reshape(-1)).to(torch.float32)
    return scale, torch.zeros(scale.shape, dtype=torch.int32)


class Int32BiasFakeQuantize(DerivedObserverOrFakeQuantize):
    """The bias rounded to its int32 grid (straight-through gradient)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rounded = round_to_grid(x, self.calculate_qparams()[0])
        return rounded + (x - x.detach())  # value: exactly ``rounded``; gradient: identity


def round_to_grid(bias: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``bias`` quantized to int32 at per-channel ``scale`` and dequantized, as
    ``quantize_per_channel`` does (x × 1/scale, round half to even, clamp)."""
    q = torch.clamp(torch.round(bias * (1.0 / scale)), -INT32_MAX, INT32_MAX)
    return q * scale


def use_int32_bias_fake_quant(prepared: GraphModule) -> None:
    """Make every derived bias observer of a QAT-prepared graph round.

    PT2E places a bias's observer next to the bias tensor at the top of the graph, before
    the input's observer has seen the batch; it is moved to just before its conv so the
    rounding uses this batch's input scale (on the first calibration batch, the input
    observer would otherwise still be empty).
    """
    for node in list(prepared.graph.nodes):
        module = _bias_observer(prepared, node)
        if module is None:
            continue
        module.__class__ = Int32BiasFakeQuantize
        (consumer,) = node.users
        consumer.prepend(node)
    prepared.graph.lint()
    prepared.recompile()


def bake_int32_biases(prepared: GraphModule) -> None:
    """Write each rounded bias into its tensor and drop its observer (before convert_pt2e)."""
    graph = prepared.graph
    for node in list(graph.nodes):
        module = _bias_observer(prepared, node)
        if module is None:
            continue
        source = node.args[0]
        if not isinstance(source, Node) or source.op != "get_attr":
            raise ExportError(f"the int32 bias observer {node.target} does not read a stored "
                              "tensor; cannot write the rounded bias")
        bias = operator.attrgetter(source.target)(prepared)
        with torch.no_grad():
            bias.copy_(round_to_grid(bias, module.calculate_qparams()[0]))
        node.replace_all_uses_with(source)
        graph.erase_node(node)
        prepared.delete_submodule(node.target)
    graph.lint()
    prepared.recompile()


def _bias_observer(prepared: GraphModule, node: Node) -> DerivedObserverOrFakeQuantize | None:
    if node.op != "call_module":
        return None
    module = prepared.get_submodule(node.target)
    if isinstance(module, DerivedObserverOrFakeQuantize) and module.dtype == torch.int32:
        return module
    return None
