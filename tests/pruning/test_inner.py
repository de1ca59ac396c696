"""ESPNetv2's EESP inner width, thinned by the unit itself (torch-pruning maps it wrongly)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.models.espnetv2 import EESP  # noqa: E402
from edgekit.pruning.inner import owned_layers, thin_inner  # noqa: E402


def _unit(seed: int = 0) -> EESP:
    torch.manual_seed(seed)
    unit = EESP(64, 64, r_lim=9).eval()  # inner width 16 in 4 projection groups
    for bn in (unit.project[1], unit.bn_act[0], unit.expand[1]):  # not the identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return unit


def test_channels_that_feed_nothing_go_and_the_output_stays():
    unit = _unit()
    n = unit.project[0].out_channels
    dead = torch.tensor([1, 2, 5, 6, 9, 10, 13, 14])  # two in each projection group
    with torch.no_grad():  # their filters, and their expansion columns in every group, zero
        unit.project[0].weight[dead] = 0
        for branch in unit.branches:
            branch.weight[dead] = 0
        unit.expand[0].weight[:, dead] = 0
    x = torch.randn(2, 64, 12, 12)
    with torch.no_grad():
        before = unit(x)
    assert thin_inner(unit, 0.5, round_to=4) == 1
    assert unit.project[0].out_channels == 8 and unit.expand[0].in_channels == 32
    assert all(b.groups == b.out_channels == 8 for b in unit.branches)
    assert unit.bn_act[0].num_features == 32 and unit.project[1].num_features == 8
    with torch.no_grad():
        after = unit(x)
    torch.testing.assert_close(after, before)  # exactly the channels that did nothing
    assert n == 16


def test_equal_loss_per_group_rounding_and_skip():
    unit = _unit(1)
    with torch.no_grad():  # group 0's channels all score low: still only its share goes
        unit.project[0].weight[:4] *= 1e-3
        unit.expand[0].weight[:, :4] *= 1e-3
    assert thin_inner(unit, 0.75, round_to=4) == 1
    assert unit.project[0].out_channels == 12  # 3 of 4 kept in each group
    assert unit.project[0].weight.shape == (12, 16, 1, 1)
    unit.train()(torch.randn(2, 64, 12, 12)).mean().backward()  # still trains
    small = _unit()
    assert thin_inner(small, 0.5, round_to=16) == 0  # 16 is the least it may keep
    assert thin_inner(small, 0.5, round_to=4, skip=["project.0"]) == 0
    assert owned_layers(small) == {"project.0", *(f"branches.{i}" for i in range(4))}


def test_share_of_the_rounds_starting_width():
    """``of=``: the share counts from the widths at the round's start, so a round that
    thins again (the target not met) goes on from there instead of compounding."""
    unit = _unit()
    start = {unit: 16}
    assert thin_inner(unit, 0.75, round_to=4, of=start) == 1
    assert unit.project[0].out_channels == 12
    assert thin_inner(unit, 0.75, round_to=4, of=start) == 0  # already there
    assert thin_inner(unit, 0.5, round_to=4, of=start) == 1
    assert unit.project[0].out_channels == 8  # half of 16, not of 12
    assert unit(torch.randn(1, 64, 8, 8)).shape == (1, 64, 8, 8)
