"""Hard-swish trained with LiteRT's int8 kernel arithmetic (quantization.pt2e.kernel_hardswish).
Real torchao fake-quant modules, real litert-torch conversion and the LiteRT interpreter."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch.nn as nn  # noqa: E402

from edgekit.quantization import QuantConfig  # noqa: E402


class OneHardswish(nn.Module):
    def forward(self, x):
        return nn.functional.hardswish(x)


@pytest.mark.parametrize(("low", "high"), [(-4.0, 4.0), (-1.0, 1.0), (-20.0, 40.0),
                                           (-3.3, 7.7)])
def test_formula_is_litert_on_every_int8_input(low, high, tmp_path):
    """A one-op file, fed all 256 int8 codes: the kernel's output equals tflite_hardswish
    (the float formula differed on 0–2 of them at these ranges)."""
    from edgekit.export.tflite import export_tflite
    from edgekit.quantization.pt2e.kernel_hardswish import tflite_hardswish
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite
    from edgekit.runtime.litert import import_interpreter_module

    calib = np.linspace(low, high, 256, dtype=np.float32).reshape(256, 1, 1, 1)
    calib = np.ascontiguousarray(np.broadcast_to(calib, (256, 1, 16, 16)))
    qm = quantize_for_tflite(OneHardswish(), QuantConfig(target="tflite", mode="ptq",
                                                         calibration_size=256),
                             calib_data=calib)
    path = export_tflite(qm, tmp_path / "hswish.tflite", calibration=calib[:8]).path
    module = import_interpreter_module()
    interp = module.Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    codes = np.resize(np.arange(-128, 128), int(np.prod(inp["shape"])))
    interp.set_tensor(inp["index"], codes.astype(np.int8).reshape(inp["shape"]))
    interp.invoke()
    got = interp.get_tensor(out["index"]).reshape(-1)
    (s_in, zp_in), (s_out, zp_out) = inp["quantization"], out["quantization"]
    want = tflite_hardswish(torch.from_numpy(codes), s_in, zp_in, s_out, zp_out).numpy()
    np.testing.assert_array_equal(got, want)


class SwishNet(nn.Module):
    """conv -> hard-swish -> conv -> hard-swish -> linear: MobileNetV3's activation twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.act = nn.Hardswish()
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        return self.fc(self.act(self.conv2(self.act(self.conv1(x)))).flatten(1))


def test_qat_model_computes_hardswish_as_litert_does(mnist, tmp_path):
    """Without KernelHardswish, 4.6% of these logits were a step or more off (2026-11-24)."""
    from edgekit.export.tflite import export_tflite, run_tflite
    from edgekit.quantization.pt2e.kernel_hardswish import KernelHardswish
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    cfg = QuantConfig(target="tflite", mode="qat", epochs=1, lr=1e-3, calibration_size=64,
                      batch_size=32)
    qm = quantize_for_tflite(SwishNet(), cfg, train_data=mnist[0].subset(256, seed=0))
    assert sum(isinstance(m, KernelHardswish) for m in qm.model.modules()) == 2
    x = mnist[1].x[:128]
    art = export_tflite(qm, tmp_path / "swish.tflite", calibration=x)
    with torch.no_grad():
        want = qm.model(torch.from_numpy(x)).numpy()
    got = run_tflite(art.path, x)
    step = float(np.diff(np.unique(got)).min())
    assert np.mean(np.abs(got - want) > step / 2) < 0.002


def test_calibration_sees_the_float_hardswish(mnist):
    """The kernel arithmetic needs calibrated output scales (in the graph from the start, it
    skewed MobileNetV3-small's calibrated ranges: 0.876 test accuracy after QAT, 0.956
    without), so the graph that calibration runs has none; QAT's has one per hard-swish
    (test above)."""
    from edgekit.quantization.pt2e.kernel_hardswish import KernelHardswish
    from edgekit.quantization.pt2e.quantize import _prepare, export_bn_free

    x = torch.from_numpy(mnist[0].x[:4])
    prepared, _ = _prepare(export_bn_free(SwishNet().eval(), x), qat=True)
    assert not any(isinstance(m, KernelHardswish) for m in prepared.modules())
