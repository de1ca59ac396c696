"""Per-layer latency model of a device, fitted to published measurements of real models.

Each layer is a kernel: it takes the slower of its compute (MACs at an *achievable* rate,
a fitted fraction of the profile's peak for its op kind and precision) and its memory
traffic (weights + activations at a fitted fraction of the profile's bandwidth), plus a
fitted fixed cost per kernel (launch, synchronisation, framework). The model sums the layers.
The constants are fitted per device by least squares on log latency (numpy only, so that
this runs on a board), and every estimate carries an interval from leave-one-out residuals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.core.errors import InvalidInputError
from edgekit.devices.profiles import DeviceProfile

KINDS = ("conv", "depthwise", "matmul", "memory")  # memory: pooling, add, concat, resize, ...
_FALLBACK = {"int8": ("int8", "fp16", "fp32"), "fp16": ("fp16", "fp32"), "fp32": ("fp32",)}
INTERVAL = (0.1, 0.9)  # quantiles of the leave-one-out log residuals: an 80% interval


@dataclass(frozen=True)
class LayerRecord:
    """One kernel of a deployed graph, as the latency model sees it."""

    op: str  # the file's own op name (Conv, DEPTHWISE_CONV_2D, ...)
    kind: str  # one of KINDS
    macs: float
    weight_bytes: float
    activation_bytes: float  # inputs read + outputs written
    precision: str  # fp32, fp16 or int8

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "kind": self.kind, "macs": self.macs,
                "weight_bytes": self.weight_bytes, "activation_bytes": self.activation_bytes,
                "precision": self.precision}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerRecord:
        return cls(str(d["op"]), str(d["kind"]), float(d["macs"]), float(d["weight_bytes"]),
                   float(d["activation_bytes"]), str(d["precision"]))


def run_precision(profile: DeviceProfile, precision: str) -> str:
    """The precision the device runs a layer of ``precision`` in (int8 falls back to fp16
    where the device has no int8 path, as TensorRT does)."""
    for p in _FALLBACK.get(precision, (precision,)):
        if p in profile.peak_ops_s:
            return p
    return "fp32" if "fp32" in profile.peak_ops_s else next(iter(profile.peak_ops_s))


@dataclass(frozen=True)
class Constants:
    """Fitted constants of one device: efficiencies (fractions of the profile's peaks) and
    the fixed cost of one kernel."""

    compute: dict[str, float]  # precision -> fraction of peak for dense conv / matmul
    depthwise: float  # fraction of the dense-conv rate that depthwise convs reach
    memory: float  # fraction of the profile's bandwidth
    kernel_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"compute_efficiency": dict(self.compute), "depthwise_vs_dense": self.depthwise,
                "memory_efficiency": self.memory, "kernel_overhead_us": self.kernel_s * 1e6}


class _Arrays:
    """The layers of several models as flat arrays, to evaluate many models at once."""

    def __init__(self, profile: DeviceProfile, models: list[list[LayerRecord]]) -> None:
        rows = [(i, r) for i, layers in enumerate(models) for r in layers]
        if any(not layers for layers in models):
            raise InvalidInputError("a model with no layers cannot be estimated")
        self.n = len(models)
        self.model = np.array([i for i, _ in rows], dtype=np.int64)
        self.macs = np.array([r.macs for _, r in rows])
        self.bytes = np.array([r.weight_bytes + r.activation_bytes for _, r in rows])
        prec = [run_precision(profile, r.precision) for _, r in rows]
        self.precisions = sorted(set(prec))
        self.prec_idx = np.array([self.precisions.index(p) for p in prec], dtype=np.int64)
        self.peak = np.array([profile.peak_ops_s[p] for p in prec])
        self.dw = np.array([r.kind == "depthwise" for _, r in rows])
        self.mem_only = np.array([r.kind == "memory" for _, r in rows])
        self.bandwidth = profile.memory_bandwidth_bytes_s

    def latency_s(self, c: Constants) -> np.ndarray:
        lowest = min(c.compute.values())
        eff = np.array([c.compute.get(p, lowest) for p in self.precisions])[self.prec_idx]
        eff = np.where(self.dw, eff * c.depthwise, eff)
        compute = np.where(self.mem_only, 0.0, 2.0 * self.macs / (self.peak * eff))
        memory = self.bytes / (self.bandwidth * c.memory)
        per_layer = np.maximum(compute, memory) + c.kernel_s
        return np.bincount(self.model, weights=per_layer, minlength=self.n)


def _unpack(theta: np.ndarray, precisions: list[str]) -> Constants:
    # efficiencies through a logistic (0, 1); the kernel cost through exp (seconds)
    eff = 1.0 / (1.0 + np.exp(-theta))
    k = len(precisions)
    compute = dict(zip(precisions, eff[:k].tolist(), strict=True))
    return Constants(compute, float(eff[k]), float(eff[k + 1]), float(math.exp(theta[k + 2])))


def _nelder_mead(f: Any, x0: np.ndarray, iters: int = 400, step: float = 1.0) -> np.ndarray:
    """A plain Nelder-Mead minimiser (no scipy on boards)."""
    n = len(x0)
    simplex = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        centroid = np.mean(simplex[:-1], axis=0)
        worst = simplex[-1]
        reflected = centroid + (centroid - worst)
        fr = f(reflected)
        if fr < values[0]:
            expanded = centroid + 2.0 * (centroid - worst)
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = centroid + 0.5 * (worst - centroid)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:  # shrink towards the best
                best = simplex[0]
                simplex = [best] + [best + 0.5 * (x - best) for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    return simplex[int(np.argmin(values))]


def _fit(arrays: _Arrays, measured_s: list[float], start: np.ndarray | None = None
         ) -> np.ndarray:
    """Least squares on log latency; ``start``: refine from there (leave-one-out refits)."""
    target = np.log(np.asarray(measured_s, dtype=float))
    precisions = arrays.precisions

    def loss(theta: np.ndarray) -> float:
        pred = arrays.latency_s(_unpack(theta, precisions))
        return float(np.sum((np.log(pred) - target) ** 2))

    if start is not None:
        return _nelder_mead(loss, start, iters=250, step=0.2)
    best, best_loss = np.zeros(len(precisions) + 3), math.inf
    # a few starts: compute-heavy or overhead-heavy devices sit in different basins
    for eff0, kernel0 in ((-1.0, -11.5), (-3.0, -9.0), (-2.0, -13.0)):
        x0 = np.array([eff0] * len(precisions) + [-1.0, 0.0, kernel0])
        x = _nelder_mead(loss, _nelder_mead(loss, x0), step=0.3)
        if (value := loss(x)) < best_loss:
            best, best_loss = x, value
    return best


def fit_constants(profile: DeviceProfile, models: list[list[LayerRecord]],
                  measured_s: list[float]) -> Constants:
    """Least squares on log latency over the published (or measured) points."""
    arrays = _Arrays(profile, models)
    return _unpack(_fit(arrays, measured_s), arrays.precisions)


def predict_s(profile: DeviceProfile, constants: Constants,
              models: list[list[LayerRecord]]) -> np.ndarray:
    return _Arrays(profile, models).latency_s(constants)


@dataclass(frozen=True)
class Calibration:
    """A device's fitted constants, how many points they came from, and their error."""

    device: str
    constants: Constants
    points: int
    loo_log_residuals: tuple[float, ...]  # log(measured / leave-one-out estimate)
    source: str  # "published" or "measured on this host" or "transferred from ..."
    notes: tuple[str, ...] = field(default_factory=tuple)
    # leaving out every point of the held-out point's model (all rounds, all precisions):
    # the error on an architecture the fit has never seen
    loo_model_log_residuals: tuple[float, ...] = ()

    @property
    def loo_model_median_ratio_error(self) -> float | None:
        r = np.abs(np.asarray(self.loo_model_log_residuals))
        return float(np.exp(np.median(r))) if len(r) else None

    @property
    def loo_median_ratio_error(self) -> float | None:
        r = np.abs(np.asarray(self.loo_log_residuals))
        return float(np.exp(np.median(r))) if len(r) else None

    def interval_factors(self) -> tuple[float, float] | None:
        """Multiply an estimate by these to get its interval (None: no residuals)."""
        r = np.asarray(self.loo_log_residuals)
        if len(r) < 3:
            return None
        lo, hi = np.quantile(r, INTERVAL)
        return float(np.exp(min(lo, 0.0))), float(np.exp(max(hi, 0.0)))


def calibrate(profile: DeviceProfile, models: list[list[LayerRecord]],
              measured_s: list[float], *, source: str, notes: tuple[str, ...] = (),
              groups: list[str] | None = None) -> Calibration:
    """Fit on all points; leave-one-out residuals from refits without each point, and
    (with ``groups``, e.g. the model names) without every point of its group."""
    if len(models) != len(measured_s) or not models:
        raise InvalidInputError("calibration needs one measured latency per model")
    arrays = _Arrays(profile, models)
    theta = _fit(arrays, measured_s)
    constants = _unpack(theta, arrays.precisions)

    def held_out(keep: list[int], i: int) -> float:
        rest = _Arrays(profile, [models[j] for j in keep])
        # the held-out point's precision may be missing from the rest: keep the full fit's
        # parameter layout (and start from it) only when it matches
        start = theta if rest.precisions == arrays.precisions else None
        c = _unpack(_fit(rest, [measured_s[j] for j in keep], start), rest.precisions)
        return math.log(measured_s[i] / float(predict_s(profile, c, [models[i]])[0]))

    n = len(models)
    residuals = [held_out([j for j in range(n) if j != i], i) for i in range(n)] \
        if n >= 3 else []
    by_model: list[float] = []
    if groups is not None and len(set(groups)) >= 3:
        by_model = [held_out([j for j in range(n) if groups[j] != groups[i]], i)
                    for i in range(n)]
    return Calibration(profile.name, constants, n, tuple(residuals), source, notes,
                       tuple(by_model))
