"""``Runner.predict``: any-size float NCHW batches through real files (the path ``verify``
and ``run_tflite`` use), checked against the torch net or a by-hand interpreter loop."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.core.errors import InvalidInputError
from edgekit.runtime import open_runner, runner_class

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

CHW = (3, 16, 16)  # the tiny net of conftest.py


def _data(n: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, *CHW)).astype(np.float32)


def _loaded(path, **kwargs):
    runner = runner_class(None, path)(path, threads=1, **kwargs)
    runner.load()
    return runner


@pytest.mark.parametrize("level", ["all", "disabled"])
def test_onnx_predict_dynamic_and_fixed_batch(onnx_model, fixed_batch_onnx_model, level,
                                               tiny_net_outputs):
    x = _data(6)
    for path in (onnx_model, fixed_batch_onnx_model):  # 6 = one batch of 4 + 2 padded
        runner = _loaded(path, options={"graph_optimization": level})
        got = runner.predict(x)
        assert got.dtype == np.float32 and got.shape == (6, 4)
        np.testing.assert_allclose(got, tiny_net_outputs(x), atol=1e-4, rtol=1e-4)
        assert runner.info()["graph_optimization"] == level
    with pytest.raises(InvalidInputError, match="shape"):
        runner.predict(x[:, :, :8, :8])
    with pytest.raises(InvalidInputError, match="graph_optimization"):
        _loaded(onnx_model, options={"graph_optimization": "fast"})


@pytest.mark.parametrize(("reference", "level"), [(True, "disabled"), (False, "all")])
def test_open_runner_picks_onnx_kernels(onnx_model, reference, level):
    runner = open_runner(onnx_model, threads=1, onnx_reference=reference)
    try:
        assert runner.name == "onnxruntime" and runner.info()["graph_optimization"] == level
    finally:
        runner.close()


def test_tflite_predict_transposes_to_channel_last_and_pads(nhwc_tflite_model,
                                                             tiny_net_outputs):
    pytest.importorskip("ai_edge_litert")
    runner = _loaded(nhwc_tflite_model)
    assert runner.input_specs()[0].shape == (4, 16, 16, 3)
    x = _data(7)
    np.testing.assert_allclose(runner.predict(x), tiny_net_outputs(x), atol=1e-4, rtol=1e-4)


def test_int8_tflite_predict_quantizes_inputs_and_dequantizes_outputs(int8_tflite_model,
                                                                      tiny_net_outputs):
    pytest.importorskip("ai_edge_litert")
    from edgekit.export.litert_ops import open_interpreter

    runner = _loaded(int8_tflite_model)
    spec = runner.input_specs()[0]
    assert spec.dtype == np.int8 and spec.scale > 0
    x = _data(5)
    got = runner.predict(x)

    interp = open_interpreter(int8_tflite_model, threads=1)  # the same file, by hand
    (inp,), out = interp.get_input_details(), interp.get_output_details()[0]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    assert runner.output_quantization() == (pytest.approx(s_out), z_out)
    want = []
    for sample in x:
        q = np.clip(np.round(sample[None] / s_in) + z_in, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        want.append((interp.get_tensor(out["index"]).astype(np.float32) - z_out) * s_out)
    np.testing.assert_array_equal(got, np.concatenate(want))
    assert np.mean(got.argmax(1) == tiny_net_outputs(x).argmax(1)) >= 0.8  # and it is the same net
