"""Biases trained on the int32 grid TFLite stores them on (edgekit.quantization.pt2e.int32_bias).

Real torchao observers, real PT2E graphs, real litert-torch conversion and the LiteRT
interpreter; nothing is mocked.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch.nn as nn  # noqa: E402

from edgekit.quantization import QuantConfig  # noqa: E402

aten = torch.ops.aten


class ThreeConvs(nn.Module):
    """Wide 1×1 convs with large biases: many outputs near a rounding boundary."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 1), \
            nn.Conv2d(64, 16, 1)
        for conv in (self.a, self.b, self.c):
            nn.init.uniform_(conv.bias, -0.5, 0.5)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def test_rounding_is_straight_through_and_uses_both_scales():
    from torchao.quantization.pt2e.observer import MinMaxObserver, PerChannelMinMaxObserver

    from edgekit.quantization.pt2e.int32_bias import Int32BiasFakeQuantize, _bias_qparams

    act, weight = MinMaxObserver(dtype=torch.int8), PerChannelMinMaxObserver(
        dtype=torch.int8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127)
    act(torch.linspace(-1.0, 3.0, 50))
    weight(torch.tensor([[0.5, -0.25], [2.0, 1.0]]))
    fq = Int32BiasFakeQuantize(dtype=torch.int32, obs_or_fqs=[act, weight],
                               derive_qparams_fn=_bias_qparams,
                               qscheme=torch.per_channel_symmetric, ch_axis=0)
    scale = act.calculate_qparams()[0] * weight.calculate_qparams()[0]
    bias = torch.tensor([0.1234567, -0.7654321], requires_grad=True)
    out = fq(bias)
    steps = out.detach() / scale
    assert torch.allclose(steps, steps.round(), atol=1e-4)  # on the grid
    assert not torch.equal(out.detach(), bias.detach())  # and actually moved
    assert (out.detach() - bias.detach()).abs().le(scale / 2 * 1.0001).all()
    out.sum().backward()
    assert torch.equal(bias.grad, torch.ones(2))


def test_qat_graph_rounds_each_bias_right_before_its_conv():
    """The rounding must see this batch's input scale: its observer runs after the input's."""
    from edgekit.quantization.pt2e.int32_bias import Int32BiasFakeQuantize
    from edgekit.quantization.pt2e.quantize import _prepare, export_bn_free

    graph = export_bn_free(ThreeConvs(), torch.rand(4, 3, 8, 8))
    prepared, _ = _prepare(graph, qat=True)
    rounders = [n for n in prepared.graph.nodes if n.op == "call_module"
                and isinstance(prepared.get_submodule(n.target), Int32BiasFakeQuantize)]
    assert len(rounders) == 3
    for node in rounders:
        assert node.next.target == aten.conv2d.default and node in node.next.args


def _deployed_biases(path) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    found = []
    for t in interp.get_tensor_details():
        scales = t["quantization_parameters"]["scales"]
        if t["dtype"] == np.int32 and len(t["shape"]) == 1 and len(scales) == t["shape"][0]:
            found.append(interp.get_tensor(t["index"]).astype(np.float64) * scales)
    return found


def test_the_file_stores_exactly_the_trained_biases(mnist, tmp_path):
    """Every int32 bias in the .tflite dequantizes to the bias QAT trained with."""
    from edgekit.export.tflite import export_tflite
    from edgekit.quantization.pt2e.quantize import converted_graph, quantize_for_tflite

    torch.manual_seed(0)
    train = mnist[0].subset(128, seed=0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2),
                          nn.ReLU(), nn.Flatten(), nn.Linear(16 * 13 * 13, 10))
    cfg = QuantConfig(target="tflite", mode="qat", epochs=1, lr=1e-3, calibration_size=64,
                      batch_size=32)
    qm = quantize_for_tflite(model, cfg, train_data=train)
    trained = [p.detach().double().numpy() for name, p in converted_graph(qm).named_parameters()
               if name.endswith("bias")]
    art = export_tflite(qm, tmp_path / "m.tflite", calibration=mnist[1].x[:8])
    deployed = _deployed_biases(art.path)
    assert sorted(len(b) for b in deployed) == sorted(len(b) for b in trained) == [8, 10, 16]
    for bias in trained:
        (match,) = [d for d in deployed if len(d) == len(bias)]
        np.testing.assert_allclose(match, bias, rtol=1e-6, atol=1e-9)


def test_deployed_outputs_round_like_the_reference(tmp_path):
    """With float biases, 0.16% of this net's outputs were one step off in XNNPACK
    (one-off probe, 2026-11-23); with int32-rounded biases 0.003%."""
    from edgekit.export.tflite import export_tflite, run_tflite
    from edgekit.quantization.pt2e.quantize import converted_graph, quantize_for_tflite

    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16)
    qm = quantize_for_tflite(ThreeConvs(), QuantConfig(target="tflite", mode="ptq"),
                             calib_data=x.numpy())
    art = export_tflite(qm, tmp_path / "m.tflite", calibration=x.numpy())
    with torch.no_grad():
        want = converted_graph(qm)(x).numpy()
    got = run_tflite(art.path, x.numpy())
    step = float(np.diff(np.unique(got)).min())
    assert np.mean(np.abs(got - want) > step / 2) < 2e-4
