"""Materialized low-bit models in real runtimes: onnxruntime (float and int8-weight QDQ)
and the LiteRT interpreter, compared with the PyTorch low-bit model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgekit.export.onnx import export_onnx  # noqa: E402
from edgekit.lowbit import materialize, weights_to_qdq  # noqa: E402
from edgekit.lowbit.onnx_qdq import symmetric_levels  # noqa: E402
from tests.helpers import calibrated_lowbit  # noqa: E402


def _run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# model -> how many weights the QDQ pass must rewrite (TTQ scales differ after training,
# but at init W_p = W_n so all 8 low-bit convs are symmetric; hashed weights never are)
QDQ_EXPECTED = {"binary_mlp": 3, "xnor_convnet": 4, "ternary_lenet5": 5, "ttq_resnet8": 8,
                "hashed_mlp": 0}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(QDQ_EXPECTED))
def test_onnx_and_qdq_onnx_agree_with_pytorch(tmp_path, name):
    model = calibrated_lowbit(name)
    x = np.random.default_rng(0).random((200, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    path, qdq = tmp_path / "m.onnx", tmp_path / "m_qdq.onnx"
    export_onnx(materialize(model), path, input_shape=(1, 28, 28))
    assert len(weights_to_qdq(path, qdq)) == QDQ_EXPECTED[name]
    rewritten = [i for i in onnx.load(str(qdq)).graph.initializer if i.data_type == 3]  # int8
    assert len([i for i in rewritten if i.name.endswith("_int8")]) == QDQ_EXPECTED[name]
    float_out, qdq_out = _run_onnx(path, x), _run_onnx(qdq, x)
    assert np.array_equal(float_out.argmax(1), want.argmax(1))
    assert np.array_equal(qdq_out.argmax(1), want.argmax(1))
    assert np.abs(float_out - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    if QDQ_EXPECTED[name]:
        assert qdq.stat().st_size < 0.5 * path.stat().st_size


def test_symmetric_levels_detects_exact_fits():
    assert symmetric_levels(np.array([[2.0, -2.0, 0.0], [0.0, 0.0, 0.0]])).tolist() == [2, 1]
    assert symmetric_levels(np.array([[2.0, -1.0]])) is None


@pytest.mark.slow
def test_tflite_of_xnor_convnet_agrees_with_pytorch(tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_litert")
    from edgekit.export.litert_ops import op_counts
    from edgekit.export.tflite import export_tflite, run_tflite

    model = calibrated_lowbit("xnor_convnet")
    x = np.random.default_rng(1).random((100, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    path = tmp_path / "m.tflite"
    export_tflite(materialize(model), path, calibration=x[:8])
    ops = op_counts(path)
    assert ops.get("SELECT_V2") == 3  # the three binary activations
    got = run_tflite(path, x)
    assert np.array_equal(got.argmax(1), want.argmax(1))


def test_qdq_rewrite_of_an_unreadable_file_is_an_export_error(tmp_path):
    from edgekit.core.errors import ExportError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf \x00\x01\x02")
    for src in (bad, tmp_path / "missing.onnx"):
        with pytest.raises(ExportError):
            weights_to_qdq(src, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
