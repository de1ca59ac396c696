"""`edgekit bench`, `report` and `devices` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.bench import SCHEMA_VERSION
from tests.devices import sysfs_trees


def edgekit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgekit", *args], capture_output=True,
                          text=True, timeout=300)


def test_bench_writes_a_valid_result_and_prints_a_summary(onnx_model, tmp_path):
    out = tmp_path / "r.json"
    run = edgekit("bench", str(onnx_model), "--runs", "10", "--warmup", "2", "--json", str(out),
                  "--precision", "fp32", "--profile", "jetson", "--power", "none")
    assert run.returncode == 0, run.stderr
    assert "measured: p50" in run.stdout
    assert "power: unavailable (disabled (--power none))" in run.stdout
    result = json.loads(out.read_text())
    assert result["schema_version"] == SCHEMA_VERSION and result["device"]["profile"] == "jetson"
    assert result["model"]["precision"] == "fp32" and result["config"]["power"] == "none"


def test_bench_reads_the_sensor_under_power_root(onnx_model, tmp_path):
    # An Orin Nano's INA3221 driver folder (hwmon layout) stands in for the board's sysfs.
    root = sysfs_trees.orin_nano(tmp_path / "ina3221")
    run = edgekit("bench", str(onnx_model), "--runs", "10", "--warmup", "2", "--power",
                  "jetson-hwmon", "--power-root", str(root), "--idle-seconds", "0.5",
                  "--energy-seconds", "0.5", "--json", str(tmp_path / "r.json"))
    assert run.returncode == 0, run.stderr
    assert " mJ/inference (jetson-hwmon, " in run.stdout
    power = json.loads((tmp_path / "r.json").read_text())["power"]
    assert power["root"] == str(root) and power["idle_w"] == pytest.approx(5048 * 1042 / 1e6)


def test_bench_errors_are_one_line_and_exit_2(tmp_path):
    run = edgekit("bench", str(tmp_path / "nope.onnx"))
    assert run.returncode == 2
    assert run.stderr.strip().startswith("edgekit: error:") and len(run.stderr.splitlines()) == 1
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"1")
    run = edgekit("bench", str(odd), "--json", str(tmp_path / "r.json"))
    assert run.returncode == 2 and "suffix" in run.stderr
    assert not (tmp_path / "r.json").exists()


def test_reference_mismatch_exits_1(onnx_model, reference_output, tmp_path):
    x, expected = reference_output
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.load(expected) * 2 + 1)
    run = edgekit("bench", str(onnx_model), "--runs", "5", "--warmup", "1", "--power", "none",
                  "--input", str(x), "--reference", str(wrong))
    assert run.returncode == 1 and "reference MISMATCH" in run.stdout


def test_devices_lists_profiles_and_estimates():
    run = edgekit("devices")
    assert run.returncode == 0
    assert "jetson-orin-nano" in run.stdout and "raspberry-pi-5" in run.stdout
    run = edgekit("devices", "rpi", "--macs", "300e6", "--bytes", "3.5e6", "--precision", "int8",
                  "--json")
    data = json.loads(run.stdout)
    assert data["profile"]["name"] == "raspberry-pi-5"
    # MACs and bytes alone give only the roofline: labelled a lower bound, not an estimate
    assert data["roofline_lower_bound"]["bound"] == "compute" and "estimate" not in data
    run = edgekit("devices", "jetson-nan")
    assert run.returncode == 2 and "did you mean" in run.stderr
    run = edgekit("devices", "rpi", "--macs", "1e6", "--bytes", "1e6", "--result", "e.json")
    assert run.returncode == 2 and "give --model FILE" in run.stderr


@pytest.mark.slow  # ~13 s: every device's calibration, the Pi 4's 76 leave-one-out refits
@pytest.mark.parametrize("fixture", ["onnx_model", "tflite_model"])
def test_devices_compare_estimates_every_profile_with_an_interval(fixture, request):
    model = request.getfixturevalue(fixture)
    rows = json.loads(edgekit("devices", "--compare", str(model), "--json").stdout)
    devices = {row["device"] for row in rows}
    assert {"a10", "jetson-agx-orin", "raspberry-pi-4", "x86-cpu"} <= devices
    assert "jetson-orin-nano" not in devices  # no points of its own: not in the default
    for row in rows:
        low, high = row["interval_ms"]
        assert row["kind"] == "estimated" and row["latency_ms"] > 0 and row["points"] >= 5
        assert low is None or low <= row["latency_ms"] <= high
        assert row["basis"].startswith(f"estimated {row['latency_ms']:.3g} ms (")
        # the budget is a bound beside the row, never its energy figure
        assert row["energy_upper_bound_mj"] == pytest.approx(
            row["latency_ms"] * _watts(row["device"]))
        if row["energy_mj"] is not None:  # fitted on measured power
            e_low, e_high = row["energy_interval_mj"]
            assert e_low <= row["energy_mj"] <= e_high and row["energy_points"] >= 3
            assert "wall power" in row["energy_basis"]
    rows = {row["device"]: row for row in rows}
    assert "from 76 published points" in rows["raspberry-pi-4"]["basis"]  # its MLPerf points
    assert rows["raspberry-pi-4"]["energy_points"] == 76  # Krai's power logs beside them
    assert rows["a10"]["energy_mj"] is None  # one power run only: no energy figure
    wide = json.loads(edgekit("devices", "--compare", str(model), "--json",
                              "--include-unmeasured").stdout)
    nano = next(row for row in wide if row["device"] == "jetson-orin-nano")
    assert nano["kind"] == "transferred" and nano["points"] == 0
    assert "transferred from" in nano["basis"]


def test_devices_compare_prints_a_table_and_plots_it(onnx_model, tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "devices.png"
    run = edgekit("devices", "jetson", "--compare", str(onnx_model), "--plot", str(plot))
    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ")][2:]
    # the Orin Nano has no published points: named, not estimated, unless asked for
    assert len(rows) == 1 and rows[0].startswith("| jetson-orin-nano | unmeasured | 0 |")
    assert "--include-unmeasured" in rows[0]
    run = edgekit("devices", "jetson", "--compare", str(onnx_model), "--include-unmeasured")
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ")][2:]
    assert rows[0].startswith("| jetson-orin-nano | transferred | 0 |")
    assert "transferred from" in rows[0] and "≤ " in rows[0] and "(bound)" in rows[0]
    run = edgekit("devices", "xavier-nx", "--compare", str(onnx_model), "--plot", str(plot))
    rows = [line for line in run.stdout.splitlines() if line.startswith("| ")][2:]
    # measured power behind the energy: a figure with an interval, not a bound
    assert rows[0].startswith("| jetson-xavier-nx | estimated | 8 |") and "(bound)" not in rows[0]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = edgekit("devices", "jetson", "--plot", str(plot))
    assert run.returncode == 2 and "give --compare" in run.stderr
    run = edgekit("devices", "--include-unmeasured")
    assert run.returncode == 2 and "give --compare" in run.stderr


def test_devices_list_says_which_profiles_have_no_points():
    run = edgekit("devices")
    assert run.returncode == 0, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines()[1:]}
    assert "no published points of its own" in lines["jetson-orin-nano"]
    assert "no published points" not in lines["a10"] and " 9 " in lines["a10"]


def test_devices_compare_on_a_damaged_file_is_one_line(tmp_path):
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"\x08\x07not a model" * 50)
    run = edgekit("devices", "--compare", str(damaged))
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [run.stderr.strip()]
    assert run.stderr.startswith("edgekit: error: damaged.onnx:")


def _watts(name):
    from edgekit.devices import get_profile

    profile = get_profile(name)
    return max(profile.power_modes.values(), default=profile.tdp_w)


@pytest.mark.slow  # ~13 s, as above
def test_devices_compare_merges_a_measured_record(onnx_model, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    run = edgekit("bench", str(onnx_model), "--runs", "5", "--warmup", "1", "--power", "none",
                  "--profile", "x86-cpu", "--json", str(results / "host.json"))
    assert run.returncode == 0, run.stderr
    data = json.loads(edgekit("devices", "--compare", str(onnx_model), "--results",
                              str(results), "--json").stdout)
    kinds = {row["device"]: row["kind"] for row in data}
    assert kinds["x86-cpu"] == "measured" and kinds["jetson-agx-orin"] == "estimated"


def test_unwritable_outputs_fail_before_any_work(tmp_path, capsys):
    from edgekit.cli import main

    (tmp_path / "file").write_text("x")
    missing = str(tmp_path / "missing.onnx")  # a bench would fail on it, but not first
    for argv, message in [
        (["bench", missing, "--json", "/proc/r.json"], "cannot create files in /proc"),
        (["report", missing, "--out", str(tmp_path / "file" / "rep")], "is a file, not a"),
        (["report", missing, "--out", str(tmp_path / "file")], "exists and is not a directory"),
        (["devices", "rpi", "--macs", "1e6", "--bytes", "1e6", "--result", "/proc/e.json"],
         "cannot create files in /proc"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    assert main(["bench", missing, "--json", "-"]) == 2  # stdout is fine; the model is not
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
