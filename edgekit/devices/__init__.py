"""Device profiles (spec-sheet figures), roofline bounds, power samplers, machine state; the
calibrated per-layer estimates are in ``edgekit.devices.calibrated``."""

from edgekit.devices.profiles import DeviceProfile, get_profile, list_profiles
from edgekit.devices.roofline import RooflineBound, roofline_bound

__all__ = ["DeviceProfile", "RooflineBound", "get_profile", "list_profiles", "roofline_bound"]
