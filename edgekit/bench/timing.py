"""The timing protocol: warm up until steady, time N single runs, summarize robustly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.core.errors import InvalidInputError


@dataclass(frozen=True)
class TimingConfig:
    """How long to warm up and how many runs to time.

    ``warmup=None`` warms up in windows of ``steady_window`` runs until the median of one
    window is within ``steady_tolerance`` of the previous one (caches, JIT, clocks settled),
    or until ``max_warmup`` runs / ``max_warmup_s`` seconds have passed.
    """

    runs: int = 100
    warmup: int | None = None
    max_warmup: int = 500
    max_warmup_s: float = 20.0
    steady_window: int = 10
    steady_tolerance: float = 0.05
    bootstrap: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.runs < 2:
            raise InvalidInputError("at least 2 timed runs are needed for percentiles")
        if self.warmup is not None and self.warmup < 0:
            raise InvalidInputError("warm-up count must be >= 0")
        if self.steady_window < 2 or self.steady_tolerance <= 0:
            raise InvalidInputError("steady_window must be >= 2 and steady_tolerance > 0")


def time_once(run: Callable[[], None]) -> int:
    start = time.perf_counter_ns()
    run()
    return time.perf_counter_ns() - start


def time_runs(run: Callable[[], None], n: int) -> np.ndarray:
    """Nanoseconds of ``n`` consecutive calls, each timed on its own."""
    samples = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        run()
        samples[i] = clock() - start
    return samples


def warm_up(run: Callable[[], None], cfg: TimingConfig) -> dict[str, Any]:
    """Run until steady (or a fixed count); report how many runs it took and whether it settled."""
    if cfg.warmup is not None:
        time_runs(run, cfg.warmup)
        return {"runs": cfg.warmup, "mode": "fixed", "steady": None}
    deadline = time.perf_counter() + cfg.max_warmup_s
    previous = None
    done = 0
    while done < cfg.max_warmup and time.perf_counter() < deadline:
        median = float(np.median(time_runs(run, cfg.steady_window)))
        done += cfg.steady_window
        if previous is not None and abs(median - previous) <= cfg.steady_tolerance * previous:
            return {"runs": done, "mode": "until steady", "steady": True}
        previous = median
    return {"runs": done, "mode": "until steady", "steady": False}


def bootstrap_median_ci(
    samples: np.ndarray, *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the median (seeded, so reproducible)."""
    rng = np.random.default_rng(seed)
    data = np.asarray(samples, dtype=float)
    medians = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(len(data), 1))  # bound memory for long runs
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, len(data), size=(stop - start, len(data)))
        medians[start:stop] = np.median(data[idx], axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def summarize(samples_ns: np.ndarray, cfg: TimingConfig) -> dict[str, Any]:
    """Percentiles, mean, std and the median's bootstrap CI, in milliseconds."""
    ms = np.asarray(samples_ns, dtype=float) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    low, high = bootstrap_median_ci(ms, resamples=cfg.bootstrap, seed=cfg.seed)
    return {
        "p50": float(p50), "p90": float(p90), "p99": float(p99),
        "mean": float(ms.mean()), "std": float(ms.std(ddof=1)),
        "min": float(ms.min()), "max": float(ms.max()),
        "median_ci95": [low, high],
        "runs": len(ms),
        "samples": [round(float(v), 6) for v in ms],
    }
