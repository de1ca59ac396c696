"""Energy per inference from measured power: the idle + dynamic model, the shipped power runs
and their extraction from an MLPerf results tree (benchmarks/mlperf_power.py on a real git
repository laid out as MLPerf's, with a hand-made power log)."""

from __future__ import annotations

import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (make test-min-python runs tests/devices): the tomli backport
    import tomli as tomllib

from edgekit.devices.calibrated import as_precision, published_layers
from edgekit.devices.energy_model import energy_estimate_mj, fit_power, power_model, power_runs

ROOT = Path(__file__).resolve().parents[2]


def test_fit_recovers_idle_and_dynamic_power_and_predicts_held_out_runs():
    busy = np.array([0.2, 0.5, 1.0, 2.0, 3.0]) * 1e-3
    latency = np.array([1.0, 2.0, 2.5, 4.0, 5.0]) * 1e-3
    idle = np.full(5, 4.0)
    mean = idle + 12.0 * busy / latency  # exactly idle + dynamic x utilisation
    model = fit_power("x", "MaxQ", busy, latency, mean, idle)
    assert model.idle_w == pytest.approx(4.0) and model.dynamic_w == pytest.approx(12.0)
    assert max(abs(r) for r in model.loo_log_residuals) < 1e-12
    assert model.energy_j(2e-3, 1e-3) == pytest.approx((4.0 + 12.0 * 0.5) * 2e-3)
    # a run whose power the others do not explain is missed by its leave-one-out fit
    mean[2] += 6.0
    noisy = fit_power("x", "MaxQ", busy, latency, mean, idle)
    assert noisy.loo_log_residuals[2] > 0.2 and noisy.loo_median_ratio_error > 1.0


def test_shipped_power_runs_name_their_source_and_are_consistent():
    folder = resources.files("edgekit.devices").joinpath("published").joinpath("power")
    layers = published_layers()
    seen = 0
    for entry in folder.iterdir():
        data = tomllib.loads(entry.read_text("utf-8"))
        assert data["device"] == entry.name.removesuffix(".toml")
        for run in data["energy"]:
            seen += 1
            assert run["source"].startswith("https://github.com/mlcommons/inference_results_")
            assert run["source"].endswith("/spl.txt") and run["model"] in layers
            assert 0 < run["idle_w"] < run["mean_w"] and run["samples"] >= 60
            assert run["energy_mj"] == pytest.approx(run["mean_w"] * run["latency_ms"], rel=1e-3)
            assert f"mean {run['mean_w']:.3f} W" in run["published"]
    assert seen >= 90  # Pi 4 (76), Xavier NX and AGX Orin (6 each), A2, A10, L4


@pytest.mark.parametrize("device", ["raspberry-pi-4", "jetson-xavier-nx", "jetson-agx-orin"])
def test_devices_with_power_runs_get_an_energy_figure_with_its_error(device):
    model = power_model(device)
    assert model is not None and model.points == len(power_runs(device))
    assert model.loo_median_ratio_error <= 1.5  # the bound for measured-power energy
    records = as_precision(published_layers()["mobilenet_v2_1.0_224"], "int8")
    mj, (low, high), same = energy_estimate_mj(device, records, 2.0)
    assert same is model and low <= 1.0 <= high
    assert mj > model.idle_w * 2.0  # at least the idle draw over the inference


def test_no_energy_figure_without_enough_measured_runs():
    records = as_precision(published_layers()["resnet50"], "int8")
    assert len(power_runs("a10")) == 1 and energy_estimate_mj("a10", records, 1.0) is None
    assert power_model("jetson-orin-nano") is None


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_extraction_averages_the_loadgen_power_window(tmp_path):
    """A results tree in MLPerf's layout, committed to a real git repository: the mean is
    taken over the samples between power_begin and power_end only, the idle from before."""
    repo = tmp_path / "inference_results_v3.0"
    run = repo / "closed/NVIDIA/results/Orin_TRT_MaxQ/resnet50/SingleStream/performance/run_1"
    run.mkdir(parents=True)
    (repo / "closed/NVIDIA/systems").mkdir(parents=True)
    (repo / "closed/NVIDIA/systems/Orin_TRT_MaxQ.json").write_text(
        '{"system_name": "Test Orin", "other_software_stack": "TensorRT 8.5"}')
    watts = [5.0] * 20 + [15.0, 16.0] * 30 + [5.0] * 5  # idle, 60 s of load, idle
    (run / "spl.txt").write_text("".join(
        f"Time,02-24-2023 06:{i // 60:02d}:{i % 60:02d}.000,Watts,{w:.6f},Volts,230.0,"
        f"Amps,0.1,PF,0.3,Mark,x_testing\n" for i, w in enumerate(watts)))
    (run / "mlperf_log_detail.txt").write_text(
        ':::MLLOG {"key": "power_begin", "value": "02-24-2023 06:00:20.000"}\n'
        ':::MLLOG {"key": "power_end", "value": "02-24-2023 06:01:19.500"}\n')
    (run / "mlperf_log_summary.txt").write_text(
        "Result is : VALID\nQPS w/ loadgen overhead         : 1000.00\n"
        "Mean latency (ns)               : 900000\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results")
    out = tmp_path / "power"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/mlperf_power.py"), "--mirror",
                           f"v3.0={repo}", "--beside-published", "", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run_1 = tomllib.loads((out / "jetson-agx-orin.toml").read_text())["energy"][0]
    assert run_1["samples"] == 60 and run_1["mean_w"] == pytest.approx(15.5)
    assert run_1["idle_w"] == pytest.approx(5.0) and run_1["latency_ms"] == pytest.approx(0.9)
    assert run_1["energy_mj"] == pytest.approx(15.5 * 0.9)
    assert run_1["model"] == "resnet50" and run_1["power_mode"] == "MaxQ"
    assert "/blob/" in run_1["source"] and math.isfinite(run_1["qps"])
