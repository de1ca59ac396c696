"""Power samplers (plug-ins) and the energy-per-inference arithmetic."""

from edgekit.devices.power.base import (
    SAMPLERS,
    PowerMonitor,
    PowerSampler,
    PowerUnavailable,
    make_sampler,
    open_sampler,
    summarize_energy,
    unavailable,
)

__all__ = [
    "SAMPLERS",
    "PowerMonitor",
    "PowerSampler",
    "PowerUnavailable",
    "make_sampler",
    "open_sampler",
    "summarize_energy",
    "unavailable",
]
