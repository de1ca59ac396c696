"""Power sampler plug-ins and the energy arithmetic shared by all of them.

A sampler reads one number, total power in watts, from one sensor. ``PowerMonitor`` polls
it in a background thread and timestamps each sample with the same clock the timing loop
uses (``perf_counter_ns``), so samples can be cut to exactly the timed window. A sensor that
is missing or unreadable raises ``PowerUnavailable`` with the reason; the benchmark then
reports "power: unavailable (reason)" and never a number.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class PowerUnavailable(Exception):
    """The sensor cannot be read here; ``str(exc)`` says why (shown to the user)."""


class PowerSampler:
    """Base of every sampler. Subclasses set ``name`` and implement ``read_watts``."""

    name: ClassVar[str] = "base"
    #: True when the sampler produces its own timestamped samples (e.g. a tegrastats pipe).
    streaming: ClassVar[bool] = False

    def open(self) -> None:
        """Find the sensor; raise PowerUnavailable(reason) when there is none."""

    def read_watts(self) -> float:
        raise NotImplementedError

    def read_energy_j(self) -> float | None:
        """A monotonically increasing energy counter in joules, when the sensor has one."""
        return None

    def drain(self) -> list[tuple[int, float]]:
        """Streaming samplers: the (perf_counter_ns, watts) samples gathered so far."""
        return []

    def close(self) -> None:
        """Release the sensor (stop a child process, shut down a library)."""

    def describe(self) -> dict[str, Any]:
        return {"sampler": self.name}


def read_number(path: Path) -> float:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise PowerUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return float(text)
    except ValueError:
        raise PowerUnavailable(f"{path} holds {text[:40]!r}, not a number") from None


class PowerMonitor:
    """Poll a sampler in a daemon thread; samples carry perf_counter_ns timestamps."""

    def __init__(self, sampler: PowerSampler, interval_s: float = 0.01) -> None:
        self.sampler = sampler
        self.interval_s = interval_s
        self.samples: list[tuple[int, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PowerMonitor:
        if not self.sampler.streaming:
            self._thread = threading.Thread(target=self._poll, name="edgekit-power", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.sampler.streaming:
            self.samples.extend(self.sampler.drain())

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                watts = self.sampler.read_watts()
                self.samples.append((time.perf_counter_ns(), watts))
            except PowerUnavailable as exc:
                self.errors.append(str(exc))
                return
            self._stop.wait(self.interval_s)

    def window(self, start_ns: int, end_ns: int) -> np.ndarray:
        """Watts sampled inside [start_ns, end_ns]."""
        if self.sampler.streaming:
            self.samples.extend(self.sampler.drain())
        return np.array([w for t, w in self.samples if start_ns <= t <= end_ns], dtype=float)


def summarize_energy(
    idle_w: np.ndarray,
    load_w: np.ndarray,
    *,
    idle_s: float,
    load_s: float,
    inferences: int,
    idle_energy_j: float | None = None,
    load_energy_j: float | None = None,
) -> dict[str, Any]:
    """Energy per inference above the idle baseline, with a one-sigma uncertainty.

    Power is averaged over each window (or taken from the energy counter when the sensor
    has one); the uncertainty is the standard error of the two means, combined in
    quadrature and scaled to one inference. Samples are treated as independent.
    """
    if len(idle_w) < 2 or len(load_w) < 2:
        raise PowerUnavailable(
            f"too few power samples (idle {len(idle_w)}, load {len(load_w)}) for the windows "
            f"(idle {idle_s:.2f} s, load {load_s:.2f} s); lengthen --energy-seconds"
        )
    if inferences <= 0 or load_s <= 0 or idle_s <= 0:
        raise PowerUnavailable("empty measurement window")
    idle_mean = idle_energy_j / idle_s if idle_energy_j is not None else float(np.mean(idle_w))
    load_mean = load_energy_j / load_s if load_energy_j is not None else float(np.mean(load_w))
    idle_se = float(np.std(idle_w, ddof=1) / math.sqrt(len(idle_w)))
    load_se = float(np.std(load_w, ddof=1) / math.sqrt(len(load_w)))
    per_inference_s = load_s / inferences
    net_w = load_mean - idle_mean
    return {
        "available": True,
        "idle_w": idle_mean,
        "idle_w_std": float(np.std(idle_w, ddof=1)),
        "load_w": load_mean,
        "load_w_std": float(np.std(load_w, ddof=1)),
        "net_w": net_w,
        "energy_per_inference_mj": net_w * per_inference_s * 1e3,
        "energy_per_inference_mj_uncertainty": math.hypot(idle_se, load_se) * per_inference_s * 1e3,
        "gross_energy_per_inference_mj": load_mean * per_inference_s * 1e3,
        "idle_seconds": idle_s,
        "load_seconds": load_s,
        "load_inferences": inferences,
        "idle_samples": len(idle_w),
        "load_samples": len(load_w),
        "sample_rate_hz": len(load_w) / load_s,
        "energy_source": "counter" if load_energy_j is not None else "power samples",
    }


def unavailable(reason: str) -> dict[str, Any]:
    """The result entry for a sensor that could not be read: a reason, never a number."""
    return {"available": False, "reason": reason}
