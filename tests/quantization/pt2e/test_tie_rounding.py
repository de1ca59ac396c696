"""Average-pool, mean and bilinear-resize ties rounded as LiteRT's int8 kernels round them
(edgekit.quantization.pt2e.tie_rounding). Real torchao fake-quant modules, real litert-torch
conversion and the LiteRT interpreter."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgekit.quantization import QuantConfig  # noqa: E402


def _quantizer(scale: float, zero_point: int):
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize

    fq = FakeQuantize(dtype=torch.int8, quant_min=-128, quant_max=127)
    fq.scale.fill_(scale)
    fq.zero_point.fill_(zero_point)
    fq.disable_observer()
    return fq


# raw = x / 0.5 - 3: 2.5, -4.5 and 3.5 are ties, 0.25 and 1.75 are not. The quantizer
# alone rounds the zero-point-centred value half to even: 5.5 -> 6, -1.5 -> -2, 6.5 -> 6,
# i.e. raw 3, -5, 3.
RAW_IN = torch.tensor([2.5, -4.5, 3.5, 0.25, 1.75])


@pytest.mark.parametrize(("rule", "rounded"), [("away_from_zero", [3.0, -5.0, 4.0, 0.0, 2.0]),
                                               ("half_up", [3.0, -4.0, 4.0, 0.0, 2.0]),
                                               ("half_even", [2.0, -4.0, 4.0, 0.0, 2.0])])
def test_only_exact_ties_move_by_the_rule_in_the_raw_domain(rule, rounded):
    from edgekit.quantization.pt2e.tie_rounding import TieBreak

    x = ((RAW_IN + 3) * 0.5).requires_grad_()
    quantizer = _quantizer(0.5, -3)
    out = TieBreak(quantizer, rule)(x)
    raw = quantizer(out.detach()) / 0.5 - 3
    assert torch.equal(raw, torch.tensor(rounded))
    assert torch.equal(out.detach()[3:], x.detach()[3:])
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones(5))


class TieNet(nn.Module):
    """conv -> ``op`` (whose int8 kernel rounds a raw-integer result) -> linear."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op
        channels, stride, pooled = {"pool": (16, 1, 14 * 14), "bilinear": (4, 4, 14 * 14),
                                    "mean": (16, 14, 1)}[op]
        self.conv = nn.Conv2d(1, channels, 3, stride=stride, padding=1)
        self.fc = nn.Linear(channels * pooled, 10)

    def forward(self, x):
        y = self.conv(x)
        if self.op == "mean":  # a global mean over 2x2: a quarter of the means are ties
            return self.fc(y.mean((2, 3)))
        y = F.relu(y)
        if self.op == "pool":
            y = F.avg_pool2d(y, 2)
        else:
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.fc(y.flatten(1))


@pytest.mark.parametrize("op", ["pool", "bilinear", "mean"])
def test_qat_model_rounds_ties_like_litert(op, mnist, tmp_path):
    """Without the tie-break 15.9% (pool), 10.9% (bilinear, one-off probe on a similar
    net) and 8.3% (mean) of these logits were one step off or more in XNNPACK."""
    from edgekit.export.tflite import export_tflite, run_tflite
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    cfg = QuantConfig(target="tflite", mode="qat", epochs=1, lr=1e-3, calibration_size=64,
                      batch_size=32)
    qm = quantize_for_tflite(TieNet(op), cfg, train_data=mnist[0].subset(128, seed=0))
    x = mnist[1].x[:64]
    art = export_tflite(qm, tmp_path / f"{op}.tflite", calibration=x)
    with torch.no_grad():
        want = qm.model(torch.from_numpy(x)).numpy()
    got = run_tflite(art.path, x)
    step = float(np.diff(np.unique(got)).min())
    assert np.mean(np.abs(got - want) > step / 2) < 0.002
