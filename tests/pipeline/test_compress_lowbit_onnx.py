"""`edgekit compress` of binary, ternary and hashed nets for the ONNX targets (jetson:
TensorRT's scheme, checked in onnxruntime as the pipeline does; x86-cpu: onnxruntime).

Binary nets deploy the materialized net in float (TensorRT and onnxruntime have no 1-bit
kernels), ternary nets int8 by PTQ of the materialized net, hashed nets the path every
model takes. Every run is verified against the trained torch model in real onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import edgekit  # noqa: E402
from edgekit.core.errors import ExportError  # noqa: E402
from edgekit.export.check import check_model  # noqa: E402
from edgekit.lowbit import lowbit_layers, materialize  # noqa: E402
from edgekit.pipeline.lowbit_deploy import (  # noqa: E402
    BINARY_FLOAT,
    LCE,
    TERNARY_INT8,
    deploy_form,
)
from edgekit.quantization.bn_fold import fold_batchnorm  # noqa: E402
from tests.helpers import calibrated_lowbit  # noqa: E402

BINARY = ("binary_mlp", "xnor_convnet", "bireal_net")
TERNARY = ("ternary_lenet5", "ttq_resnet8")
# Each form on both targets with the quick net; the slower nets (1-2 min each on 2 shared
# cores) on one target each: the deployment path is chosen by form and runtime, not by net.
BINARY_RUNS = [("binary_mlp", "jetson"), ("binary_mlp", "x86-cpu"),
               ("xnor_convnet", "jetson"), ("bireal_net", "x86-cpu")]
TERNARY_RUNS = [("ternary_lenet5", "jetson"), ("ternary_lenet5", "x86-cpu"),
                ("ttq_resnet8", "jetson")]
# 3 epochs on 1,000 digits: every net predicts more than one class, so agreement means
# something (xnor_convnet after 1 epoch on 400 predicted one class for every input)
RUN = {"epochs": 3, "train_limit": 1000, "bench_runs": 5, "log": lambda _: None}


@pytest.mark.parametrize(("name", "tflite", "onnx_targets"), [
    *[(n, LCE, BINARY_FLOAT) for n in BINARY],
    *[(n, TERNARY_INT8, TERNARY_INT8) for n in TERNARY],
    ("hashed_mlp", None, None),
])
def test_deploy_form_by_layers_and_runtime(name, tflite, onnx_targets):
    model = calibrated_lowbit(name)
    assert deploy_form(model, "tflite") == tflite
    assert deploy_form(model, "tensorrt") == onnx_targets
    assert deploy_form(model, "onnxruntime") == onnx_targets


def _spread_batchnorm(model):
    """BN statistics far from identity, so a wrong fold shows in the output."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 3 + 0.2)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
    return model.eval()


def test_batchnorm_is_not_folded_into_a_ternary_layers_latent_weight():
    """The cause of "folding BatchNorm changed the model's output by 0.008": TernaryConv2d
    is a Conv2d, BN went into its latent weight and TWN re-thresholded the scaled weight."""
    model = _spread_batchnorm(calibrated_lowbit("ternary_lenet5"))
    x = torch.rand(16, 1, 28, 28)
    with pytest.raises(ExportError, match=r"low-bit TernaryConv2d at 'features\.0'.*materialize"):
        fold_batchnorm(model, x)
    with torch.no_grad():
        err = (fold_batchnorm(materialize(model), x)(x) - model(x)).abs().max().item()
    assert err < 1e-5


@pytest.mark.parametrize("name", BINARY)
def test_binary_nets_pass_tensorrts_preflight(name):
    """The sign activation exports as GreaterOrEqual + Where (onnx-tensorrt runs both)."""
    findings = check_model(materialize(calibrated_lowbit(name)), "tensorrt", (1, 28, 28))
    assert not [f for f in findings if f.status == "unsupported"]
    assert "GreaterOrEqual" in {f.op for f in findings if f.status == "float"}


def _ops(path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _int8_weights(path) -> list[np.ndarray]:
    """The int8 weight tensors (2-D or more) that feed a DequantizeLinear."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [inits[n.input[0]] for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in inits
            and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim >= 2]


def _check_verified(result) -> None:
    verify = result.verification
    assert verify.runtime == "onnxruntime" and verify.passed and verify.agreement >= 0.995
    [deployed] = [r for r in result.metrics["accuracy_rows"]
                  if r["model"] == f"deployed {result.deployed.name}"]
    assert deployed["value"] > 0.2  # not one class for every input: agreement is not moot


@pytest.mark.slow
@pytest.mark.parametrize(("name", "target"), BINARY_RUNS)
def test_binary_net_deploys_in_float_and_verifies(name, target, tmp_path):
    result = edgekit.compress(name, target, out=tmp_path / "run", **RUN)
    _check_verified(result)
    assert result.deployed.name == "model_fp32.onnx"
    ops = _ops(result.deployed)
    assert {"GreaterOrEqual", "Where"} <= ops and "QuantizeLinear" not in ops
    assert result.manifest["recipe"]["precision"] == ("fp16" if target == "jetson" else "fp32")
    assert result.manifest["recipe"]["qat_epochs"] == 0
    assert "storage, not speed" in result.metrics["deployed_as"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "target"), TERNARY_RUNS)
def test_ternary_net_deploys_int8_keeping_three_levels(name, target, tmp_path):
    result = edgekit.compress(name, target, out=tmp_path / "run", **RUN)
    _check_verified(result)
    assert result.deployed.name == "model_int8.onnx"
    assert result.manifest["recipe"]["qat_epochs"] == 0
    # per output channel at most {-q, 0, +q'}: the three levels of every ternary layer
    # survive int8 (ttq_resnet8's fp32 first conv and classifier take more)
    three = [w for w in _int8_weights(result.deployed)
             if all(len(np.unique(row)) <= 3 for row in w.reshape(len(w), -1))]
    assert len(three) >= len(lowbit_layers(calibrated_lowbit(name))) >= 3


@pytest.mark.slow
# one target keeps CI short: jetson passed too (the run recorded in docs/lowbit.md)
@pytest.mark.parametrize("target", ["x86-cpu"])
def test_hashed_net_takes_the_common_int8_path(target, tmp_path):
    result = edgekit.compress("hashed_mlp", target, out=tmp_path / "run", **RUN)
    _check_verified(result)
    assert result.deployed.name == "model_int8.onnx"
    assert "deployed_as" not in result.metrics
