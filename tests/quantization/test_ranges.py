"""PTQ's activation range setting, chosen on held-out calibration inputs (real nncf and
PT2E quantizers, no mocks)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.quantization import QuantConfig, quantize  # noqa: E402
from edgekit.quantization.ranges import (  # noqa: E402
    RANGE_CHOICES,
    RANGE_SETTINGS,
    choose_ranges,
    describe,
    score_outputs,
)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def _outlier_data(n: int, seed: int, *, outlier_share: float) -> torch.Tensor:
    """Image-like inputs in [0, 1]; in a few samples one pixel 300 times brighter: a
    global min-max range then spends its levels on that one value."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    hit = torch.rand(n, generator=g) < outlier_share
    x[hit, 0, 0, 0] = 300.0
    return x


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = _Net().eval()
    with torch.no_grad():
        net.conv.weight.abs_()  # every channel sees the outlier
    return net


@pytest.mark.parametrize("target", ["tensorrt", "tflite"])
def test_auto_keeps_the_setting_that_wins_on_held_out_inputs_and_it_beats_minmax(target):
    net, calib = _net(), _outlier_data(96, 0, outlier_share=0.04)
    config = dict(target=target, mode="ptq", epochs=0, calibration_size=96, batch_size=16)
    auto = quantize(net, QuantConfig(**config, ranges="auto"), calib_data=calib)
    choice = auto.ranges
    assert [t["setting"] for t in choice["trials"]] == list(RANGE_SETTINGS)
    assert choice["fit"] + choice["held_out"] == 96 and choice["held_out"] == 24
    best = max(choice["trials"], key=lambda t: (t["agreement"], -t["output_error"]))
    assert choice["chosen"] == best["setting"]
    by_setting = {t["setting"]: t for t in choice["trials"]}
    assert by_setting["minmax"]["output_error"] > by_setting[choice["chosen"]]["output_error"]
    assert choice["chosen"] != "minmax"
    # on new inputs the chosen model is closer to fp32 than the min-max one
    minmax = quantize(net, QuantConfig(**config, ranges="minmax"), calib_data=calib)
    assert minmax.ranges == {"chosen": "minmax"}
    test = _outlier_data(128, 1, outlier_share=0.0)
    with torch.no_grad():
        expected = net(test)
        errors = {name: score_outputs(qm(test), expected)[1]
                  for name, qm in (("auto", auto), ("minmax", minmax))}
    assert errors["auto"] < errors["minmax"] / 2
    assert describe(choice).startswith(f"Activation ranges: {choice['chosen']}, chosen")


def _input_scales(calib: torch.Tensor) -> dict[str, float]:
    """setting -> the scale the TFLite graph's input quantizer got."""
    scales = {}
    for setting in RANGE_SETTINGS:
        qm = quantize(_net(), QuantConfig(target="tflite", mode="ptq", epochs=0, ranges=setting,
                                          calibration_size=len(calib), batch_size=16),
                      calib_data=calib)
        scales[setting] = float(next(n for n in qm.model.graph.nodes
                                     if "quantize_per_tensor" in str(n.target)).args[1])
    return scales


def test_each_setting_sets_its_own_range_on_the_tflite_graph():
    """The PT2E observers really differ: min-max keeps a rare outlier, percentile and the
    batch means clip it; on heavy-tailed values the least-squared-error range clips some of
    the tail."""
    scales = _input_scales(_outlier_data(64, 0, outlier_share=0.04))
    assert scales["minmax"] == pytest.approx(300 / 255, rel=0.01)  # the input's range
    assert scales["mean-minmax"] < scales["minmax"]  # batches without the outlier
    assert scales["percentile"] < scales["minmax"] / 2
    torch.manual_seed(0)
    scales = _input_scales(torch.distributions.StudentT(2.0).sample((64, 3, 32, 32)))
    assert scales["mse"] < 0.95 * scales["minmax"]
    assert scales["percentile"] < scales["minmax"]


def test_too_few_calibration_inputs_leave_the_backends_default():
    calls = []
    choice = choose_ranges(lambda s, part: calls.append(s), _net(), torch.rand(10, 3, 4, 4),
                           batch_size=4)
    assert choice.chosen is None and not calls and "too few" in choice.note
    assert "the backend's default" in describe(choice.to_dict())


def test_the_range_setting_is_validated_in_the_config_and_the_recipe():
    from edgekit.pipeline.recipe import PTQ_RANGES, CompressRecipe

    assert PTQ_RANGES == RANGE_CHOICES
    with pytest.raises(InvalidInputError, match="ranges must be one of"):
        QuantConfig(ranges="entropy")
    with pytest.raises(InvalidInputError, match="ptq_ranges must be one of"):
        CompressRecipe(ptq_ranges="max")
    assert CompressRecipe().ptq_ranges == "auto"
    with pytest.raises(InvalidInputError, match="for PTQ on the tflite target"):
        quantize(_net(), QuantConfig(target="tflite", mode="qat", epochs=1, ranges="mse"),
                 train_data=(torch.rand(8, 3, 4, 4), torch.zeros(8, dtype=torch.long)))


def test_the_quantize_stage_key_changes_with_the_ptq_range_setting():
    from edgekit.pipeline.quantize_stage import quantize_key
    from edgekit.pipeline.recipe import CompressRecipe

    def key(mode: str, **fields) -> str:
        ctx = SimpleNamespace(recipe=CompressRecipe(**fields), stage_keys={"train": "t"},
                              quant_target="tensorrt")
        return quantize_key(ctx, mode)

    ptq = {setting: key("ptq", ptq_ranges=setting) for setting in RANGE_CHOICES}
    assert len(set(ptq.values())) == len(RANGE_CHOICES)
    assert key("ptq", ptq_ranges="auto") == ptq["auto"]  # a function of the recipe
    # QAT starts from the backend's ranges whatever ptq_ranges says
    assert key("qat", ptq_ranges="auto") == key("qat", ptq_ranges="mse")
