"""nncf.strip leaves quantizers shared by two hooks unconverted; export_onnx converts them."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")
ort = pytest.importorskip("onnxruntime")


@pytest.mark.slow
def test_shufflenet_v2_int8_onnx_has_only_standard_ops_and_matches_torch(tmp_path):
    import onnx

    from edgekit.calibration import load_dataset
    from edgekit.export.onnx import export_onnx
    from edgekit.models import create_model
    from edgekit.quantization import QuantConfig, quantize

    data = load_dataset("mnist5k").subset(64)
    model = create_model("shufflenet_v2_x0_5", num_classes=10, in_channels=1, input_size=28)
    qm = quantize(model.eval(), QuantConfig(target="tensorrt", mode="ptq", calibration_size=64),
                  train_data=data)
    path = export_onnx(qm, tmp_path / "shuffle.onnx", input_shape=(1, 28, 28)).path

    domains = {node.domain for node in onnx.load(str(path)).graph.node}
    assert domains <= {"", "ai.onnx"}  # no org.openvinotoolkit::FakeQuantize
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    deployed = session.run(None, {session.get_inputs()[0].name: data.x[:16]})[0]
    with torch.no_grad():
        reference = qm.model.eval()(torch.from_numpy(data.x[:16])).numpy()
    np.testing.assert_allclose(deployed, reference, atol=1e-4)
