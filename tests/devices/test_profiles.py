"""Device profiles: shipped TOML files load, aliases resolve, unknown names suggest, roofline."""

from __future__ import annotations

import re

import pytest

from edgekit.core.errors import InvalidInputError, UnknownNameError
from edgekit.devices import DeviceProfile, get_profile, list_profiles, roofline_bound

REQUIRED = {"jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "jetson-agx-orin",
            "raspberry-pi-4", "raspberry-pi-5", "a10", "x86-cpu"}


def test_every_required_profile_ships_with_consistent_fields():
    assert set(list_profiles()) >= REQUIRED
    for name in list_profiles():
        p = get_profile(name)
        assert p.runtime in ("tensorrt", "tflite", "onnxruntime")
        assert set(p.precisions) <= set(p.peak_ops_s)
        assert p.memory_bandwidth_bytes_s > 0 and p.tdp_w > 0


@pytest.mark.parametrize(("alias", "name", "runtime"), [
    ("jetson", "jetson-orin-nano", "tensorrt"), ("arm", "raspberry-pi-5", "tflite"),
    ("rpi", "raspberry-pi-5", "tflite"), ("desktop-gpu", "a10", "tensorrt"),
    ("JETSON-NANO", "jetson-nano", "tensorrt"), ("cpu", "x86-cpu", "onnxruntime"),
])
def test_aliases_resolve_to_the_profile_and_its_runtime(alias, name, runtime):
    assert get_profile(alias).name == name
    assert get_profile(alias).runtime == runtime


def test_unknown_profile_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean: jetson-nano"):
        get_profile("jetson-nanoo")


@pytest.mark.parametrize(("typo", "hint"), [
    ("jetsn", "jetson (jetson-orin-nano)"), ("orin-nan", "orin-nano (jetson-orin-nano)"),
    ("raspbery-pi-5", "raspberry-pi-5"), ("Jetson_Xavier_NX2", "jetson-xavier-nx"),
    ("nvidia-a1O", "nvidia-a10 (a10)"),
])
def test_typos_suggest_the_profile_an_alias_stands_for(typo, hint):
    with pytest.raises(UnknownNameError, match=rf"did you mean: {re.escape(hint)}"):
        get_profile(typo)


@pytest.mark.parametrize("name", ["marsrover", "gpu", "coral", "snapdragon"])
def test_unrelated_names_get_no_suggestion(name):
    with pytest.raises(UnknownNameError) as info:
        get_profile(name)
    assert "did you mean" not in str(info.value)


def test_roofline_estimate_is_labelled_and_picks_the_binding_limit():
    nano = get_profile("jetson-nano")
    # MobileNetV2: ~300M MACs; 14 MB of fp32 weights moved once.
    est = roofline_bound(nano, 300e6, 14e6, "fp16")
    assert est.kind == "lower bound" and "roofline" in est.method
    assert est.compute_s == pytest.approx(2 * 300e6 / 472e9)
    assert est.memory_s == pytest.approx(14e6 / 25.6e9)
    assert est.bound == "compute" and est.latency_s == est.compute_s
    memory_bound = roofline_bound(nano, 1e3, 1e9, "fp32")
    assert memory_bound.bound == "memory" and memory_bound.latency_ms == pytest.approx(1e3 / 25.6)


def test_roofline_rejects_unsupported_precision_and_negative_work():
    with pytest.raises(InvalidInputError, match="int8"):
        roofline_bound(get_profile("jetson-nano"), 1, 1, "int8")
    with pytest.raises(InvalidInputError):
        roofline_bound(get_profile("x86-cpu"), -1, 1, "fp32")


def test_profile_validation_rejects_bad_runtime_and_missing_peaks():
    good = get_profile("x86-cpu").to_dict()
    assert DeviceProfile.from_dict(good) == get_profile("x86-cpu")
    with pytest.raises(InvalidInputError, match="runtime"):
        DeviceProfile.from_dict({**good, "runtime": "coreml"})
    with pytest.raises(InvalidInputError, match="no peak"):
        DeviceProfile.from_dict({**good, "precisions": ["fp32", "fp16"]})
    with pytest.raises(InvalidInputError, match="bad field"):
        DeviceProfile.from_dict({k: v for k, v in good.items() if k != "tdp_w"})
