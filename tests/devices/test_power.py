"""Power samplers on sysfs trees in the real Jetson layouts, real tegrastats lines, RAPL wrap.

Nothing here is mocked except the hardware itself: the readers run unchanged against
directory trees shaped like the boards' sysfs (see sysfs_trees.py) and against a child
process that prints real tegrastats lines. Every test names its sysfs root and tool folder,
so it passes the same on x86 CI, on a Jetson and on a desktop with an NVIDIA GPU.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from edgekit.devices.power import (
    PowerMonitor,
    PowerUnavailable,
    make_sampler,
    open_sampler,
    summarize_energy,
)
from edgekit.devices.power.tegrastats import parse_rails, total_watts
from tests.devices import fake_tools, sysfs_trees

# Real tegrastats lines (JetPack 4 Nano; JetPack 5 Xavier NX; JetPack 6 Orin Nano; AGX Orin).
NANO_LINE = ("RAM 1655/3956MB (lfb 311x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
             "CPU [12%@102,10%@102,11%@102,12%@102] EMC_FREQ 3%@1600 GR3D_FREQ 0%@76 APE 25 "
             "PLL@36.5C CPU@39C iwlwifi@44C PMIC@50C GPU@37C AO@47.5C thermal@38C "
             "POM_5V_IN 2132/2132 POM_5V_GPU 78/78 POM_5V_CPU 275/275")
XAVIER_NX_LINE = ("RAM 2345/7620MB (lfb 234x4MB) SWAP 0/3810MB (cached 0MB) CPU [20%@1510,15%@1510,"
                  "10%@1510,8%@1510,off,off] EMC_FREQ 0% GR3D_FREQ 50% VIC_FREQ 0% APE 174 gpu@42C "
                  "cpu@38.5C iwlwifi@37C CV0@-256C CV1@-256C CV2@-256C SOC2@38.5C SOC0@40C "
                  "SOC1@37.5C tj@42C VDD_IN 4500mW/4500mW VDD_CPU_GPU_CV 799mW/799mW "
                  "VDD_SOC 1598mW/1598mW")
ORIN_NANO_LINE = ("05-05-2025 06:05:39 RAM 2639/7620MB (lfb 9x4MB) SWAP 0/3810MB (cached 0MB) "
                  "CPU [1%@729,4%@729,8%@729,4%@729,5%@729,4%@729] GR3D_FREQ 0% cpu@44.156C "
                  "soc2@43.781C soc0@44.687C gpu@45.968C tj@45.968C soc1@45.312C "
                  "VDD_IN 5263mW/5263mW VDD_CPU_GPU_CV 717mW/717mW VDD_SOC 1794mW/1794mW")
AGX_ORIN_LINE = ("RAM 100/1000MB GR3D_FREQ 50%@[611,0] GPU@51.0C "
                 "VIN_SYS_5V0 7000mW/6500mW VDD_GPU_SOC 4000mW/3900mW")


@pytest.mark.parametrize(("build", "sampler", "watts", "mode"), [
    (sysfs_trees.nano, "jetson-ina3221x", 2.132, "input rail POM_5V_IN"),
    (sysfs_trees.xavier_nx_jp5, "jetson-hwmon", 5000 * 904 / 1e6, "input rail VDD_IN"),
    (sysfs_trees.orin_nano, "jetson-hwmon", 5048 * 1042 / 1e6, "input rail VDD_IN"),
    # AGX Orin has no VDD_IN: the connected rails of both monitors are summed; NC is skipped.
    (sysfs_trees.agx_orin, "jetson-hwmon", 5000 * (635 + 159 + 746 + 121) / 1e6,
     "sum of rails VDDQ_VDD2_1V8AO+VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0"),
])
def test_ina3221_readers_on_real_board_layouts(tmp_path, build, sampler, watts, mode):
    root = build(tmp_path / "drivers")
    reader = make_sampler(sampler, root=root)
    reader.open()
    assert reader.read_watts() == pytest.approx(watts)
    assert reader.describe()["rails"] == mode


def test_the_other_layout_finds_nothing_and_says_why(tmp_path):
    root = sysfs_trees.orin_nano(tmp_path / "ina3221")
    with pytest.raises(PowerUnavailable, match="no labelled INA3221 rails"):
        make_sampler("jetson-ina3221x", root=root).open()
    with pytest.raises(PowerUnavailable, match="does not exist"):
        make_sampler("jetson-hwmon", root=tmp_path / "absent").open()


def test_unreadable_rail_value_is_unavailable_not_a_number(tmp_path):
    root = sysfs_trees.orin_nano(tmp_path / "ina3221")
    reader = make_sampler("jetson-hwmon", root=root)
    reader.open()
    next(root.glob("*/hwmon/hwmon*/curr1_input")).write_text("garbage\n")
    with pytest.raises(PowerUnavailable, match="not a number"):
        reader.read_watts()


@pytest.mark.parametrize(("line", "watts"), [
    (NANO_LINE, 2.132), (XAVIER_NX_LINE, 4.5), (ORIN_NANO_LINE, 5.263),
    (AGX_ORIN_LINE, 11.0),  # no VDD_IN: VIN_SYS_5V0 + VDD_GPU_SOC instantaneous values
])
def test_tegrastats_lines_give_board_power(line, watts):
    rails = parse_rails(line)
    assert "RAM" not in rails and "SWAP" not in rails
    assert total_watts(rails) == pytest.approx(watts)


def test_tegrastats_line_without_rails_is_unavailable():
    with pytest.raises(PowerUnavailable):
        total_watts(parse_rails("RAM 1655/3956MB (lfb 311x4MB) SWAP 0/1978MB GR3D_FREQ 0%"))


@pytest.mark.parametrize(("build", "driver", "sampler", "watts"), [
    (sysfs_trees.orin_nano, sysfs_trees.HWMON_DRIVER, "jetson-hwmon", 5048 * 1042 / 1e6),
    (sysfs_trees.nano, sysfs_trees.IIO_DRIVER, "jetson-ina3221x", 2.132),
])
def test_auto_finds_the_board_sensor_under_the_sysfs_root(tmp_path, build, driver, sampler,
                                                          watts):
    # The on-board samplers come first in "auto", so this holds on every host.
    build(tmp_path / "sys" / driver)
    reader = open_sampler("auto", sys_root=tmp_path / "sys", tool_dirs=[])
    assert reader.name == sampler and reader.read_watts() == pytest.approx(watts)
    assert reader.describe()["root"] == str(tmp_path / "sys" / driver)


def test_tegrastats_is_found_in_tool_dirs_and_streams_its_lines(tmp_path):
    fake_tools.tegrastats(tmp_path / "bin", XAVIER_NX_LINE)
    sampler = open_sampler("tegrastats", tool_dirs=[tmp_path / "bin"], interval_ms=5)
    window = _sample_then_close(sampler, 0.3)
    assert sampler.describe()["command"] == [str(tmp_path / "bin" / "tegrastats"),
                                             "--interval", "5"]
    assert len(window) >= 10 and np.allclose(window, 4.5)
    with pytest.raises(PowerUnavailable, match="'tegrastats' not found in"):
        open_sampler("tegrastats", tool_dirs=[tmp_path / "empty"])


def test_tegrastats_sampler_streams_timestamped_lines_from_a_child_process():
    # The child prints real Orin Nano lines every 5 ms, as `tegrastats --interval 5` would.
    code = (f"import time\nwhile True:\n    print({ORIN_NANO_LINE!r}, flush=True)\n"
            "    time.sleep(0.005)")
    sampler = open_sampler("tegrastats", command=[sys.executable, "-c", code])
    window = _sample_then_close(sampler, 0.3)
    assert len(window) >= 10
    assert np.allclose(window, 5.263)


def _sample_then_close(sampler, seconds: float) -> np.ndarray:
    """The watts ``sampler`` streamed during ``seconds`` of a PowerMonitor window."""
    try:
        with PowerMonitor(sampler) as monitor:
            start = time.perf_counter_ns()
            time.sleep(seconds)
            end = time.perf_counter_ns()
        return monitor.window(start, end)
    finally:
        sampler.close()


def _rapl_tree(root, energy_uj, max_uj):
    for zone, energy in [("intel-rapl:0", energy_uj), ("intel-rapl:0:0", 1)]:
        (root / zone).mkdir(parents=True)
        (root / zone / "energy_uj").write_text(f"{energy}\n")
        (root / zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return root


def test_rapl_counter_wraps_around_max_energy_range(tmp_path):
    root = _rapl_tree(tmp_path / "powercap", 999_000_000, 1_000_000_000)
    rapl = make_sampler("rapl", root=root)
    rapl.open()
    assert rapl.describe()["zones"] == ["intel-rapl:0"]  # sub-zone not double counted
    (root / "intel-rapl:0" / "energy_uj").write_text("2000000\n")  # wrapped past 1000 J
    assert rapl.read_energy_j() == pytest.approx(3.0)  # 1 J to the wrap + 2 J after it
    (root / "intel-rapl:0" / "energy_uj").write_text("7000000\n")
    assert rapl.read_energy_j() == pytest.approx(8.0)


def test_rapl_is_found_under_the_sysfs_root(tmp_path):
    _rapl_tree(tmp_path / "sys" / "class" / "powercap", 5_000_000, 10_000_000)
    rapl = make_sampler("rapl", sys_root=tmp_path / "sys")
    rapl.open()
    assert rapl.describe()["zones"] == ["intel-rapl:0"] and rapl.read_energy_j() == 0.0


def test_rapl_unreadable_counter_is_unavailable(tmp_path):
    root = _rapl_tree(tmp_path / "powercap", 5, 10)
    (root / "intel-rapl:0" / "energy_uj").unlink()
    with pytest.raises(PowerUnavailable, match="cannot read"):
        make_sampler("rapl", root=root).open()


def test_external_meter_command(tmp_path):
    script = "print('noise'); print('7.25')"
    meter = make_sampler("external", command=[sys.executable, "-c", script])
    meter.open()
    assert meter.read_watts() == 7.25
    bad = make_sampler("external", command=[sys.executable, "-c", "print('n/a')"])
    with pytest.raises(PowerUnavailable, match="not watts"):
        bad.read_watts()
    with pytest.raises(PowerUnavailable, match="no meter command"):
        make_sampler("external").open()


def _nvml_opens_here() -> bool:
    try:
        open_sampler("nvml").close()
    except PowerUnavailable:
        return False
    return True


def test_auto_on_an_empty_machine_reports_every_reason(tmp_path):
    # Empty sysfs and no tools: nothing but NVML can be found. NVML has no root to point
    # elsewhere, so where it works (a GPU desktop) "auto" must pick it, else every sampler
    # gives its reason, each naming where it looked.
    where = {"sys_root": tmp_path / "sys", "tool_dirs": [tmp_path / "bin"]}
    if _nvml_opens_here():
        sampler = open_sampler("auto", **where)
        sampler.close()
        assert sampler.name == "nvml"
        return
    with pytest.raises(PowerUnavailable) as info:
        open_sampler("auto", **where)
    reasons = str(info.value)
    for name in ("jetson-hwmon", "jetson-ina3221x", "tegrastats", "nvml", "rapl"):
        assert f"{name}:" in reasons
    assert str(tmp_path / "sys" / "bus/i2c/drivers/ina3221") in reasons
    assert str(tmp_path / "sys" / "class/powercap") in reasons
    assert f"not found in {[str(tmp_path / 'bin')]}" in reasons


def test_nvml_is_a_gpu_reading_or_says_why_not():
    # The one host-dependent sampler: a GPU desktop reads watts; elsewhere a reason.
    try:
        sampler = open_sampler("nvml")
    except PowerUnavailable as exc:
        assert "nvidia-ml-py is not installed" in str(exc) or "NVML" in str(exc)
        return
    try:
        assert 0 <= sampler.read_watts() < 2000 and "gpu" in sampler.describe()
    finally:
        sampler.close()


def test_energy_subtracts_idle_and_propagates_uncertainty():
    rng = np.random.default_rng(0)
    idle = 5.0 + 0.1 * rng.standard_normal(200)
    load = 8.0 + 0.1 * rng.standard_normal(300)
    out = summarize_energy(idle, load, idle_s=2.0, load_s=3.0, inferences=1000)
    assert out["net_w"] == pytest.approx(3.0, abs=0.05)
    # 3 W above idle for 3 s over 1000 inferences = 9 mJ per inference
    assert out["energy_per_inference_mj"] == pytest.approx(9.0, abs=0.15)
    expected_unc = np.hypot(idle.std(ddof=1) / np.sqrt(200), load.std(ddof=1) / np.sqrt(300))
    assert out["energy_per_inference_mj_uncertainty"] == pytest.approx(expected_unc * 3.0)
    assert out["sample_rate_hz"] == pytest.approx(100.0)
    counter = summarize_energy(idle, load, idle_s=2.0, load_s=3.0, inferences=1000,
                               idle_energy_j=10.0, load_energy_j=24.0)
    assert counter["energy_per_inference_mj"] == pytest.approx((8.0 - 5.0) * 3.0)
    with pytest.raises(PowerUnavailable, match="too few"):
        summarize_energy(idle[:1], load, idle_s=2.0, load_s=3.0, inferences=10)


def test_options_a_sampler_does_not_take_are_refused():
    from edgekit.core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="takes no option"):
        open_sampler("external", root="/sys")
    # where-to-look options reach only the samplers that take them, never an error
    meter = open_sampler("external", command=["echo", "3"], sys_root="/x", tool_dirs=[])
    assert meter.read_watts() == 3.0
