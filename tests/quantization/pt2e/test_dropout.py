"""A TFLite QuantizedModel of a net with Dropout converts after being evaluated: evaluate()
restores the mode it found, and a graph left flagged as training got torchao's training
dropout back (aten.rand_like, which LiteRT cannot lower; issue: compress --target
raspberry-pi-5 failed for mobilenet_v3_small, mobilenet_v2 and squeezenet)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")

from edgekit.export.tflite import export_tflite, run_tflite  # noqa: E402
from edgekit.quantization import QuantConfig, quantize  # noqa: E402
from edgekit.training import evaluate  # noqa: E402
from tests.helpers import SmallNet, block_data  # noqa: E402


class WithDropout(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = SmallNet()
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.body(x))


@pytest.mark.slow
@pytest.mark.parametrize("epochs", [0, 1], ids=["ptq", "qat"])
def test_dropout_model_exports_after_evaluate(epochs, tmp_path):
    torch.manual_seed(0)
    data = block_data(96)
    config = QuantConfig(target="tflite", mode="qat" if epochs else "ptq", epochs=epochs,
                         calibration_size=64, batch_size=32)
    qm = quantize(WithDropout().eval(), config, train_data=data, val_data=block_data(32, 1))
    evaluate(qm.model, data)  # what compress does before exporting
    assert not qm.model.training
    art = export_tflite(qm, tmp_path / "d.tflite", calibration=data.x[:4])
    got = run_tflite(art.path, data.x[:16])
    with torch.no_grad():
        want = qm.model(torch.from_numpy(data.x[:16])).numpy()
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.9  # deterministic: no dropout
