"""Exporters and verify dispatch on the model's type, never on a ``.model`` attribute: a user's
float wrapper that holds its network as ``self.model`` is the wrapper, not a quantized model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgekit.core.errors import ExportError  # noqa: E402
from edgekit.export import export  # noqa: E402
from edgekit.quantization import QuantConfig, TFLiteQuantizedModel  # noqa: E402
from tests.helpers import SmallNet, block_data  # noqa: E402


class Wrapper(torch.nn.Module):
    """Holds the real network as ``self.model``; its own forward post-processes the logits."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.model = net

    def forward(self, x):
        return torch.softmax(-2.0 * self.model(x), dim=1)  # not the child's output


@pytest.fixture(scope="module")
def wrapper():
    torch.manual_seed(0)
    return Wrapper(SmallNet()).eval()


def _outputs(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def test_wrapper_exports_and_verifies_as_itself_in_onnxruntime(wrapper, tmp_path):
    import onnxruntime as ort

    data = block_data(64, seed=3)
    art = export(wrapper, "onnx", tmp_path / "w.onnx", input_shape=(1, 16, 16), data=data)
    assert art.precision == "fp32"
    got = ort.InferenceSession(str(art.path)).run(None, {"input": data.x})[0]
    np.testing.assert_allclose(got, _outputs(wrapper, data.x), atol=1e-5)
    assert not np.allclose(got, _outputs(wrapper.model, data.x), atol=1e-2)  # not the child
    report = art.verify_report
    assert report.passed and report.agreement == 1.0 and report.samples == 64


@pytest.mark.slow
def test_wrapper_exports_and_verifies_as_itself_in_litert(wrapper, tmp_path):
    from edgekit.export.tflite import run_tflite

    data = block_data(32, seed=4)
    art = export(wrapper, "tflite", tmp_path / "w.tflite", input_shape=(1, 16, 16), data=data)
    got = run_tflite(art.path, data.x)
    np.testing.assert_allclose(got, _outputs(wrapper, data.x), atol=1e-4)
    assert art.verify_report.passed and art.verify_report.agreement == 1.0


def test_a_tflite_quantized_model_is_refused_by_the_onnx_exporter(wrapper, tmp_path):
    fake = TFLiteQuantizedModel(model=wrapper, config=QuantConfig(target="tflite"), scheme={},
                                input_shape=(1, 16, 16))
    with pytest.raises(ExportError, match=r"TFLiteQuantizedModel .* own target's exporter"):
        export(fake, "onnx", tmp_path / "q.onnx")
    assert list(tmp_path.iterdir()) == []
