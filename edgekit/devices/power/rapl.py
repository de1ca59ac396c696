"""Intel/AMD RAPL package energy through powercap sysfs, with counter wrap-around."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from edgekit.devices.power.base import PowerSampler, PowerUnavailable, read_number

# Top-level package zones only ("intel-rapl:0"); sub-zones ("intel-rapl:0:0", core/uncore)
# are already contained in their package and would be counted twice.
_PACKAGE = re.compile(r"^(intel|amd)-rapl:\d+$")


class RaplSampler(PowerSampler):
    """Sum of package ``energy_uj`` counters; power is the counter difference over time."""

    name = "rapl"
    OPTIONS: ClassVar[tuple[str, ...]] = ("root", "sys_root")

    def __init__(self, root: str | Path | None = None, *, sys_root: str | Path = "/sys") -> None:
        """``root``: the powercap folder itself; else ``sys_root``/class/powercap."""
        self.root = Path(root) if root else Path(sys_root) / "class/powercap"
        self.zones: list[tuple[Path, float]] = []  # (energy_uj file, max_energy_range_uj)
        self._last: list[float] = []
        self._total_uj = 0.0
        self._last_time = 0.0
        self._last_energy_j = 0.0
        self._lock = threading.Lock()  # the poll thread and the timing loop both read

    def open(self) -> None:
        if not self.root.is_dir():
            raise PowerUnavailable(f"{self.root} does not exist (no RAPL powercap interface)")
        zones = sorted(p for p in self.root.iterdir() if _PACKAGE.match(p.name))
        if not zones:
            raise PowerUnavailable(f"no RAPL package zones under {self.root}")
        self.zones = [(z / "energy_uj", read_number(z / "max_energy_range_uj")) for z in zones]
        self._last = [read_number(f) for f, _ in self.zones]
        self._last_time = time.perf_counter()

    def read_energy_j(self) -> float:
        """Energy since open(), in joules; each counter may wrap once between reads."""
        with self._lock:
            return self._accumulate()

    def _accumulate(self) -> float:
        for i, (path, max_range) in enumerate(self.zones):
            now = read_number(path)
            delta = now - self._last[i]
            if delta < 0:  # wrapped past max_energy_range_uj
                delta += max_range
            self._total_uj += delta
            self._last[i] = now
        return self._total_uj / 1e6

    def read_watts(self) -> float:
        energy = self.read_energy_j()  # called from the poll thread only
        now = time.perf_counter()
        elapsed = now - self._last_time
        watts = (energy - self._last_energy_j) / elapsed if elapsed > 0 else 0.0
        self._last_time, self._last_energy_j = now, energy
        return watts

    def describe(self) -> dict[str, Any]:
        return {"sampler": self.name, "zones": [str(p.parent.name) for p, _ in self.zones]}
