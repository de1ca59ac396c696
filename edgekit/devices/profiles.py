"""Device profiles: public spec-sheet figures for the boards edgekit targets (TOML package data)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from edgekit.core.errors import InvalidInputError, UnknownNameError
from edgekit.core.registry import close_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

RUNTIMES = ("tensorrt", "tflite", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class DeviceProfile:
    """What a device can do, from its spec sheet; the source URL is in the TOML file."""

    name: str
    description: str
    runtime: str
    precisions: tuple[str, ...]
    peak_ops_s: dict[str, float]
    memory_bandwidth_bytes_s: float
    power_sensor: str
    tdp_w: float
    power_modes: dict[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # the runtime has 2:4 sparse kernels here (TensorRT on Ampere+ GPUs and Jetson Orin)
    sparse_24: bool = False
    arch: str = ""  # platform.machine() of the device's CPU ("aarch64", "x86_64")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "<dict>") -> DeviceProfile:
        try:
            profile = cls(
                name=str(data["name"]),
                description=str(data.get("description", "")),
                runtime=str(data["runtime"]),
                precisions=tuple(data["precisions"]),
                peak_ops_s={k: float(v) for k, v in data["peak_ops_s"].items()},
                memory_bandwidth_bytes_s=float(data["memory_bandwidth_bytes_s"]),
                power_sensor=str(data["power_sensor"]),
                tdp_w=float(data["tdp_w"]),
                power_modes={k: float(v) for k, v in data.get("power_modes", {}).items()},
                aliases=tuple(data.get("aliases", ())),
                sparse_24=bool(data.get("sparse_24", False)),
                arch=str(data.get("arch", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"device profile {origin}: bad field {exc}") from None
        profile._check(origin)
        return profile

    def _check(self, origin: str) -> None:
        if self.runtime not in RUNTIMES:
            raise InvalidInputError(f"device profile {origin}: runtime must be one of {RUNTIMES}")
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        missing = [p for p in self.precisions if p not in self.peak_ops_s]
        if unknown or missing:
            raise InvalidInputError(
                f"device profile {origin}: unknown precisions {unknown} or no peak for {missing}"
            )
        if self.memory_bandwidth_bytes_s <= 0 or any(v <= 0 for v in self.peak_ops_s.values()):
            raise InvalidInputError(f"device profile {origin}: peaks must be positive")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "runtime": self.runtime,
            "precisions": list(self.precisions),
            "peak_ops_s": dict(self.peak_ops_s),
            "memory_bandwidth_bytes_s": self.memory_bandwidth_bytes_s,
            "power_sensor": self.power_sensor,
            "tdp_w": self.tdp_w,
            "power_modes": dict(self.power_modes),
            "aliases": list(self.aliases),
            "sparse_24": self.sparse_24,
            "arch": self.arch,
        }


@lru_cache(maxsize=1)
def _load_all() -> dict[str, DeviceProfile]:
    profiles: dict[str, DeviceProfile] = {}
    folder = resources.files("edgekit.devices").joinpath("profiles")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        data = tomllib.loads(entry.read_text("utf-8"))
        profile = DeviceProfile.from_dict(data, origin=entry.name)
        profiles[profile.name] = profile
    return profiles


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for profile in _load_all().values():
        for alias in profile.aliases:
            if alias in table or alias in _load_all():
                raise InvalidInputError(f"device alias {alias!r} is used twice")
            table[alias] = profile.name
    return table


def list_profiles() -> list[str]:
    """Names of all shipped device profiles (aliases not included)."""
    return sorted(_load_all())


def get_profile(name: str) -> DeviceProfile:
    """The profile called ``name`` or one of its aliases (``jetson``, ``rpi``, ``desktop-gpu``)."""
    profiles, aliases = _load_all(), _aliases()
    key = name.strip().lower()
    key = aliases.get(key, key)
    if key in profiles:
        return profiles[key]
    close: dict[str, str] = {}  # profile -> its closest spelling; an alias names its profile
    for c in close_names(key, [*profiles, *aliases]):
        close.setdefault(aliases.get(c, c), c if c in profiles else f"{c} ({aliases[c]})")
    hint = f"; did you mean: {', '.join(close.values())}?" if close else ""
    raise UnknownNameError(
        f"unknown device profile {name!r}{hint} (list them with `edgekit devices`)"
    )
