"""The timing protocol: warm up until steady, time N single runs, summarize robustly."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from edgekit.core.console import console
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


def time_runs(run: Callable[[], None], n: int, *, progress: bool = False) -> np.ndarray:
    """Nanoseconds of ``n`` consecutive calls, each timed on its own.

    ``progress``: a line with an ETA on the console while it runs, if that is a terminal.
    """
    bar = Progress.open("timing", n) if progress else None
    try:
        return _time_runs(run, n, bar)
    finally:
        if bar is not None:
            bar.close()


def _time_runs(run: Callable[[], None], n: int, bar: Progress | None) -> np.ndarray:
    samples = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        run()
        samples[i] = clock() - start
        if bar is not None:  # after the span is closed: drawing is never measured
            bar.step()
    return samples


def warm_up(
    run: Callable[[], None], cfg: TimingConfig, *, progress: bool = False
) -> dict[str, Any]:
    """Run until steady (or a fixed count); report how many runs it took and whether it settled."""
    if cfg.warmup is not None:
        time_runs(run, cfg.warmup, progress=progress)
        return {"runs": cfg.warmup, "mode": "fixed", "steady": None}
    # Until steady, the ETA is an upper bound: max_warmup runs or max_warmup_s, if sooner.
    bar = Progress.open("warm-up", cfg.max_warmup, limit_s=cfg.max_warmup_s) if progress else None
    deadline = time.perf_counter() + cfg.max_warmup_s
    previous = None
    done = 0
    try:
        while done < cfg.max_warmup and time.perf_counter() < deadline:
            median = float(np.median(_time_runs(run, cfg.steady_window, bar)))
            done += cfg.steady_window
            if previous is not None and abs(median - previous) <= cfg.steady_tolerance * previous:
                return {"runs": done, "mode": "until steady", "steady": True}
            previous = median
        return {"runs": done, "mode": "until steady", "steady": False}
    finally:
        if bar is not None:
            bar.close()


class Progress:
    """One self-overwriting line on a terminal: runs done, of how many, and the time left.

    ``open`` gives None unless ``console()`` is a terminal, so piped or captured output (the
    CLI's JSON on stdout, logs) gets nothing extra and the timed loop does no extra work.
    Redrawn at most 4 times a second (the first run draws at once, so even a short loop
    shows its ETA); ``close`` erases the line.
    """

    interval_s = 0.25

    def __init__(self, stream: TextIO, label: str, total: int, limit_s: float | None) -> None:
        self.stream, self.label, self.total, self.limit_s = stream, label, total, limit_s
        self.done, self.start, self.next_draw, self.drawn = 0, time.monotonic(), 0.0, False

    @classmethod
    def open(cls, label: str, total: int, *, limit_s: float | None = None) -> Progress | None:
        stream = console()
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            tty = False
        return cls(stream, label, total, limit_s) if tty else None

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now < self.next_draw:
            return
        self.next_draw = now + self.interval_s
        elapsed = now - self.start
        left = elapsed / self.done * (self.total - self.done)
        eta = f"ETA {_duration(left)}"
        if self.limit_s is not None:  # stops when steady, so this is only a bound
            eta = f"ETA <= {_duration(min(left, max(0.0, self.limit_s - elapsed)))}"
        self.stream.write(f"\r\x1b[K{self.label}: {self.done}/{self.total} runs, {eta}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60}:{seconds % 60:02d} min"


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
