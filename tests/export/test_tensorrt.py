"""TensorRT plan: build config, trtexec line, sparsity detection, the ONNX it consumes.

TensorRT itself cannot be installed on these machines (see TOOLCHAIN.md); the engine build
(`build_engine`) runs only where `tensorrt` imports and is skipped here.
"""

from __future__ import annotations

import importlib.util
import json
import shlex

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from edgekit.export import export  # noqa: E402
from edgekit.export.onnx import export_onnx  # noqa: E402
from edgekit.export.tensorrt import (  # noqa: E402
    engine_config,
    sparse_2_4_layers,
    trtexec_command,
    write_build_config,
)


@pytest.mark.slow
def test_engine_export_writes_onnx_plan_and_trtexec_line(quantized_net, tmp_path):
    artifact = export(quantized_net, "engine", tmp_path / "m.engine", max_batch=16)
    if importlib.util.find_spec("tensorrt") is not None:  # pragma: no cover - device only
        assert artifact.format == "engine"
        return
    assert artifact.format == "onnx" and artifact.path == tmp_path / "m.onnx"
    plan = artifact.metadata["engine"]
    assert plan["built"] is False and "tensorrt" in plan["reason"]
    config = json.loads((tmp_path / "m.trt.json").read_text())
    assert config["int8"] is True and config["input_shape"] == [1, 16, 16]
    args = shlex.split(plan["trtexec"])
    assert args[0] == "trtexec" and f"--onnx={tmp_path / 'm.onnx'}" in args
    assert "--int8" in args and "--fp16" in args
    assert "--minShapes=input:1x1x16x16" in args and "--maxShapes=input:16x1x16x16" in args
    assert "--sparsity=enable" not in args  # dense weights
    assert config["trtexec"] == plan["trtexec"]


def _sparse_net():
    # 16 in, 8 out: the smallest Conv TensorRT runs 2:4 sparse (C % 16, K % 8)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 4))
    with torch.no_grad():
        conv = net[0].weight  # (out, in, kh, kw): keep 2 of every 4 input channels
        conv[:, 1::4] = 0
        conv[:, 2::4] = 0
    return net.eval()


def test_2_4_sparse_weights_enable_the_flag(tmp_path):
    path = export_onnx(_sparse_net(), tmp_path / "s.onnx", input_shape=(16, 4, 4)).path
    layers = sparse_2_4_layers(path)
    assert len(layers) == 1 and "Conv" in layers[0]  # the dense Linear is not listed
    cfg = engine_config(path, tmp_path / "s.engine", fp16=False, max_batch=4)
    assert cfg.sparse_weights and not cfg.int8
    args = shlex.split(trtexec_command(cfg))
    assert "--sparsity=enable" in args and "--fp16" not in args and "--int8" not in args
    out = write_build_config(cfg)
    assert out == tmp_path / "s.trt.json" and json.loads(out.read_text())["sparse_layers"]


def test_fixed_batch_onnx_cannot_take_a_batch_profile(tmp_path):
    from edgekit.core.errors import InvalidInputError

    path = export_onnx(_sparse_net(), tmp_path / "f.onnx", input_shape=(16, 4, 4),
                       dynamic_batch=False).path
    with pytest.raises(InvalidInputError, match="fixed batch"):
        engine_config(path, tmp_path / "f.engine", max_batch=8)
    with pytest.raises(InvalidInputError, match="min_batch"):
        engine_config(path, tmp_path / "f.engine", opt_batch=4, max_batch=2)


def _sparse_engine_case(tmp_path):
    """The exported sparse net, its engine plan, an input batch and the same net's output."""
    net = _sparse_net()
    path = export_onnx(net, tmp_path / "s.onnx", input_shape=(16, 4, 4)).path
    cfg = engine_config(path, tmp_path / "s.engine", timing_cache=str(tmp_path / "t.cache"))
    x = np.random.default_rng(0).random((2, 16, 4, 4), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    return cfg, x, ref


def test_the_engine_case_holds_in_onnxruntime(tmp_path):
    # The real-TensorRT test below cannot run here; this runs its input and reference
    # through the very ONNX the engine is built from, so a wrong shape or reference shows.
    ort = pytest.importorskip("onnxruntime")
    cfg, x, ref = _sparse_engine_case(tmp_path)
    session = ort.InferenceSession(cfg.onnx, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {cfg.input_name: x})[0], ref, atol=1e-5)


# Runs on a machine with TensorRT and a CUDA GPU: see docs/tensorrt.md for the command.
@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None,
                    reason="tensorrt is not installable here (NVIDIA index only)")
def test_build_engine_with_real_tensorrt(tmp_path):  # pragma: no cover - device only
    from edgekit.export.tensorrt import build_engine, run_engine

    cfg, x, ref = _sparse_engine_case(tmp_path)
    assert build_engine(cfg).stat().st_size > 0
    # fp16 engine (engine_config's default): outputs of a few units agree to ~1e-3
    np.testing.assert_allclose(run_engine(cfg.engine, x), ref, atol=1e-2)
