"""The power samplers, registered by name here (one line each), and how one is opened.

No sampler module imports a heavy library at load (NVML's binding is imported in
``open()``), so this registry is full after ``import edgekit.devices.power``.
"""

from __future__ import annotations

from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.core.registry import Registry
from edgekit.devices.power.base import PowerSampler, PowerUnavailable
from edgekit.devices.power.external import ExternalMeterSampler
from edgekit.devices.power.jetson import JetsonHwmonSampler, JetsonIna3221xSampler
from edgekit.devices.power.nvml import NvmlSampler
from edgekit.devices.power.rapl import RaplSampler
from edgekit.devices.power.tegrastats import TegrastatsSampler

SAMPLERS: Registry[type[PowerSampler]] = Registry("power sampler")
for _sampler in (JetsonHwmonSampler, JetsonIna3221xSampler, TegrastatsSampler, NvmlSampler,
                 RaplSampler, ExternalMeterSampler):
    SAMPLERS.register(_sampler.name)(_sampler)

# Order tried by "auto": on-board sensors first, then GPU, then CPU package counters.
AUTO_ORDER = ("jetson-hwmon", "jetson-ina3221x", "tegrastats", "nvml", "rapl")
# Where to look on the machine (sysfs root, tool directories): offered to every sampler that
# takes them and silently left out for the others, so one call points them all at a test tree.
LOCATION_OPTIONS = ("sys_root", "tool_dirs")


def make_sampler(name: str, **options: Any) -> PowerSampler:
    """Instantiate a registered sampler; options are its keyword arguments (roots, command)."""
    return SAMPLERS.get(name)(**options)


def open_sampler(name: str, **options: Any) -> PowerSampler:
    """Open ``name`` (or the first working sampler for "auto"); raise PowerUnavailable if none.

    ``sys_root=`` and ``tool_dirs=`` (LOCATION_OPTIONS) reach every sampler that reads sysfs
    or runs a tool; other options are the named sampler's own keyword arguments.
    """
    names = AUTO_ORDER if name == "auto" else (name,)
    reasons = []
    for candidate in names:
        cls = SAMPLERS.get(candidate)
        allowed = getattr(cls, "OPTIONS", ())
        unknown = sorted(set(options) - set(allowed) - set(LOCATION_OPTIONS))
        if unknown and name != "auto":  # "auto" offers each sampler only what it takes
            raise InvalidInputError(f"power sampler {name!r} takes no option {unknown} "
                                    f"(it takes {list(allowed)})")
        if name == "auto":  # a command is only ever meant for an explicitly named sampler
            allowed = tuple(a for a in allowed if a != "command")
        sampler = cls(**{k: v for k, v in options.items() if k in allowed})
        try:
            sampler.open()
            sampler.read_watts()  # a sensor that opens but cannot be read is unavailable too
            return sampler
        except PowerUnavailable as exc:
            sampler.close()
            reasons.append(f"{candidate}: {exc}")
    raise PowerUnavailable("; ".join(reasons))
