"""The timing protocol: statistics, bootstrap CI, warm-up until steady."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.bench.timing import TimingConfig, bootstrap_median_ci, summarize, warm_up
from edgekit.core.errors import InvalidInputError


def test_summary_statistics_are_those_of_the_samples():
    ns = np.arange(1, 101, dtype=np.int64) * 1_000_000  # 1..100 ms
    out = summarize(ns, TimingConfig())
    assert out["p50"] == pytest.approx(50.5)
    assert out["p90"] == pytest.approx(np.percentile(np.arange(1, 101), 90))
    assert out["mean"] == pytest.approx(50.5) and out["min"] == 1 and out["max"] == 100
    low, high = out["median_ci95"]
    assert low < 50.5 < high
    assert out["samples"][:3] == [1.0, 2.0, 3.0]


def test_bootstrap_is_seeded_and_narrows_with_more_samples():
    rng = np.random.default_rng(0)
    small, large = rng.normal(10, 1, 30), rng.normal(10, 1, 3000)
    assert bootstrap_median_ci(small, seed=3) == bootstrap_median_ci(small, seed=3)
    w_small = np.diff(bootstrap_median_ci(small))[0]
    w_large = np.diff(bootstrap_median_ci(large, resamples=500))[0]
    assert w_large < w_small / 3


class WarmingUp:
    """A stand-in 'inference' whose extra cost decays geometrically, like caches warming."""

    def __init__(self, extra: float) -> None:
        self.calls, self.extra = 0, extra

    def __call__(self) -> None:
        self.calls += 1
        sum(range(20_000 + int(self.extra * 0.8**self.calls)))


def test_warm_up_runs_until_the_median_settles():
    run = WarmingUp(extra=400_000)
    info = warm_up(run, TimingConfig(steady_window=5, steady_tolerance=0.3, max_warmup_s=30))
    assert info["mode"] == "until steady" and info["steady"] is True
    # Window medians differ by > 30% while the extra cost exceeds ~14k: the first ~15 calls.
    assert info["runs"] >= 15 and info["runs"] == run.calls


def test_fixed_warm_up_and_bad_configs():
    run = WarmingUp(0)
    assert warm_up(run, TimingConfig(warmup=7))["runs"] == 7 and run.calls == 7
    with pytest.raises(InvalidInputError):
        TimingConfig(runs=1)
    with pytest.raises(InvalidInputError):
        TimingConfig(warmup=-1)
