"""Roofline latency bound from a device profile: a labelled lower bound, never a measurement
and not an estimate of what a user will see (``edgekit.devices.calibrated`` estimates)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.devices.profiles import DeviceProfile


@dataclass(frozen=True)
class RooflineBound:
    """A roofline lower bound on latency (what the device's peaks allow, not what a model
    reaches); ``kind`` says so wherever it is printed."""

    device: str
    precision: str
    latency_s: float
    compute_s: float
    memory_s: float
    bound: str  # "compute" or "memory"
    kind: str = "lower bound"
    method: str = "roofline lower bound: max(2*MACs/peak_ops, bytes/bandwidth)"

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1e3

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "latency_ms": self.latency_ms}


def roofline_bound(
    profile: DeviceProfile, macs: float, bytes_moved: float, precision: str
) -> RooflineBound:
    """Roofline bound of one inference: the slower of compute and memory traffic.

    A lower bound: real kernels reach a fraction of the peak, so measured latency is higher.
    """
    if macs < 0 or bytes_moved < 0:
        raise InvalidInputError("macs and bytes_moved must be non-negative")
    if precision not in profile.peak_ops_s:
        raise InvalidInputError(
            f"{profile.name} has no {precision!r} peak; it supports {list(profile.peak_ops_s)}"
        )
    compute_s = 2.0 * macs / profile.peak_ops_s[precision]
    memory_s = bytes_moved / profile.memory_bandwidth_bytes_s
    bound = "compute" if compute_s >= memory_s else "memory"
    return RooflineBound(
        device=profile.name,
        precision=precision,
        latency_s=max(compute_s, memory_s),
        compute_s=compute_s,
        memory_s=memory_s,
        bound=bound,
    )
