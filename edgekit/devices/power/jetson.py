"""Jetson on-module INA3221 power monitors read through sysfs (two kernel layouts).

JetPack 5/6 (upstream ``ina3221`` hwmon driver), e.g. Orin Nano, AGX Orin, Xavier NX on JP5::

    /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/in1_label    VDD_IN
    /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/in1_input    5048   (bus voltage, mV)
    /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/curr1_input  1056   (current, mA)

JetPack 4 (NVIDIA's ``ina3221x`` IIO driver), e.g. Nano, Xavier NX and TX2 on JP4::

    /sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_0       POM_5V_IN
    /sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input   2132   (mW)
    /sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_current0_input (mA), in_voltage0_input (mV)

Total board power is the input rail (VDD_IN / POM_5V_IN) where the module has one; AGX
Orin has none, so its rails are summed (and the result says so).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from edgekit.devices.power.base import PowerSampler, PowerUnavailable, read_number

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
# Labels of unconnected channels or of derived sums that must not be added again.
IGNORED_RAILS = ("NC", "SUM_OF_SHUNT")


class _RailSampler(PowerSampler):
    OPTIONS: ClassVar[tuple[str, ...]] = ("root", "sys_root")
    driver_dir: ClassVar[str] = ""  # under the sysfs root

    def __init__(self, root: str | Path | None = None, *, sys_root: str | Path = "/sys") -> None:
        """``root``: the driver folder itself; else ``sys_root``/``driver_dir``."""
        self.root = Path(root) if root else Path(sys_root) / self.driver_dir
        self.rails: dict[str, Any] = {}  # rail name -> how to read it
        self.mode = ""

    def _discover(self) -> dict[str, Any]:
        raise NotImplementedError

    def _rail_mw(self, how: Any) -> float:
        raise NotImplementedError

    def open(self) -> None:
        if not self.root.is_dir():
            raise PowerUnavailable(f"{self.root} does not exist (no INA3221 driver loaded)")
        rails = self._discover()
        if not rails:
            raise PowerUnavailable(f"no labelled INA3221 rails under {self.root}")
        inputs = [r for r in INPUT_RAILS if r in rails]
        if inputs:
            self.rails, self.mode = {inputs[0]: rails[inputs[0]]}, f"input rail {inputs[0]}"
        else:
            self.rails, self.mode = rails, "sum of rails " + "+".join(sorted(rails))

    def read_watts(self) -> float:
        return sum(self._rail_mw(how) for how in self.rails.values()) / 1e3

    def read_rails_w(self) -> dict[str, float]:
        """Every discovered rail in watts (for the record, not used for energy)."""
        return {name: self._rail_mw(how) / 1e3 for name, how in self._discover().items()}

    def describe(self) -> dict[str, Any]:
        return {"sampler": self.name, "root": str(self.root), "rails": self.mode}


class JetsonHwmonSampler(_RailSampler):
    """INA3221 through the upstream hwmon driver (JetPack 5 and 6)."""

    name = "jetson-hwmon"
    driver_dir = "bus/i2c/drivers/ina3221"
    _label = re.compile(r"in(\d+)_label$")

    def _discover(self) -> dict[str, Any]:
        rails: dict[str, Any] = {}
        for label_file in sorted(self.root.glob("*/hwmon/hwmon*/in*_label")):
            match = self._label.search(label_file.name)
            if not match:
                continue
            name = label_file.read_text().strip()
            channel = match.group(1)
            folder = label_file.parent
            current = folder / f"curr{channel}_input"
            if not name or name.upper().startswith(IGNORED_RAILS) or not current.exists():
                continue
            rails[name] = (folder / f"in{channel}_input", current)
        return rails

    def _rail_mw(self, how: Any) -> float:
        volts_file, amps_file = how
        return read_number(volts_file) * read_number(amps_file) / 1e3  # mV * mA -> mW


class JetsonIna3221xSampler(_RailSampler):
    """INA3221 through NVIDIA's older IIO driver (JetPack 4: Nano, TX2, Xavier)."""

    name = "jetson-ina3221x"
    driver_dir = "bus/i2c/drivers/ina3221x"
    _rail = re.compile(r"rail_name_(\d+)$")

    def _discover(self) -> dict[str, Any]:
        rails: dict[str, Any] = {}
        for name_file in sorted(self.root.glob("*/iio:device*/rail_name_*")):
            match = self._rail.search(name_file.name)
            if not match:
                continue
            name = name_file.read_text().strip()
            power = name_file.parent / f"in_power{match.group(1)}_input"
            if name and not name.upper().startswith(IGNORED_RAILS) and power.exists():
                rails[name] = power
        return rails

    def _rail_mw(self, how: Any) -> float:
        return read_number(how)
