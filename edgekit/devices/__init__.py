"""Device profiles (spec-sheet figures), roofline estimates, power samplers, machine state."""

from edgekit.devices.profiles import DeviceProfile, get_profile, list_profiles
from edgekit.devices.roofline import Estimate, estimate_latency

__all__ = ["DeviceProfile", "Estimate", "estimate_latency", "get_profile", "list_profiles"]
