"""The TFLite int8 annotation: every compute op annotated, concat inputs re-scaled once to
the concat's scale, and LOGISTIC's fixed scale read as it is, each as LiteRT runs the file."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgekit.quantization import QuantConfig  # noqa: E402
from tests.quantization.pt2e.blocks import FAMILIES  # noqa: E402


def test_quantizer_annotates_every_compute_op():
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    from edgekit.quantization.pt2e.quantize import export_bn_free
    from edgekit.quantization.pt2e.quantizer import TFLiteInt8Quantizer

    for family, cls in FAMILIES.items():
        graph = export_bn_free(cls().eval(), torch.rand(2, 1, 28, 28))
        prepared = prepare_pt2e(graph, TFLiteInt8Quantizer())
        for node in prepared.graph.nodes:
            if node.op != "call_function" or "activation_post_process" in str(node.target):
                continue
            ann = node.meta.get("quantization_annotation")
            name = str(node.target)
            if name.startswith(("aten.sym_size", "aten._assert", "<built-in")):
                continue
            assert ann is not None and ann._annotated, f"{family}: {name} left unannotated"


def _requantize_scales(graph, target):
    """Input scales (the quantize behind each dequantize) and output scale of ``target`` nodes."""
    def qscale(node):
        return float(node.args[1])

    found = []
    for node in graph.graph.nodes:
        if node.op == "call_function" and node.target == target:
            args = node.args[0] if isinstance(node.args[0], (list, tuple)) else node.args
            ins = [dq.args[0] for dq in args if isinstance(dq, torch.fx.Node)]
            out = next(u for u in node.users if "quantize_per_tensor" in str(u.target))
            found.append(([qscale(q) for q in ins], qscale(out)))
    return found


class HierarchicalSums(nn.Module):
    """An EESP-style pyramid whose output is the concat: dilated depthwise branches, running
    sums (each feeding the next sum and the concat), the last sum made only for the concat."""

    def __init__(self) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(1, 4, 3, 2, 1)
        self.d = nn.ModuleList(nn.Conv2d(4, 4, 3, 1, r, dilation=r, groups=4) for r in (1, 2, 3, 4))

    def forward(self, x):
        p = F.relu(self.reduce(x))
        fused = self.d[0](p)
        outs = [fused]
        for conv in self.d[1:]:
            fused = fused + conv(p)
            outs.append(fused)
        return torch.cat(outs, 1)


@pytest.mark.parametrize("family, shares", [("squeezenet", True), ("hierarchical_sums", True),
                                             ("espnet", False)])
def test_concat_inputs_are_rescaled_once_to_its_scale(family, shares, mnist):
    """Branch outputs used only by a concat are quantized at the concat's scale, and inputs
    that also feed the running sums are re-scaled straight to it, as LiteRT runs them.
    ESPNetModule's first branch also feeds a sum outside the concat's inputs (d1 + d2 is
    computed twice): sharing made the converter leave an ADD in float, so it keeps
    separate scales."""
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    model = HierarchicalSums() if family == "hierarchical_sums" else FAMILIES[family]()
    cfg = QuantConfig(target="tflite", mode="ptq", calibration_size=32, batch_size=32)
    qm = quantize_for_tflite(model, cfg, calib_data=mnist[0].subset(32, seed=0))
    [(inputs, output)] = _requantize_scales(qm.model, torch.ops.aten.cat.default)
    assert all(s == output for s in inputs) == shares
    assert len(set(inputs)) == (1 if shares else len(inputs))


def test_hierarchical_sums_concat_runs_in_litert_as_in_the_reference(mnist, tmp_path):
    """Before every input was re-scaled once, the last sum was rounded twice in the reference
    and once in the file: about 30% of its elements were one step off in XNNPACK."""
    from edgekit.export.tflite import export_tflite, float_compute_ops, run_tflite
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    cfg = QuantConfig(target="tflite", mode="ptq", calibration_size=64, batch_size=32)
    qm = quantize_for_tflite(HierarchicalSums(), cfg, calib_data=mnist[0].subset(64, seed=0))
    x = mnist[1].x[:32]
    art = export_tflite(qm, tmp_path / "sums.tflite", calibration=x[:8])
    assert float_compute_ops(art.path) == []
    got = run_tflite(art.path, x)
    with torch.no_grad():
        want = qm.model(torch.from_numpy(x)).numpy()
    step = float(np.diff(np.unique(got)).min())
    assert np.mean(np.abs(got - want) > step / 2) < 1e-3


class SigmoidGate(nn.Module):
    """ESPNetv2's gate: a map times the sigmoid of a 1x1 conv of its global mean."""

    def __init__(self, reshaped: bool = False) -> None:
        super().__init__()
        self.reshaped = reshaped  # the gate passes through a RESHAPE (a same-scale op) first
        self.conv = nn.Conv2d(1, 16, 3, 2, 1)
        self.gate = nn.Conv2d(16, 16, 1, groups=4)

    def forward(self, x):
        y = F.relu(self.conv(x))
        g = torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))
        if self.reshaped:
            g = g.flatten(1).reshape(-1, 16, 1, 1)
        return y * g


@pytest.mark.parametrize("reshaped", [False, True])
def test_sigmoid_gate_multiplies_the_fixed_scale_output_as_litert_does(reshaped, mnist,
                                                                       tmp_path):
    """MUL reads LOGISTIC's int8 output at its fixed 1/256 scale, also through a RESHAPE.
    The reference once re-quantized it to an observed range first: 7.8% of these outputs
    (1.7% of ESPNetv2's first gate's) were then a step off or more in XNNPACK."""
    from edgekit.export.tflite import export_tflite, run_tflite
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    cfg = QuantConfig(target="tflite", mode="ptq", calibration_size=64, batch_size=32)
    qm = quantize_for_tflite(SigmoidGate(reshaped), cfg, calib_data=mnist[0].subset(64, seed=0))
    [(inputs, _)] = _requantize_scales(qm.model, torch.ops.aten.mul.Tensor)
    assert 1 / 256 in inputs
    x = mnist[1].x[:64]
    art = export_tflite(qm, tmp_path / "gate.tflite", calibration=x[:8])
    got = run_tflite(art.path, x)
    with torch.no_grad():
        want = qm.model(torch.from_numpy(x)).numpy()
    step = float(np.diff(np.unique(got)).min())
    assert np.mean(np.abs(got - want) > step / 2) < 1e-3
