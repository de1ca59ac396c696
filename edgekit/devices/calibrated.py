"""Calibrated per-layer estimates for every device profile.

A device with published points (``published/<device>.toml``, each with its source) is
fitted on them; ``published/layers.json`` holds the layer records of the models those
points measure. A device without points borrows the efficiencies fitted on the devices of
its runtime family (TensorRT boards, TFLite boards) and says so; its interval comes from
leave-one-device-out residuals of that transfer, which measure how well it carries over.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import numpy as np

from edgekit.core.errors import DataError, InvalidInputError
from edgekit.devices.latency_model import (
    Calibration,
    Constants,
    LayerRecord,
    calibrate,
    fit_constants,
    predict_s,
    run_precision,
)
from edgekit.devices.profiles import DeviceProfile, get_profile, list_profiles

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MIN_POINTS = 5  # fewer than this: the device borrows a fitted family instead


@dataclass(frozen=True)
class PublishedPoint:
    device: str
    model: str
    precision: str
    batch: int
    latency_ms: float
    source: str
    round: str
    published: str


def _folder() -> Any:
    return resources.files("edgekit.devices").joinpath("published")


@lru_cache(maxsize=1)
def published_layers() -> dict[str, list[LayerRecord]]:
    """Layer records (fp32 export, batch 1) of every model named in the published points."""
    entry = _folder().joinpath("layers.json")
    if not entry.is_file():
        return {}
    data = json.loads(entry.read_text("utf-8"))
    return {name: [LayerRecord.from_dict(r) for r in rows]
            for name, rows in data["models"].items()}


@cache
def published_points(device: str) -> tuple[PublishedPoint, ...]:
    entry = _folder().joinpath(f"{device}.toml")
    if not entry.is_file():
        return ()
    data = tomllib.loads(entry.read_text("utf-8"))
    try:
        return tuple(PublishedPoint(device, p["model"], p["precision"], int(p["batch"]),
                                    float(p["latency_ms"]), p["source"], p["round"],
                                    p["published"]) for p in data.get("point", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"published/{device}.toml: bad point field {exc}") from None


def as_precision(records: list[LayerRecord], precision: str) -> list[LayerRecord]:
    """An fp32 export's records as the same graph deployed in ``precision`` (bytes scaled)."""
    scale = {"fp32": 1.0, "fp16": 0.5, "int8": 0.25}[precision]
    return [LayerRecord(r.op, r.kind, r.macs, r.weight_bytes * scale,
                        r.activation_bytes * scale, precision) for r in records]


def _dataset(device: str) -> tuple[list[list[LayerRecord]], list[float], list[str]]:
    layers = published_layers()
    models, seconds, names = [], [], []
    for p in published_points(device):
        if p.batch != 1 or p.model not in layers:
            continue  # batch-1 points whose model the package has layers for
        # host/ entries are the measured files' own records (their precision included)
        records = layers[p.model]
        models.append(records if p.model.startswith("host/") else
                      as_precision(records, p.precision))
        seconds.append(p.latency_ms / 1e3)
        names.append(p.model.split(".")[0] if p.model.startswith("host/") else p.model)
    return models, seconds, names


def own_points(device: str) -> int:
    """How many published (or measured) batch-1 points of its own the device is fitted on."""
    return len(_dataset(get_profile(device).name)[0])


def has_own_points(device: str) -> bool:
    """Whether the device's estimates rest on at least MIN_POINTS points of its own."""
    return own_points(device) >= MIN_POINTS


def default_devices() -> list[str]:
    """The profiles a comparison shows unless asked for the unmeasured ones too: those
    calibrated on points of their own (a transferred estimate is shown only on request)."""
    return [n for n in list_profiles() if has_own_points(n)]


def _family(profile: DeviceProfile) -> list[str]:
    """Calibrated devices of the same runtime (the donors of an uncalibrated one)."""
    return [n for n in list_profiles() if n != profile.name
            and get_profile(n).runtime == profile.runtime
            and len(_dataset(n)[0]) >= MIN_POINTS]


@cache
def calibration(device: str) -> Calibration:
    """The device's calibration: its own points, else a transfer from its runtime family."""
    profile = get_profile(device)
    models, seconds, names = _dataset(profile.name)
    if len(models) >= MIN_POINTS:
        measured = names[0].startswith("host/")
        return calibrate(profile, models, seconds,
                         source="measured on the development host" if measured else "published",
                         notes=(f"fitted on {len(models)} points",), groups=names)
    donors = _family(profile)
    if not donors:
        raise InvalidInputError(f"{profile.name}: no published points and no calibrated "
                                f"{profile.runtime} device to borrow from")
    return _transfer(profile, tuple(donors))


