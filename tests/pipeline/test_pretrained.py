"""A trained network from someone else's code, compressed as it is, with data that has no
labels: the module's own weights, an unlabelled image folder / x.npy / Dataset of inputs,
scores as agreement with the fp32 model, label-free QAT by distillation."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

import edgekit  # noqa: E402
from edgekit.calibration import load_dataset  # noqa: E402
from edgekit.core.errors import InvalidInputError  # noqa: E402

QUICK = {"calibration_size": 64, "bench_runs": 3, "bench_power": "none",
         "fp32_baseline": False, "batch_size": 32}


class StaticSamePad(torch.nn.Conv2d):
    """TensorFlow 'SAME' padding worked out for one input size, as efficientnet-style
    packages write it: a ZeroPad2d, then F.conv2d with no padding."""

    def __init__(self, cin, cout, k, stride=1, image_size=28, **kw):
        super().__init__(cin, cout, k, stride, **kw)
        out = math.ceil(image_size / stride)
        pad = max((out - 1) * stride + k - image_size, 0)
        self.static_padding = torch.nn.ZeroPad2d((pad // 2, pad - pad // 2) * 2)

    def forward(self, x):
        return torch.nn.functional.conv2d(self.static_padding(x), self.weight, self.bias,
                                          self.stride, 0, self.dilation, self.groups)


def drop_connect(x, p, training):
    if not training:
        return x
    keep = torch.floor(1 - p + torch.rand(x.shape[0], 1, 1, 1))
    return x / (1 - p) * keep


class ThirdPartyNet(torch.nn.Module):
    """Static-same padding, drop-connect, functional ReLU6, BatchNorm with TF's epsilon, a
    print in forward: the habits of ImageNet model packages on the registry."""

    def __init__(self, classes=10, verbose=False):
        super().__init__()
        self.stem = StaticSamePad(1, 16, 3, stride=2, image_size=28, bias=False)
        self.bn0 = torch.nn.BatchNorm2d(16, eps=1e-3)
        self.dw = StaticSamePad(16, 16, 3, image_size=14, groups=16, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16, eps=1e-3)
        self.project = torch.nn.Conv2d(16, 16, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16, eps=1e-3)
        self.fc = torch.nn.Linear(16, classes)
        self.verbose = verbose

    def forward(self, x):
        x = torch.nn.functional.relu6(self.bn0(self.stem(x)))
        y = self.bn2(self.project(torch.nn.functional.relu6(self.bn1(self.dw(x)))))
        x = x + drop_connect(y, 0.2, self.training)
        if self.verbose:
            print("features", tuple(x.shape))
        return self.fc(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


@pytest.fixture(scope="module")
def trained():
    """ThirdPartyNet trained in plain torch (not through edgekit) on digits."""
    from edgekit.calibration import mnist5k

    data = mnist5k("train")
    x, y = torch.from_numpy(np.asarray(data.x[:2000])), torch.from_numpy(data.y[:2000])
    torch.manual_seed(0)
    net = ThirdPartyNet()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(3):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    net.verbose = True
    return net.eval()


def _digit_inputs(n=900, split="test"):
    from edgekit.calibration import mnist5k

    return np.asarray(mnist5k(split).x[:n])


def test_unlabelled_sources_load_as_inputs(tmp_path):
    from PIL import Image

    x = _digit_inputs(12)
    for i, image in enumerate(x):
        Image.fromarray((image[0] * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    np.save(tmp_path / "x.npy", x)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x))  # yields (x,)
    for source in (tmp_path, tmp_path / "x.npy", dataset, torch.from_numpy(x), x):
        data = load_dataset(source)
        assert not data.labelled and len(data) == 12
        np.testing.assert_allclose(np.asarray(data.x), x, atol=1 / 255)


def test_training_from_scratch_without_labels_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no labels"):
        edgekit.compress(ThirdPartyNet(), "jetson", data=_digit_inputs(), epochs=1,
                         out=tmp_path / "run", **QUICK)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_third_party_module_compresses_as_it_is_from_an_unlabelled_folder(trained, tmp_path,
                                                                             capsys):
    """PTQ (epochs=0, no weights=): the module's own weights, a folder of images without
    class folders, verified on 400 held-out images, scored as agreement with fp32."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(_digit_inputs(1000)):
        Image.fromarray((image[0] * 255).astype(np.uint8)).save(folder / f"{i:04d}.png")
    result = edgekit.compress(trained, "jetson", data=folder, epochs=0, qat_epochs=0,
                              out=tmp_path / "run", **QUICK)
    assert result.verification.passed and result.verification.samples == 400
    assert result.metrics["labels"].startswith("top-1 agreement with the fp32 model")
    assert result.metrics["weight_rounding"]["method"] == "gptq"
    report = (result.out_dir / "report.md").read_text()
    assert "top-1 agreement with fp32" in report and "fp32's top-1 in its top 5" in report
    agreement = next(r["value"] for r in result.metrics["accuracy_rows"]
                     if r["model"].startswith("int8"))
    assert agreement >= 0.9
    assert trained.verbose  # the caller's module is left as it was


@pytest.mark.slow
def test_label_free_qat_distills_from_the_fp32_model(trained, tmp_path):
    np.save(tmp_path / "x.npy", _digit_inputs(900, "train"))
    result = edgekit.compress(trained, "raspberry-pi-5", data=tmp_path / "x.npy", epochs=0,
                              qat_epochs=1, out=tmp_path / "run", **QUICK)
    assert result.verification.passed
    assert result.metrics["qat_validation"]["metric"] == "accuracy"  # against fp32's answers
    assert result.metrics["accuracy_rows"][0]["metric"] == "top-1 agreement with fp32"
