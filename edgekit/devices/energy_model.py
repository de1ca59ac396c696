"""Energy per inference from measured power: idle + dynamic power at the achieved utilisation.

The points (``published/power/<device>.toml``, written by benchmarks/mlperf_power.py) are
MLPerf Inference SingleStream runs with their wall power sampled every second: per run the
mean power during the timed window, the idle draw before it and the mean latency. The model:

    power  = idle + dynamic x utilisation,   utilisation = 2·MACs / (latency · peak ops)
    energy = power x latency = idle x latency + dynamic x 2·MACs / peak ops

``dynamic`` is fitted per device by least squares on (power - idle) over its runs; the idle
used for a prediction is the median of the runs' idle draws (they vary between rounds and
set-ups: the prediction error counts that). Leave-one-out: each run predicted by a fit on
the others, from its own latency and MACs, with the others' idle median.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from edgekit.core.errors import DataError
from edgekit.devices.calibrated import as_precision, published_layers
from edgekit.devices.latency_model import INTERVAL, LayerRecord, run_precision
from edgekit.devices.profiles import get_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MIN_ENERGY_POINTS = 3  # fewer: no power model (an energy figure needs an error to go with it)


@dataclass(frozen=True)
class PowerRun:
    model: str
    precision: str
    latency_s: float
    mean_w: float
    idle_w: float
    power_mode: str
    source: str


@cache
def power_runs(device: str) -> tuple[PowerRun, ...]:
    entry = resources.files("edgekit.devices").joinpath("published").joinpath("power").joinpath(
        f"{device}.toml")
    if not entry.is_file():
        return ()
    data = tomllib.loads(entry.read_text("utf-8"))
    try:
        return tuple(PowerRun(p["model"], p["precision"], float(p["latency_ms"]) / 1e3,
                              float(p["mean_w"]),
                              float(p["idle_w"]), p["power_mode"], p["source"])
                     for p in data.get("energy", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"published/power/{device}.toml: bad point field {exc}") from None


def _busy_s(device: str, records: list[LayerRecord]) -> float:
    """2·MACs / peak ops at the precision the device runs the layers in (the seconds the
    device would be busy at full utilisation)."""
    profile = get_profile(device)
    return sum(2.0 * r.macs / profile.peak_ops_s[run_precision(profile, r.precision)]
               for r in records)


@dataclass(frozen=True)
class PowerModel:
    device: str
    idle_w: float
    dynamic_w: float
    points: int
    power_mode: str
    loo_log_residuals: tuple[float, ...]  # log(measured / leave-one-out estimate) of energy

    @property
    def loo_median_ratio_error(self) -> float:
        return float(np.exp(np.median(np.abs(self.loo_log_residuals))))

    def interval_factors(self) -> tuple[float, float]:
        lo, hi = np.quantile(np.asarray(self.loo_log_residuals), INTERVAL)
        return float(np.exp(min(lo, 0.0))), float(np.exp(max(hi, 0.0)))

    def energy_j(self, latency_s: float, busy_s: float) -> float:
        return self.idle_w * latency_s + self.dynamic_w * min(busy_s, latency_s)

    def basis(self) -> str:
        return (f"idle {self.idle_w:.3g} W + {self.dynamic_w:.3g} W x utilisation, fitted on "
                f"{self.points} {self.power_mode} runs, wall power of the whole system (MLPerf; "
                f"leave-one-out "
                f"{self.loo_median_ratio_error:.2f}x)")


def _fit_dynamic(u: np.ndarray, above_idle_w: np.ndarray) -> float:
    return max(float(np.sum(u * above_idle_w) / np.sum(u * u)), 0.0)


@cache
def power_model(device: str) -> PowerModel | None:
    """The device's fitted power model, or None with fewer than MIN_ENERGY_POINTS runs."""
    layers = published_layers()
    runs = [r for r in power_runs(device) if r.model in layers]
    if len(runs) < MIN_ENERGY_POINTS:
        return None
    busy = np.array([_busy_s(device, as_precision(layers[r.model], r.precision))
                     for r in runs])
    modes = sorted({r.power_mode.split(" ")[0] for r in runs})
    return fit_power(device, "/".join(modes), busy, np.array([r.latency_s for r in runs]),
                     np.array([r.mean_w for r in runs]), np.array([r.idle_w for r in runs]))


def fit_power(device: str, power_mode: str, busy_s: np.ndarray, latency_s: np.ndarray,
              mean_w: np.ndarray, idle_w: np.ndarray) -> PowerModel:
    """Fit ``dynamic`` on all runs; leave-one-out residuals of each run's energy."""
    u = np.minimum(busy_s / latency_s, 1.0)
    residuals = []
    for i in range(len(u)):
        keep = np.arange(len(u)) != i
        dyn = _fit_dynamic(u[keep], mean_w[keep] - idle_w[keep])
        predicted = (float(np.median(idle_w[keep])) + dyn * u[i]) * latency_s[i]
        residuals.append(math.log(mean_w[i] * latency_s[i] / predicted))
    return PowerModel(device, float(np.median(idle_w)), _fit_dynamic(u, mean_w - idle_w),
                      len(u), power_mode, tuple(residuals))


def energy_estimate_mj(device: str, records: list[LayerRecord], latency_ms: float
                       ) -> tuple[float, tuple[float, float], PowerModel] | None:
    """Energy of one inference of ``records`` taking ``latency_ms`` on ``device``, with the
    power model's own interval factors (None where the device has no power model)."""
    model = power_model(device)
    if model is None:
        return None
    return (model.energy_j(latency_ms / 1e3, _busy_s(device, records)) * 1e3,
            model.interval_factors(), model)
