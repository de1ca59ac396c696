"""Weight rounding before the target's quantizer: on the int8 grid, better than nearest."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.quantization.rounding import (  # noqa: E402
    RoundingConfig,
    levels_for,
    round_weights,
)


class _ThirdPartyStyle(torch.nn.Module):
    """Layers called the way third-party code calls them: a padded F.conv2d in a
    subclass's forward (static 'same' padding), a depthwise conv, a grouped conv, a linear
    head after a functional pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 16, 3, stride=2)
        self.depthwise = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.grouped = torch.nn.Conv2d(16, 24, 1, groups=2, bias=False)
        self.head = torch.nn.Linear(24, 10)

    def forward(self, x):
        x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)),
                                       self.stem.weight, self.stem.bias, 2)
        x = torch.nn.functional.relu6(self.depthwise(torch.nn.functional.relu6(x)))
        x = torch.nn.functional.relu6(self.grouped(x))
        return self.head(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def _net_and_data(seed: int = 0):
    torch.manual_seed(seed)
    net = _ThirdPartyStyle().eval()
    with torch.no_grad():  # uneven channel ranges, as BatchNorm folding leaves them
        for layer in (net.stem, net.depthwise, net.grouped):
            layer.weight.mul_(torch.rand(layer.weight.shape[0], 1, 1, 1) * 3 + 0.2)
    calib = torch.rand(64, 3, 24, 24)  # non-negative, image-like: rounding shifts means
    return net, calib


@pytest.mark.parametrize("method", ["nearest", "gptq"])
def test_weights_land_on_the_grid_the_targets_quantizer_finds(method):
    net, calib = _net_and_data()
    round_weights(net, calib, RoundingConfig(method, bias_passes=1), lambda layer: 127)
    for layer in (net.stem, net.depthwise, net.grouped, net.head):
        rows = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        step = rows.abs().amax(1, keepdim=True) / 127  # min-max per output channel
        levels = rows / step
        assert torch.allclose(levels, levels.round(), atol=1e-3)
        assert torch.all(levels.abs().amax(1).round() == 127)  # the scale is kept


def test_gptq_and_bias_correction_beat_nearest_rounding_on_held_out_inputs():
    errors = {}
    for method, passes in (("nearest", 0), ("nearest", 1), ("gptq", 1)):
        net, calib = _net_and_data()
        reference = copy.deepcopy(net)
        round_weights(net, calib, RoundingConfig(method, passes), lambda layer: 15)  # 5 bits
        held_out = torch.rand(64, 3, 24, 24, generator=torch.Generator().manual_seed(9))
        with torch.no_grad():
            errors[(method, passes)] = (net(held_out) - reference(held_out)).pow(2).mean()
    assert errors[("nearest", 1)] < errors[("nearest", 0)]
    assert errors[("gptq", 1)] < errors[("nearest", 1)]


def test_levels_follow_the_scheme_and_depthwise_convs_keep_8_bits():
    net, _ = _net_and_data()
    assert levels_for(net.grouped, 7) == 63 and levels_for(net.head, 7) == 63
    assert levels_for(net.depthwise, 7) == 127 and levels_for(net.grouped, 8) == 127


def test_the_recipe_names_the_same_rounding_methods():
    from edgekit.pipeline.recipe import PTQ_ROUNDINGS
    from edgekit.quantization.rounding import ROUNDING_METHODS

    assert PTQ_ROUNDINGS == ROUNDING_METHODS


def test_block_updates_round_as_column_by_column_gptq(monkeypatch):
    """GPTQ's lazy block updates are a reordering of the same arithmetic: with one column
    per block (the plain column-by-column update) the weights land on the same levels."""
    import edgekit.quantization.rounding as rounding

    torch.manual_seed(0)
    wide = torch.nn.Conv2d(40, 6, 3, padding=1).eval()  # rows of 360 columns: 3 blocks
    calib = torch.rand(16, 40, 8, 8)
    results = {}
    for block in (1, rounding.GPTQ_BLOCK):
        net = copy.deepcopy(wide)
        monkeypatch.setattr(rounding, "GPTQ_BLOCK", block)
        round_weights(net, calib, RoundingConfig("gptq", bias_passes=0), lambda layer: 15)
        results[block] = net.weight.detach() / (net.weight.detach().abs().amax(
            (1, 2, 3), keepdim=True) / 15)
    same = (results[1].round() == results[rounding.GPTQ_BLOCK].round()).float().mean()
    assert same > 0.99  # float summation order may flip a rare tie


def test_the_hessians_and_bias_shifts_use_at_most_samples_inputs():
    net, calib = _net_and_data()
    report = round_weights(net, calib, RoundingConfig("gptq", 1, samples=16), lambda l: 127)
    assert report.samples == 16
    assert round_weights(*_net_and_data(), RoundingConfig("gptq", 1), lambda l: 127
                         ).samples == len(calib)  # 64: under the default cap
    with pytest.raises(InvalidInputError, match="samples"):
        RoundingConfig(samples=0)
