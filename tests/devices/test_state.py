"""Reproducibility probes on /sys and /proc trees shaped like a Jetson, and on this machine."""

from __future__ import annotations

from edgekit.devices import state


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
    snap = state.snapshot(sys_root, proc_root)
    assert snap["board"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert snap["cpu_model"] == "ARMv8 Processor rev 1 (v8l)"
    assert [c["governor"] for c in snap["cpus"]] == ["schedutil", "schedutil"]
    assert snap["cpus"][0]["cur_khz"] == 1510400
    # The offline CV sensor (-256 C) is dropped, real zones kept in degrees C.
    assert snap["temperatures_c"] == {"cpu-thermal": 44.156, "gpu-thermal": 45.968}
    assert snap["jetson"]["jetson_clocks_likely_on"] is True
    assert snap["jetson"]["nvpmodel"] is None  # no nvpmodel binary here: absent, not an error


def test_snapshot_tolerates_missing_everything(tmp_path):
    snap = state.snapshot(tmp_path / "nosys", tmp_path / "noproc")
    assert snap["cpus"] == [] and snap["temperatures_c"] == {} and snap["jetson"] == {}
    assert snap["hostname"]


def test_snapshot_of_this_machine_has_the_basics():
    snap = state.snapshot()
    assert snap["cpu_model"] and snap["cpu_count"] >= 1 and snap["python"]
