"""NVIDIA GPU power through NVML (nvidia-ml-py, imported lazily).

Uses the board's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since
driver load, Volta and newer) where the GPU supports it, else instantaneous power
(``nvmlDeviceGetPowerUsage``, mW). Written against the real API; unverified on this
machine, which has no GPU (the result says "unavailable").
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, ClassVar

from edgekit.devices.power.base import PowerSampler, PowerUnavailable


class NvmlSampler(PowerSampler):
    name = "nvml"
    OPTIONS: ClassVar[tuple[str, ...]] = ("device_index",)

    def __init__(self, device_index: int = 0) -> None:
        self.device_index = device_index
        self._nvml: Any = None
        self._handle: Any = None
        self.has_counter = False
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None  # (time, energy J) for differencing

    def open(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise PowerUnavailable(
                "nvidia-ml-py is not installed (pip install 'edgekit[nvml]')"
            ) from None
        try:
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
        except pynvml.NVMLError as exc:
            raise PowerUnavailable(f"NVML: {exc}") from None
        self._nvml = pynvml
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            self.has_counter = True
        except pynvml.NVMLError:
            self.has_counter = False

    def read_energy_j(self) -> float | None:
        if not self.has_counter:
            return None
        with self._lock:
            try:
                return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3
            except self._nvml.NVMLError as exc:
                raise PowerUnavailable(f"NVML energy counter: {exc}") from None

    def read_watts(self) -> float:
        if self._nvml is None:
            raise PowerUnavailable("NVML sampler is not open")
        if self.has_counter:
            # The counter updates more often than the power field averages; difference it.
            now, energy = time.perf_counter(), self.read_energy_j()
            assert energy is not None
            last, self._last = self._last, (now, energy)
            if last is not None and now > last[0] and energy > last[1]:
                return (energy - last[1]) / (now - last[0])
        try:
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3
        except self._nvml.NVMLError as exc:
            raise PowerUnavailable(f"NVML power: {exc}") from None

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
            self._nvml = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"sampler": self.name, "device_index": self.device_index,
                                "energy_counter": self.has_counter}
        if self._nvml is not None:
            try:
                info["gpu"] = str(self._nvml.nvmlDeviceGetName(self._handle))
                info["driver"] = str(self._nvml.nvmlSystemGetDriverVersion())
            except self._nvml.NVMLError:
                pass
        return info
