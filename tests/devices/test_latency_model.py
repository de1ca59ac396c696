"""The per-layer latency model: fit, leave-one-out interval, published data and transfer."""

import math
import sys
from importlib import resources

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport (a core dependency there, as in edgekit)
    import tomli as tomllib

from edgekit.devices import get_profile, list_profiles
from edgekit.devices.calibrated import (
    MIN_POINTS,
    as_precision,
    calibration,
    default_devices,
    donor_constants,
    estimate,
    own_points,
    published_layers,
    published_points,
)
from edgekit.devices.latency_model import Constants, LayerRecord, calibrate, predict_s


def _net(width: float, convs: int) -> list[LayerRecord]:
    """A synthetic graph: dense convs, depthwise convs and memory-bound ops."""
    out = []
    for i in range(convs):
        out.append(LayerRecord("Conv", "conv", 2e6 * width * (i + 1), 4e4 * width, 2e5, "fp32"))
        out.append(LayerRecord("Conv", "depthwise", 1e5 * width, 1e3, 2e5 * width, "fp32"))
        out.append(LayerRecord("Add", "memory", 0.0, 0.0, 3e5 * width, "fp32"))
    return out


def test_fit_recovers_the_constants_that_made_the_data():
    profile = get_profile("raspberry-pi-4")
    truth = Constants({"fp32": 0.3}, 0.2, 0.5, 40e-6)
    models = [_net(w, n) for w, n in ((0.5, 4), (1.0, 6), (2.0, 8), (0.25, 12), (4.0, 3),
                                      (1.5, 10), (3.0, 5))]
    measured = predict_s(profile, truth, models).tolist()
    cal = calibrate(profile, models, measured, source="synthetic")
    assert cal.points == 7 and len(cal.loo_log_residuals) == 7
    assert cal.loo_median_ratio_error < 1.05  # the model family holds the truth
    refit = predict_s(profile, cal.constants, models)
    assert np.allclose(refit, measured, rtol=0.03)


def test_interval_comes_from_leave_one_out_residuals():
    profile = get_profile("raspberry-pi-4")
    models = [_net(w, 6) for w in (0.5, 1, 2, 3, 4, 5)]
    rng = np.random.default_rng(0)
    truth = Constants({"fp32": 0.3}, 0.2, 0.5, 40e-6)
    measured = predict_s(profile, truth, models) * np.exp(rng.normal(0, 0.3, len(models)))
    cal = calibrate(profile, models, measured.tolist(), source="synthetic")
    low, high = cal.interval_factors()
    assert low <= 1.0 <= high and high / low > 1.2  # noisy data: a real spread
    assert cal.loo_median_ratio_error > 1.0


def test_every_published_point_names_its_source_and_has_layers():
    folder = resources.files("edgekit.devices").joinpath("published")
    layers = published_layers()
    for entry in folder.iterdir():
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text("utf-8"))
        assert data["device"] == entry.name.removesuffix(".toml")
        get_profile(data["device"])  # a shipped profile
        for point in data["point"]:
            assert point["latency_ms"] > 0 and point["batch"] == 1
            assert point["published"] and point["round"] and point["source"]
            assert point["model"] in layers, point["model"]
            if data["device"] != "x86-cpu":  # measured on the host, not published
                assert point["source"].startswith("https://github.com/mlcommons/")
                assert f"{point['latency_ms'] * 1e6:.0f}"[:4] in point["published"]


@pytest.mark.slow  # ~10 s: 76 leave-one-out refits for the Raspberry Pi 4
def test_published_devices_are_fitted_within_the_issue_bound():
    for device in default_devices():
        if device == "x86-cpu":  # measured on the host, not published
            continue
        cal = calibration(device)
        assert cal.points == len(published_points(device)) >= 5
        assert cal.loo_median_ratio_error <= 1.3, (device, cal.loo_median_ratio_error)


def test_only_devices_with_points_of_their_own_are_shown_by_default():
    shown = default_devices()
    for name in list_profiles():
        assert (name in shown) == (own_points(name) >= MIN_POINTS), name
    # the issue's devices without published points: left out, not transferred silently
    assert not {"jetson-orin-nano", "jetson-nano", "raspberry-pi-5"} & set(shown)
    assert {"a10", "jetson-agx-orin", "raspberry-pi-4"} <= set(shown)


def test_estimate_text_carries_interval_and_basis():
    records = as_precision(published_layers()["resnet50"], "int8")
    est = estimate("jetson-xavier-nx", records)
    assert est.low_ms <= est.latency_ms <= est.high_ms
    assert est.text().startswith(f"estimated {est.latency_ms:.3g} ms (")
    assert f"from {est.points} published points" in est.text()
    # a device without published points borrows its runtime family's fit, and says so
    nano = estimate("jetson-orin-nano", records)
    assert nano.points == 0 and nano.kind == "transferred"
    assert nano.text().startswith("transferred ") and "transferred from" in nano.text()
    assert nano.latency_ms > 0.1  # ResNet-50 on an Orin Nano: not the 10-us roofline
    assert math.isfinite(nano.latency_ms)


def test_a_transfer_uses_the_donors_own_fits():
    """A transferred device averages the constants each donor's full calibration has (the
    transfer fits them without the donors' leave-one-out refits)."""
    nano = calibration("jetson-orin-nano")
    donors = nano.source.removeprefix("transferred from ").split(", ")
    assert len(donors) >= 2
    for donor in donors:
        assert donor_constants(donor) == calibration(donor).constants
    geo = math.exp(np.mean([math.log(calibration(d).constants.kernel_s) for d in donors]))
    assert nano.constants.kernel_s == pytest.approx(geo, rel=1e-12)


def test_int8_on_a_device_without_int8_runs_in_fp16():
    records = as_precision(published_layers()["resnet50"], "int8")
    assert estimate("jetson-nano", records).precision == "fp16"


@pytest.mark.parametrize("bad", [[], [[]]])
def test_calibrate_refuses_empty_input(bad):
    from edgekit.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        calibrate(get_profile("x86-cpu"), bad, [1.0] * len(bad), source="x")
