"""Average-pool ties rounded as LiteRT's int8 AVERAGE_POOL_2D rounds them
(edgekit.compress.tie_rounding). Real torchao fake-quant modules, real litert-torch
conversion and the LiteRT interpreter."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgekit.compress.qat import QuantConfig  # noqa: E402


def test_only_exact_ties_move_and_away_from_zero_in_the_raw_domain():
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize

    from edgekit.compress.tie_rounding import TiesAwayFromZero

    fq = FakeQuantize(dtype=torch.int8, quant_min=-128, quant_max=127)
    fq.scale.fill_(0.5)
    fq.zero_point.fill_(-3)
    # raw = x / 0.5 - 3: 2.5 and -4.5 are ties, 0.25 and 1.75 are not
    x = torch.tensor([(2.5 + 3) * 0.5, (-4.5 + 3) * 0.5, (0.25 + 3) * 0.5, (1.75 + 3) * 0.5],
                     requires_grad=True)
    out = TiesAwayFromZero(fq)(x)
    raw = out.detach() / 0.5 - 3
    assert torch.equal(torch.round(raw), torch.tensor([3.0, -5.0, 0.0, 2.0]))
    assert torch.equal(out.detach()[2:], x.detach()[2:])
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones(4))


class PoolNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 14 * 14, 10)

    def forward(self, x):
        return self.fc(F.avg_pool2d(F.relu(self.conv(x)), 2).flatten(1))


def test_qat_model_rounds_pool_ties_like_litert(mnist, tmp_path):
    """Without the tie-break 15.9% of these logits were one step off in XNNPACK."""
    from edgekit.compress.qat_tflite import quantize_for_tflite
    from edgekit.export.tflite import export_tflite, run_tflite

    torch.manual_seed(0)
    cfg = QuantConfig(target="tflite", mode="qat", epochs=1, lr=1e-3, calibration_size=64,
                      batch_size=32)
    qm = quantize_for_tflite(PoolNet(), cfg, train_data=mnist[0].subset(128, seed=0))
    x = mnist[1].x[:64]
    art = export_tflite(qm, tmp_path / "pool.tflite", calibration=x)
    with torch.no_grad():
        want = qm.model(torch.from_numpy(x)).numpy()
    got = run_tflite(art.path, x)
    step = float(np.diff(np.unique(got)).min())
    assert np.mean(np.abs(got - want) > step / 2) < 0.002
