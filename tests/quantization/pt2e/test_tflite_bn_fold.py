"""BatchNorm folding and the rewrites that make a net full-integer for TFLite: exact on
the family blocks and the zoo, and the ESPNet decoder without a float TRANSPOSE_CONV."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import torch.nn as nn  # noqa: E402

from edgekit.quantization import QuantConfig  # noqa: E402
from edgekit.quantization.bn_fold import count_batchnorm, fold_batchnorm  # noqa: E402
from tests.quantization.pt2e.blocks import FAMILIES  # noqa: E402


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fold_batchnorm_is_exact_and_removes_every_bn(family):
    torch.manual_seed(0)
    model = FAMILIES[family]().eval()
    x = torch.rand(4, 1, 28, 28)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batchnorm(model, x)
    assert count_batchnorm(folded) == 0
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5, rtol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v3_small", "shufflenet_v1",
                                  "shufflenet_v2_x1_0", "espnet_cls", "espnetv2_cls"])
def test_fold_batchnorm_on_zoo_models(name):
    from edgekit.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1, input_size=32).eval()
    x = torch.rand(2, 1, 32, 32)
    folded = fold_batchnorm(model, x)
    assert count_batchnorm(folded) == 0
    with torch.no_grad():
        ref = model(x)
        assert (folded(x) - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_transposed_convs_become_exact_pixel_shuffles():
    from edgekit.quantization.bn_fold import transposed_convs_as_pixel_shuffle

    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose2d(4, 3, 2, stride=2, bias=True),
                          nn.ConvTranspose2d(3, 3, 3, stride=2, padding=1)).eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        want = model(x)
        assert transposed_convs_as_pixel_shuffle(model) == 1  # the overlapping one stays
        got = model(x)
    assert isinstance(model[0][1], nn.PixelShuffle) and isinstance(model[1], nn.ConvTranspose2d)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.slow
def test_espnet_decoder_is_full_integer(mnist, tmp_path):
    """The zoo ESPNet's ConvTranspose2d upsampling used to stay a float TRANSPOSE_CONV."""
    from edgekit.export.tflite import export_tflite, float_compute_ops
    from edgekit.models import create_model
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    model = create_model("espnet", num_classes=11, in_channels=1, input_size=32).eval()
    calib = np.random.default_rng(0).random((8, 1, 32, 32), dtype=np.float32)
    cfg = QuantConfig(target="tflite", mode="ptq", calibration_size=8, batch_size=8)
    qm = quantize_for_tflite(model, cfg, calib_data=calib)
    art = export_tflite(qm, tmp_path / "espnet.tflite", calibration=calib)
    assert float_compute_ops(art.path) == []


def _zoo_names():
    from edgekit.models import list_models

    return list_models()


@pytest.mark.slow
@pytest.mark.parametrize("name", _zoo_names())
def test_watched_forward_finds_the_pairs_torch_export_finds(name):
    """The fast pair finder (one watched eager forward) agrees with torch.export's graph
    on every zoo model: which BatchNorm folds into which conv, and which stays a 1x1
    depthwise conv (after an add or concat, or after XNOR's scaled conv)."""
    from edgekit.models import create_model, get_model_spec
    from edgekit.quantization.bn_fold import _exported_pairs, _watched_pairs

    size = get_model_spec(name).small_input_size
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1, input_size=size).eval()
    x = torch.rand(1, 1, size, size)
    assert _watched_pairs(model, x) == _exported_pairs(model, x)


class _Shared(nn.Module):
    """A conv output read by its BatchNorm and returned as well; a functional batch norm."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.conv, self.bn, self.functional = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), functional

    def forward(self, x):
        y = self.conv(x)
        if self.functional:
            return nn.functional.batch_norm(y, self.bn.running_mean, self.bn.running_var)
        return self.bn(y), y


def test_watched_pairs_keep_a_shared_conv_and_defer_functional_batch_norm():
    from edgekit.quantization.bn_fold import _exported_pairs, _watched_pairs

    x = torch.rand(1, 1, 8, 8)
    shared = _Shared(functional=False).eval()
    assert _watched_pairs(shared, x) == [(None, "bn")] == _exported_pairs(shared, x)
    assert _watched_pairs(_Shared(functional=True).eval(), x) is None  # torch.export decides