def _transfer(profile: DeviceProfile, donors: tuple[str, ...]) -> Calibration:
    """Efficiencies fitted on every donor device's points at once, applied to this profile's
    peaks; residuals from predicting each donor with a fit on the other donors only."""
    fitted = [donor_constants(d) for d in donors]
    # average the donors' constants in log space: the efficiencies are fractions of peaks
    precisions = sorted({p for c in fitted for p in c.compute})
    compute = {p: _geomean([c.compute[p] for c in fitted if p in c.compute])
               for p in precisions}
    constants = type(fitted[0])(
        compute, _geomean([c.depthwise for c in fitted]), _geomean([c.memory for c in fitted]),
        _geomean([c.kernel_s for c in fitted]))
    residuals: list[float] = []
    for held in donors:
        others = [donor_constants(d) for d in donors if d != held]
        if not others:
            continue
        c = type(constants)(
            {p: _geomean([o.compute[p] for o in others if p in o.compute] or [v])
             for p, v in compute.items()},
            _geomean([o.depthwise for o in others]), _geomean([o.memory for o in others]),
            _geomean([o.kernel_s for o in others]))
        held_profile = get_profile(held)
        models, seconds, _ = _dataset(held)
        est = predict_s(held_profile, c, models)
        residuals += [math.log(t / e) for t, e in zip(seconds, est, strict=True)]
    return Calibration(profile.name, constants, 0, tuple(residuals),
                       f"transferred from {', '.join(donors)}",
                       (f"no published points for {profile.name}: efficiencies of "
                        f"{', '.join(donors)} applied to its peaks; interval from "
                        "leave-one-device-out residuals",))


@cache
def donor_constants(device: str) -> Constants:
    """The constants ``calibration(device)`` fits on the device's own points, without its
    leave-one-out refits (a transfer needs the constants only; half the time of a full
    calibration in a one-off timing)."""
    models, seconds, _ = _dataset(device)
    return fit_constants(get_profile(device), models, seconds)


def _geomean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


@dataclass(frozen=True)
class LayerEstimate:
    """A calibrated latency estimate with its interval and what it rests on."""

    device: str
    precision: str
    latency_ms: float
    low_ms: float | None
    high_ms: float | None
    points: int
    source: str
    loo_median_ratio_error: float | None
    kind: str = "estimated"  # "transferred": no points of its own, a donor family's constants

    def text(self) -> str:
        span = (f"{self.low_ms:.3g}–{self.high_ms:.3g}, " if self.low_ms is not None
                else "no interval, ")
        kind = "published" if self.source == "published" else "measured"
        basis = f"from {self.points} {kind} points" if self.points else self.source
        return f"{self.kind} {self.latency_ms:.3g} ms ({span}{basis})"

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision, "kind": self.kind,
                "latency_ms": self.latency_ms, "interval_ms": [self.low_ms, self.high_ms],
                "interval": "10th-90th percentile of leave-one-out ratios",
                "points": self.points, "source": self.source,
                "loo_median_ratio_error": self.loo_median_ratio_error, "text": self.text()}


def estimate(device: str, records: list[LayerRecord]) -> LayerEstimate:
    """Calibrated latency of one batch-1 inference of the graph ``records`` on ``device``."""
    cal = calibration(device)
    profile = get_profile(device)
    seconds = float(predict_s(profile, cal.constants, [records])[0])
    factors = cal.interval_factors()
    ms = seconds * 1e3
    precisions = sorted({run_precision(profile, r.precision) for r in records})
    return LayerEstimate(profile.name, "+".join(precisions), ms,
                         ms * factors[0] if factors else None,
                         ms * factors[1] if factors else None,
                         cal.points, cal.source, cal.loo_median_ratio_error,
                         "estimated" if cal.points else "transferred")


def kernel_latency_s(device: str, records: list[LayerRecord]) -> list[float]:
    """Each kernel's time in ``device``'s calibrated estimate (the model sums per-kernel
    times, so these add up to ``estimate``'s figure for the whole graph)."""
    cal = calibration(device)
    return [float(s) for s in predict_s(get_profile(device), cal.constants,
                                        [[r] for r in records])]


def energy_upper_bound_mj(device: str, latency_ms: float) -> tuple[float, str]:
    """An upper bound on the energy of one inference: the device's highest power mode (its
    budget) times the latency. Not an estimate: no measured power stands behind it."""
    profile = get_profile(device)
    watts = max(profile.power_modes.values(), default=profile.tdp_w)
    return latency_ms * watts, f"<= {watts:g} W power-mode budget x latency (upper bound)"
