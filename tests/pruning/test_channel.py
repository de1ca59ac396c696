"""Channel pruning on torch-pruning's dependency graph: every zoo family, a user module."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

from torch import nn  # noqa: E402

from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.models import create_model, list_models  # noqa: E402
from edgekit.pruning import (  # noqa: E402
    ChannelPruneConfig,
    PruningError,
    prune_and_finetune,
    prune_channels,
)
from edgekit.pruning.inner import inner_widths  # noqa: E402
from tests.helpers import block_data, small_model  # noqa: E402

FAMILIES = ["lenet300_100", "lenet5", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small",
            "mobilenet_v3_large", "shufflenet_v1", "shufflenet_v2_x0_5", "squeezenet1_0",
            "squeezenet1_1", "espnet", "espnet_cls", "espnetv2", "espnetv2_cls"]
# families where the layers that can be thinned consistently carry less than half the
# MACs: ShuffleNetV1's grouped 1x1 convs all feed or follow a channel shuffle; ESPNetv2 at
# its small width (0.5): its decoder, whose width does not scale with the encoder's, holds
# 40% of the MACs, its pyramids behind a shuffle (52.5% reached; width 1.0 reaches 50%,
# test_espnetv2_segmentation_at_width_1_reaches_half_its_macs; see docs/pruning.md)
UNREACHABLE = {"shufflenet_v1", "espnetv2"}
SLOW = UNREACHABLE | {"espnetv2_cls"}  # minutes of pruner increments on 2 cores


def _io(model):
    cfg = model.edgekit_config
    return torch.randn(2, cfg["in_channels"], cfg["input_size"], cfg["input_size"])


def _convs(model):
    return {n: m for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))}


def _out(m):
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def test_every_registered_family_is_covered():
    from edgekit.models import get_model_spec

    names = {n for n in list_models() if get_model_spec(n).family != "lowbit"}
    families = {n.split("_x")[0] for n in names}  # shufflenet_v2 widths: one of them
    assert families <= {n.split("_x")[0] for n in FAMILIES} | {"shufflenet_v2"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW
                                  else n for n in FAMILIES])
def test_family_thins_consistently(name):
    torch.manual_seed(0)
    model = small_model(name).eval()
    x = _io(model)
    with torch.no_grad():
        dense_out = model(x)
    before = {n: (_out(m), m.weight.shape[1]) for n, m in _convs(model).items()}
    first = next(iter(before))
    inner = inner_widths(model)
    result = prune_channels(model, ChannelPruneConfig(keep_macs=0.5))
    with torch.no_grad():
        out = model(x)
    assert out.shape == dense_out.shape  # classes (and pixels) unchanged
    assert result.macs_after <= result.macs_before
    if name in UNREACHABLE:
        assert not result.steps[-1]["reached"] and result.excluded  # said, with reasons
    else:
        assert 0.40 <= result.macs_ratio <= 0.52, result.summary()
    convs = _convs(model)
    assert convs[first].weight.shape[1] == before[first][1]  # the input is never pruned
    for layer, (old, new) in result.channels.items():
        assert new < old and new % 8 == 0, (layer, old, new)
    for layer, why in result.excluded.items():
        if "outputs" in why:  # the head keeps its classes
            assert _out(convs[layer]) == before[layer][0]
    for unit, width in inner.items():  # thinned by the unit, never past max_layer_ratio
        assert len(unit.inner_importance()) >= min(width, 0.2 * width - 4), (width, unit)
    model.train()
    loss = model(x).float().mean()
    loss.backward()  # still trains


def test_shufflenet_v2_prunes_only_inside_the_shuffle():
    model = small_model("shufflenet_v2_x0_5")
    result = prune_channels(model, ChannelPruneConfig(keep_macs=0.6))
    assert result.steps[-1]["reached"]
    shuffled = [n for n, why in result.excluded.items() if "shuffle" in why]
    assert shuffled and all(n not in result.channels for n in shuffled)
    assert any(n.endswith("branch2.0.0") for n in result.channels)  # the bottlenecks thin


class _Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Conv2d(squeeze, expand, 1)
        self.e3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        s = self.squeeze(x)
        return torch.relu(torch.cat([self.e1(s), self.e3(s)], 1))


class _SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, 8, 1), nn.Conv2d(8, c, 1)

    def forward(self, x):
        return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3),
                                                                                  True)))))


def _shuffle(x, groups):  # torchvision's functional channel shuffle
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class UserNet(nn.Module):
    """Not in the zoo: Conv2dNormActivation-like blocks, a residual, SE, fire concat and a
    functional channel shuffle, as torchvision/timm write them."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False),
                                nn.BatchNorm2d(32), nn.Hardswish())
        self.se = _SE(32)
        self.fire = _Fire(32, 16, 32)
        self.mix = nn.Conv2d(64, 64, 1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        y = self.stem(x)
        y = y + self.se(self.dw(y))
        y = _shuffle(self.fire(y), 2)
        return self.head(self.mix(y).mean((2, 3), keepdim=True))


def test_user_module_with_shuffle_se_and_concat():
    torch.manual_seed(0)
    model = UserNet().eval()
    x = torch.randn(2, 1, 16, 16)
    result = prune_channels(model, ChannelPruneConfig(keep_macs=0.7),
                            example_input=x[:1])
    assert model(x).shape == (2, 10)
    assert "fire.e1" in result.excluded and "shuffle" in result.excluded["fire.e1"]
    assert "stem.0" in result.channels or "fire.squeeze.0" in result.channels
    assert model.se.fc2.out_channels == model.stem[0].out_channels  # SE gate kept in step
    assert model.head[1].out_features == 10
    with pytest.raises(InvalidInputError, match="example_input"):
        prune_channels(UserNet())  # no zoo config: the input shape must be given
    with pytest.raises(InvalidInputError, match="not a module"):
        prune_channels(UserNet(), example_input=x[:1], ignored_layers=["nope"])


def test_grouped_layers_are_rounded_per_group():
    from edgekit.pruning.channel import pruned_per_group

    # (asked per group, width, round_to, groups) -> removed per group; kept total % 8 == 0
    assert pruned_per_group(5, 64, 8) == 8  # 59 kept rounds down to 56
    assert pruned_per_group(60, 64, 8) == 56  # never below one multiple
    assert pruned_per_group(0, 64, 8) == 0
    assert pruned_per_group(1, 48, 8, groups=16) == 1  # 16 groups of 3: any count is fine
    assert pruned_per_group(3, 48, 8, groups=16) == 2  # at least one channel per group
    assert pruned_per_group(3, 64, 8, groups=4) == 4  # 13 of 16 kept -> 12 (4 x 12 = 48)
    assert pruned_per_group(1, 64, 8, groups=4) == 2  # 15 -> 14, the next even count


class GroupedMerge(nn.Module):
    """ESPNetv2's encoder-decoder merge in small: a 3x3 conv in 16 groups (32 -> 48) gated
    by a sigmoid of the pooled input, added to a decoder branch."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(32, 48, 3, 1, 1, groups=16), nn.BatchNorm2d(48))
        self.gate = nn.Conv2d(32, 48, 1, groups=16)
        self.branch = nn.Conv2d(32, 48, 1)
        self.head = nn.Conv2d(48, 10, 1)

    def forward(self, x):
        y = self.stem(x)
        merged = self.expand(y) * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))
        return self.head(torch.relu(merged + self.branch(y))).mean((2, 3))


def test_grouped_convs_are_pruned_by_whole_groups():
    # torch-pruning rounded the per-group count against the total width and never pruned
    # this layer (48 channels in 16 groups): now each group loses as many channels
    torch.manual_seed(0)
    model = GroupedMerge().eval()
    x = torch.randn(2, 1, 12, 12)
    result = prune_channels(model, ChannelPruneConfig(keep_macs=0.5), example_input=x[:1])
    assert model(x).shape == (2, 10)
    new = model.expand[0].out_channels
    assert new < 48 and new % 8 == 0 and model.expand[0].groups == 16, result.summary()
    assert model.gate.out_channels == model.branch.out_channels == new
    assert model.head.in_channels == new


@pytest.mark.slow
def test_espnetv2_segmentation_at_width_1_reaches_half_its_macs():
    # the 224-px variant benchmarks/pruning.py times is width 1.0; at 64 px it is the
    # same network: the decoder merges are pruned by whole groups (above) and the pruner
    # schedules again when the first ends short of the target
    torch.manual_seed(0)
    model = create_model("espnetv2", num_classes=11, in_channels=1, input_size=64,
                         width_mult=1.0).eval()
    x = torch.randn(2, 1, 64, 64)
    result = prune_channels(model, ChannelPruneConfig(keep_macs=0.5))
    assert result.steps[-1]["reached"] and result.macs_ratio >= 0.40, result.summary()
    assert model(x).shape == (2, 11, 64, 64)
    assert model.merge_l2.expand[0].out_channels < 48  # a decoder merge, in 16 groups


def test_lowbit_nets_get_a_typed_error():
    from edgekit.models import get_model_spec

    name = next(n for n in list_models() if get_model_spec(n).family == "lowbit")
    with pytest.raises(PruningError, match="binary"):
        prune_channels(small_model(name))


def test_config_parsing_and_bad_values():
    assert ChannelPruneConfig.parse("channel:0.5").keep_macs == 0.5
    for bad in ("channel", "chan:0.5", "channel:x", "channel:1.5", "channel:0"):
        with pytest.raises(InvalidInputError):
            ChannelPruneConfig.parse(bad)
    with pytest.raises(InvalidInputError):
        ChannelPruneConfig(round_to=0)


def test_local_scope_and_round_to_16():
    model = create_model("mobilenet_v2", num_classes=10, in_channels=1, input_size=28)
    result = prune_channels(model, ChannelPruneConfig(keep_macs=0.6, scope="local",
                                                      round_to=16))
    assert result.channels and all(new % 16 == 0 for _, new in result.channels.values())
    assert result.steps[0]["importance"] == "l2"  # "auto" without data: magnitude


@pytest.mark.slow
def test_iterative_prune_and_distilled_finetune():
    data = block_data(256, size=28)
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", num_classes=10, in_channels=1, input_size=28)
    config = ChannelPruneConfig(keep_macs=0.5, steps=2, epochs_per_step=1, distill=0.5)
    from edgekit.training import TrainConfig

    result = prune_and_finetune(model, data, config, val_data=block_data(64, seed=1, size=28),
                                train_config=TrainConfig(epochs=1, lr=3e-3, progress=False))
    assert [s["step"] for s in result.steps] == [1, 2]
    assert result.steps[0]["macs"] > result.steps[1]["macs"]
    assert 0.40 <= result.macs_ratio <= 0.52
    assert all(s["best_metric"] is not None for s in result.steps)
    assert result.config["importance"] == "auto"
    assert {s["importance"] for s in result.steps} == {"taylor"}  # labelled data: taylor


def test_taylor_ties_and_all_zero_groups_are_ranked_by_magnitude():
    # channels whose gradient is zero tie at 0 (torch-pruning's global threshold would take
    # them all at once), and a group all at 0 is 0/0 = NaN after normalization (never
    # pruned): both must come out finite and ordered by weight magnitude
    from edgekit.pruning.channel import _importance
    from edgekit.pruning.graph import torch_pruning

    tp = torch_pruning()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    graph = tp.DependencyGraph().build_dependency(model, torch.randn(1, 1, 8, 8))
    group = graph.get_pruning_group(model[0], tp.prune_conv_out_channels, list(range(8)))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    scores = _importance("taylor")(group)
    assert torch.isfinite(scores).all()
    magnitude = tp.importance.GroupMagnitudeImportance(p=2)(group)
    assert torch.equal(scores.argsort(), magnitude.argsort())


def test_taylor_on_a_user_segmenter_with_coarse_logits_and_an_aux_head():
    # not a zoo model: logits at half the input size plus an auxiliary head; the Taylor
    # gradients go through training's forward (main head, upsampled to the labels)
    import numpy as np

    from edgekit.calibration import ArrayDataset

    class Segmenter(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU())
            self.head, self.aux = nn.Conv2d(32, 3, 1), nn.Conv2d(32, 3, 1)

        def forward(self, x):
            features = self.body(x)
            return self.head(features), self.aux(features)

    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.standard_normal((32, 1, 16, 16)).astype(np.float32),
                        rng.integers(0, 3, (32, 16, 16)), "segmentation", 3, "noise")
    torch.manual_seed(0)
    model = Segmenter()
    result = prune_channels(model, ChannelPruneConfig(keep_macs=0.6), calib_data=data,
                            example_input=torch.from_numpy(data.x[:2]))
    assert result.steps[0]["importance"] == "taylor"
    assert result.macs_ratio <= 0.6 and result.channels
    head, aux = model(torch.from_numpy(data.x[:2]))
    assert head.shape == aux.shape == (2, 3, 8, 8)
