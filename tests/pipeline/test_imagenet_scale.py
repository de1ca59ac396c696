"""ImageNet-scale defaults: ``--preprocess imagenet`` in one word (explicit values win, the
manifest records what was applied) and top-5 in the report for 1,000-class data."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.cli import main  # noqa: E402
from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.pipeline.recipe import CompressRecipe  # noqa: E402

IMAGENET = {"input_size": 224, "resize": "centre-crop", "crop_fraction": 0.875,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "channel_order": "RGB"}


def _preprocessing(recipe):
    return {k: v for k, v in recipe.to_dict().items() if k in IMAGENET}


def test_the_imagenet_preset_expands_and_explicit_values_win(tmp_path):
    assert _preprocessing(CompressRecipe(preprocess="imagenet")) == IMAGENET
    pre = CompressRecipe(preprocess="imagenet").preprocessing()
    assert (pre.input_size, pre.crop_fraction, pre.mean) == (224, 0.875, (0.485, 0.456, 0.406))
    mine = CompressRecipe(preprocess="imagenet", input_size=192, std=[0.5, 0.5, 0.5])
    assert _preprocessing(mine) == {**IMAGENET, "input_size": 192, "std": [0.5, 0.5, 0.5]}
    assert CompressRecipe(preprocess="imagenet").replace(mean=[0, 0, 0]).mean == [0, 0, 0]
    boxed = CompressRecipe(preprocess="imagenet", resize="letterbox")  # the whole image
    assert boxed.crop_fraction is None and boxed.preprocessing().resize == "letterbox"
    toml = tmp_path / "r.toml"
    toml.write_text('[compress]\npreprocess = "imagenet"\n')
    assert _preprocessing(CompressRecipe.from_toml(toml)) == IMAGENET
    with pytest.raises(InvalidInputError, match="preprocess must be one of imagenet"):
        CompressRecipe(preprocess="imagenett")


def test_the_cli_flag_is_checked_before_any_work(tmp_path, capsys):
    out = tmp_path / "never"
    code = main(["compress", "--preprocess", "cifar", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "preprocess must be one of imagenet" in capsys.readouterr().err


class Wide(torch.nn.Module):
    """A small 3-channel net with a 1,000-class head."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, stride=4, padding=1), torch.nn.BatchNorm2d(8),
            torch.nn.ReLU6(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(8, 1000)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.slow
@pytest.mark.parametrize("labelled", [True, False])
def test_a_1000_class_run_with_the_imagenet_preset_reports_top5(tmp_path, labelled):
    """``compress(..., preprocess="imagenet")`` on 256-px photo crops: 224-px inputs, the
    expanded preprocessing in the manifest, and top-5 rows (accuracy against the labels, or
    agreement with fp32 when there are none)."""
    import edgekit
    from edgekit.calibration import calibration_crops

    torch.manual_seed(0)
    x = calibration_crops(160, size=256)
    data = (x, np.random.default_rng(0).integers(0, 1000, len(x))) if labelled else x
    result = edgekit.compress(Wide().eval(), "jetson", data=data, epochs=0, qat_epochs=0,
                              preprocess="imagenet", out=tmp_path / "run",
                              calibration_size=32, bench_runs=3, bench_power="none",
                              fp32_baseline=False, ptq_rounding="nearest")
    assert result.verification.passed
    assert result.manifest["input"]["shape"] == ["batch", 3, 224, 224]
    applied = result.manifest["input"]["preprocess"]
    assert {k: applied[k] for k in IMAGENET} == IMAGENET
    assert result.manifest["recipe"]["preprocess"] == "imagenet"
    rows = {(r["model"], r["metric"]): r["value"] for r in result.metrics["accuracy_rows"]}
    if labelled:
        top1 = rows[("int8 fake-quant (trained)", "accuracy")]
        top5 = rows[("int8 fake-quant (trained)", "top-5 accuracy")]
        assert 0 <= top1 <= top5 <= 1 and ("fp32 (trained)", "top-5 accuracy") in rows
        shown = "top-5 accuracy"
    else:
        assert 0 <= rows[("int8 fake-quant (trained)", "fp32's top-1 in its top 5")] <= 1
        shown = "fp32's top-1 in its top 5"
    assert shown in (result.out_dir / "report.md").read_text()
