"""Reproducibility probes on /sys and /proc trees shaped like a Jetson, with board tools
found in explicit folders (``tool_dirs``), and on whatever host runs the tests."""

from __future__ import annotations

import pytest

from edgekit.devices import state
from tests.devices import fake_tools


def _jetson_tree(tmp_path):
    sys_root, proc_root = tmp_path / "sys", tmp_path / "proc"
    for cpu in range(2):
        freq = sys_root / f"devices/system/cpu/cpu{cpu}/cpufreq"
        freq.mkdir(parents=True)
        for name, value in [("scaling_governor", "schedutil"), ("scaling_cur_freq", "1510400"),
                            ("scaling_min_freq", "1510400"), ("scaling_max_freq", "1510400"),
                            ("cpuinfo_max_freq", "1510400")]:
            (freq / name).write_text(value + "\n")
    for i, (kind, milli) in enumerate([("cpu-thermal", "44156"), ("gpu-thermal", "45968"),
                                       ("cv0-thermal", "-256000")]):
        zone = sys_root / f"class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    (proc_root / "device-tree").mkdir(parents=True)
    (proc_root / "device-tree/model").write_text("NVIDIA Jetson Orin Nano Developer Kit\x00")
    (proc_root / "cpuinfo").write_text("processor\t: 0\nmodel name\t: ARMv8 Processor rev 1 (v8l)")
    return sys_root, proc_root


def test_snapshot_of_a_jetson_tree(tmp_path):
    sys_root, proc_root = _jetson_tree(tmp_path)
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    snap = state.snapshot(sys_root, proc_root, tool_dirs=[no_tools])
    assert snap["board"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert snap["cpu_model"] == "ARMv8 Processor rev 1 (v8l)"
    assert [c["governor"] for c in snap["cpus"]] == ["schedutil", "schedutil"]
    assert snap["cpus"][0]["cur_khz"] == 1510400
    # The offline CV sensor (-256 C) is dropped, real zones kept in degrees C.
    assert snap["temperatures_c"] == {"cpu-thermal": 44.156, "gpu-thermal": 45.968}
    assert snap["jetson"]["jetson_clocks_likely_on"] is True
    # no nvpmodel in the tool folder: absent, not an error
    assert snap["jetson"]["nvpmodel"] is None and snap["jetson"]["nvpmodel_id"] is None
    assert snap["rpi_throttled"] is None


@pytest.mark.parametrize(("output", "mode", "mode_id"), [
    (fake_tools.NVPMODEL_AGX_ORIN, "MAXN", 0),
    (fake_tools.NVPMODEL_XAVIER_NX, "MODE_15W_6CORE", 2),
])
def test_nvpmodel_mode_is_read_from_the_tool_in_tool_dirs(tmp_path, output, mode, mode_id):
    sys_root, proc_root = _jetson_tree(tmp_path)
    fake_tools.printing_tool(tmp_path / "bin", "nvpmodel", output)
    jetson = state.snapshot(sys_root, proc_root, tool_dirs=[tmp_path / "bin"])["jetson"]
    assert (jetson["nvpmodel"], jetson["nvpmodel_id"]) == (mode, mode_id)


def test_a_failing_nvpmodel_gives_no_mode(tmp_path):
    sys_root, proc_root = _jetson_tree(tmp_path)
    fake_tools.printing_tool(tmp_path / "bin", "nvpmodel", "NVPM ERROR: failed\n", exit_code=1)
    jetson = state.jetson_state(sys_root, proc_root, tool_dirs=[tmp_path / "bin"])
    assert jetson["nvpmodel"] is None and jetson["board"].startswith("NVIDIA Jetson")


def test_raspberry_pi_throttle_bits_from_vcgencmd(tmp_path):
    fake_tools.printing_tool(tmp_path / "bin", "vcgencmd", fake_tools.VCGENCMD_THROTTLED)
    assert state.raspberry_pi_throttled(tool_dirs=[tmp_path / "bin"]) == "0x50000"
    assert state.raspberry_pi_throttled(tool_dirs=[]) is None  # searched nowhere


def test_snapshot_tolerates_missing_everything(tmp_path):
    snap = state.snapshot(tmp_path / "nosys", tmp_path / "noproc", tool_dirs=[])
    assert snap["cpus"] == [] and snap["temperatures_c"] == {} and snap["jetson"] == {}
    assert snap["board"] is None and snap["rpi_throttled"] is None
    assert snap["hostname"]


def test_snapshot_of_the_host_running_the_tests():
    # Real /sys, /proc and PATH: x86 CI, a Jetson or a GPU desktop. Each probe either found
    # its source (and then has the right shape) or says absent; none raises.
    snap = state.snapshot()
    assert snap["cpu_model"] and snap["cpu_count"] >= 1 and snap["python"]
    for cpu in snap["cpus"]:
        assert isinstance(cpu["cpu"], int) and set(cpu) >= {"governor", "cur_khz", "max_khz"}
    assert all(isinstance(t, float) for t in snap["temperatures_c"].values())
    if snap["jetson"]:  # only where the device tree names a Jetson
        assert snap["jetson"]["board"] == snap["board"]
        assert snap["jetson"]["nvpmodel"] is None or isinstance(snap["jetson"]["nvpmodel"], str)
    else:
        board = (snap["board"] or "").lower()
        assert "jetson" not in board and "nvidia" not in board
