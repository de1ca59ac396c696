"""QAT/PTQ with nncf for the TensorRT/onnxruntime QDQ scheme (real nncf, real training)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

from edgekit.calibration.forms import sample_inputs  # noqa: E402
from edgekit.core.errors import ExportError, InvalidInputError  # noqa: E402
from edgekit.quantization import QdqQuantizedModel, QuantConfig, quantize  # noqa: E402
from tests.helpers import SmallNet  # noqa: E402
from tests.helpers import block_data as _data  # noqa: E402


def _quantizers(model):
    from nncf.torch.quantization.layers import SymmetricQuantizer

    return [m for m in model.modules() if isinstance(m, SymmetricQuantizer)]


@pytest.mark.parametrize("kwargs", [dict(target="coreml"), dict(mode="int4"), dict(epochs=-1),
                                    dict(batch_size=0), dict(lr=0.0)])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(InvalidInputError):
        QuantConfig(**kwargs)


def test_distill_weight_is_checked():
    with pytest.raises(InvalidInputError, match=r"distill must be in \[0, 1\]"):
        QuantConfig(distill=-0.1)


def test_qat_needs_training_data():
    with pytest.raises(InvalidInputError, match="train_data"):
        quantize(SmallNet(), QuantConfig(mode="qat", epochs=1), calib_data=_data(16))


@pytest.mark.slow
def test_ptq_scheme_is_tensorrt_int8():
    torch.manual_seed(0)
    model = SmallNet().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qm = quantize(model, QuantConfig(mode="ptq", calibration_size=64), calib_data=_data(128))
    assert isinstance(qm, QdqQuantizedModel)
    assert qm.input_shape == (1, 16, 16)
    # BatchNorm folded before quantization, the caller's model untouched
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in qm.model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    quantizers = _quantizers(qm.model)
    weights = [q for q in quantizers if q.per_channel]
    activations = [q for q in quantizers if not q.per_channel]
    assert len(weights) == 3  # two convs and the linear layer
    assert activations, "activations must be quantized per tensor"
    assert all(q.signed for q in quantizers), "TensorRT Q/DQ is signed int8 only"
    assert all((q.level_low, q.level_high) == (-127, 127) for q in weights)
    assert all((q.level_low, q.level_high) == (-128, 127) for q in activations)
    # fake-quant model still computes the float function closely
    x = sample_inputs(_data(32, seed=1), 32)
    with torch.no_grad():
        ref, out = model(x), qm.model(x)
    assert (out - ref).abs().max() < 0.1 * ref.abs().max() + 1e-3


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_ptq_keeps_the_trained_biases_unless_bias_correction_is_asked_for(trained_net, target):
    """With every quantizer switched off the PTQ model must compute the BN-folded fp32
    function: edgekit's bias correction (off by default in QuantConfig; nncf's own is always
    off) is the step that would rewrite the biases."""
    from edgekit.quantization.bn_fold import fold_batchnorm

    x = sample_inputs(_data(64, seed=2), 64)
    with torch.no_grad():
        folded = fold_batchnorm(trained_net, x[:8])(x)
    moved = {}
    for correct in (False, True):
        qm = quantize(trained_net, QuantConfig(target=target, mode="ptq", calibration_size=64,
                                               bias_correction=correct),
                      calib_data=_data(128))
        for quantizer in _quantizers(qm.model):
            quantizer.disable_quantization()
        with torch.no_grad():
            moved[correct] = (qm.model(x) - folded).abs().max().item()
    scale = folded.abs().max().item()
    if target == "tensorrt":
        assert moved[False] == 0
    else:  # the onnxruntime scheme rounds biases to their int32 grid, a far finer step
        assert moved[False] < 1e-4 * scale
    assert moved[True] > 1e-3 * scale  # the check sees a correction when there is one


def test_weight_rounding_is_checked_and_bias_correction_is_every_targets():
    with pytest.raises(InvalidInputError, match="rounding"):
        QuantConfig(rounding="adaround")
    assert QuantConfig(target="tflite", rounding="gptq", bias_correction=True).bias_correction


@pytest.mark.slow
def test_qat_fine_tunes_and_keeps_accuracy():
    from edgekit.training import TrainConfig, evaluate, train

    torch.manual_seed(0)
    data, val = _data(512), _data(128, seed=1)
    model = SmallNet()
    train(model, data, TrainConfig(epochs=3, lr=1e-2, batch_size=64, progress=False))
    fp32 = evaluate(model, val)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qm = quantize(model, QuantConfig(epochs=1, lr=1e-4, calibration_size=128, batch_size=64,
                                     distill=0.5), train_data=data, val_data=val)
    assert qm.history is not None and qm.history.epochs_run == 1
    # distilled from the caller's model, which stays untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    int8 = evaluate(qm.model, val)
    fp32_acc = fp32["accuracy"] if isinstance(fp32, dict) else fp32
    int8_acc = int8["accuracy"] if isinstance(int8, dict) else int8
    assert fp32_acc > 0.5
    assert int8_acc >= fp32_acc - 0.05


@pytest.mark.slow
def test_top_level_sequential_is_wrapped():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 14 * 14, 10))
    qm = quantize(net, QuantConfig(mode="ptq", calibration_size=32), calib_data=_data(32))
    assert len([q for q in _quantizers(qm.model) if q.per_channel]) == 2


class DataDependent(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: cannot be traced into one graph
            return self.bn(self.conv(x)).mean((2, 3))
        return self.conv(x).mean((2, 3))


def test_untraceable_model_is_a_clear_error():
    with pytest.raises(ExportError, match="trace"):
        quantize(DataDependent().eval(), QuantConfig(mode="ptq", calibration_size=8),
                 calib_data=_data(8))
