"""Directory trees in the real sysfs layouts of Jetson boards (values from real boards' docs).

Layouts: JetPack 4 ``ina3221x`` IIO driver (Nano: i2c 6-0040, rails POM_5V_IN/GPU/CPU);
JetPack 5/6 upstream ``ina3221`` hwmon driver (Xavier NX on JP5 and Orin Nano: 1-0040 with
VDD_IN, VDD_CPU_GPU_CV, VDD_SOC; AGX Orin: 1-0040 VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0 and
1-0041 NC, VDDQ_VDD2_1V8AO, NC — no VDD_IN).
"""

from __future__ import annotations

from pathlib import Path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def ina3221x_tree(root: Path, rails: dict[int, tuple[str, int, int, int]],
                  device: str = "6-0040") -> Path:
    """rails: channel -> (rail_name, mV, mA, mW)."""
    folder = root / device / "iio:device0"
    for ch, (name, mv, ma, mw) in rails.items():
        _write(folder / f"rail_name_{ch}", name)
        _write(folder / f"in_voltage{ch}_input", str(mv))
        _write(folder / f"in_current{ch}_input", str(ma))
        _write(folder / f"in_power{ch}_input", str(mw))
    _write(folder / "name", "ina3221x")
    return root


def hwmon_tree(root: Path, devices: dict[str, dict[int, tuple[str, int, int]]]) -> Path:
    """devices: i2c name -> channel -> (label, mV, mA). Label "" means no label file."""
    for index, (device, rails) in enumerate(devices.items()):
        folder = root / device / "hwmon" / f"hwmon{index + 1}"
        _write(folder / "name", "ina3221")
        for ch, (label, mv, ma) in rails.items():
            if label:
                _write(folder / f"in{ch}_label", label)
            _write(folder / f"in{ch}_input", str(mv))
            _write(folder / f"curr{ch}_input", str(ma))
            _write(folder / f"in{ch + 3}_input", "12")  # shunt voltage channels 4-6
            _write(folder / f"in{ch}_enable", "1")
    return root


def nano(root: Path) -> Path:
    return ina3221x_tree(root, {0: ("POM_5V_IN", 5048, 422, 2132),
                                1: ("POM_5V_GPU", 5040, 16, 78),
                                2: ("POM_5V_CPU", 5040, 55, 275)})


def xavier_nx_jp5(root: Path) -> Path:
    return hwmon_tree(root, {"7-0040": {1: ("VDD_IN", 5000, 904), 2: ("VDD_CPU_GPU_CV", 5000, 182),
                                        3: ("VDD_SOC", 5000, 261)}})


def orin_nano(root: Path) -> Path:
    return hwmon_tree(root, {"1-0040": {1: ("VDD_IN", 5048, 1042), 2: ("VDD_CPU_GPU_CV", 5040, 142),
                                        3: ("VDD_SOC", 5040, 356)}})


def agx_orin(root: Path) -> Path:
    return hwmon_tree(root, {
        "1-0040": {1: ("VDD_GPU_SOC", 5000, 635), 2: ("VDD_CPU_CV", 5000, 159),
                   3: ("VIN_SYS_5V0", 5000, 746)},
        "1-0041": {1: ("NC", 0, 0), 2: ("VDDQ_VDD2_1V8AO", 5000, 121), 3: ("", 0, 0)},
    })


# Where each driver's folder sits under the sysfs root on a real board.
HWMON_DRIVER = "bus/i2c/drivers/ina3221"  # JetPack 5/6
IIO_DRIVER = "bus/i2c/drivers/ina3221x"  # JetPack 4
