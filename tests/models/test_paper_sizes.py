"""Parameter and MAC counts at the default (ImageNet) size against the papers' figures."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.models import (  # noqa: E402
    count_macs,
    count_params,
    create_model,
    get_model_spec,
    list_models,
)

TOLERANCE = 0.03


def _anchored(key: str) -> list[str]:
    return [n for n in list_models() if key in (get_model_spec(n).paper or {})]


def _paper_model(name: str):
    return create_model(name, **get_model_spec(name).paper_args)


def test_every_required_family_has_anchors():
    names = set(_anchored("params"))
    for required in ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
                     "shufflenet_v1", "shufflenet_v2_x1_0", "squeezenet1_0", "squeezenet1_1",
                     "espnetv2_cls", "lenet5", "lenet300_100"):
        assert required in names
    assert {"mobilenet_v2", "shufflenet_v2_x1_0", "espnetv2_cls"} <= set(_anchored("macs"))


@pytest.mark.parametrize("name", _anchored("params"))
def test_params_match_paper(name):
    paper = get_model_spec(name).paper["params"]
    params = count_params(_paper_model(name))
    assert abs(params / paper - 1) <= TOLERANCE, f"{name}: {params} vs paper {paper:.0f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", _anchored("macs"))
def test_macs_match_paper(name):
    spec = get_model_spec(name)
    macs = count_macs(_paper_model(name), input_size=spec.input_size,
                      in_channels=spec.in_channels)
    assert abs(macs / spec.paper["macs"] - 1) <= TOLERANCE, f"{name}: {macs} MACs"


def test_count_macs_by_hand_on_lenet5():
    # conv1 20x1x5x5 on 24x24, conv2 50x20x5x5 on 8x8, fc 800x500, fc 500x10
    expected = 20 * 25 * 24 * 24 + 50 * 20 * 25 * 8 * 8 + 800 * 500 + 500 * 10
    model = create_model("lenet5")
    assert count_macs(model) == expected
    assert count_params(model) == 431_080
    assert model.training  # count_macs restores the training mode
