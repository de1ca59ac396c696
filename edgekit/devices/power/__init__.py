"""Power samplers (``registry``: one per sensor kind) and the energy-per-inference arithmetic."""

from edgekit.devices.power.base import (
    PowerMonitor,
    PowerSampler,
    PowerUnavailable,
    summarize_energy,
    unavailable,
)
from edgekit.devices.power.registry import SAMPLERS, make_sampler, open_sampler

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
