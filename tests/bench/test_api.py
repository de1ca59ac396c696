"""benchmark() with the real onnxruntime and LiteRT interpreters on tiny exported models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.bench import BenchConfig, TimingConfig, benchmark, validate_result
from edgekit.bench.memory import WINDOW_METHOD, MemoryWindow
from edgekit.core.errors import BenchError, DataError, InvalidInputError, UnknownNameError
from edgekit.runtime import runner_class
from tests.devices import fake_tools, sysfs_trees

FAST = TimingConfig(runs=20, warmup=3)


def test_onnxruntime_result_has_every_part_of_the_record(onnx_model, tmp_path):
    # The sensor is named and its sysfs root is an empty tree: no power on any host.
    cfg = BenchConfig(threads=1, timing=FAST, profile="cpu", power="jetson-hwmon",
                      sys_root=str(tmp_path / "sys"), tool_dirs=())
    result = benchmark(onnx_model, cfg)
    assert validate_result(result) is result
    lat = result["latency_ms"]
    assert len(lat["samples"]) == 20 and lat["runs"] == 20
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["median_ci95"][0] <= lat["p50"] <= lat["median_ci95"][1]
    assert result["throughput_ips"] == pytest.approx(1e3 / lat["p50"])
    assert result["init_ms"] > 0 and result["first_run_ms"] > 0
    memory = result["memory"]
    assert memory["peak_rss_method"] and memory["gpu_bytes"] is None  # CPU provider
    assert (memory["peak_rss_during_bench_mb"] or memory["process_lifetime_peak_rss_mb"]) > 0
    assert result["runtime"]["name"] == "onnxruntime" and result["runtime"]["threads"] == 1
    assert result["runtime"]["providers"] == ["CPUExecutionProvider"]
    assert len(result["model"]["sha256"]) == 64
    assert result["model"]["inputs"] == [{"name": "input", "shape": [1, 3, 16, 16],
                                          "dtype": "float32"}]
    assert result["device"]["profile"] == "cpu"
    for key in ("cpu_model", "cpus", "temperatures_c", "hostname", "jetson"):
        assert key in result["state_before"]
    # No sensor: the record says why (where it looked) and carries no number.
    assert result["power"]["available"] is False
    assert result["power"]["reason"] == (f"jetson-hwmon: {tmp_path}/sys/bus/i2c/drivers/ina3221 "
                                         "does not exist (no INA3221 driver loaded)")
    assert "energy_per_inference_mj" not in result["power"]


def test_auto_power_and_state_on_an_orin_nano_tree(onnx_model, tmp_path):
    # An Orin Nano's sysfs (INA3221, hwmon layout), its device-tree model and its nvpmodel,
    # all where the config says. "auto" tries the on-board sensors first, so this measures
    # the same on every host. The rails are constant: zero energy above idle.
    sysfs_trees.orin_nano(tmp_path / "sys" / sysfs_trees.HWMON_DRIVER)
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_text("NVIDIA Jetson Orin Nano\x00")
    fake_tools.printing_tool(tmp_path / "bin", "nvpmodel", fake_tools.NVPMODEL_AGX_ORIN)
    cfg = BenchConfig(timing=FAST, power="auto", idle_seconds=0.5, energy_seconds=0.5,
                      sys_root=str(tmp_path / "sys"), proc_root=str(tmp_path / "proc"),
                      tool_dirs=(str(tmp_path / "bin"),))
    result = benchmark(onnx_model, cfg)
    power = result["power"]
    assert power["available"] is True, power
    assert power["sampler"] == "jetson-hwmon" and power["rails"] == "input rail VDD_IN"
    assert power["idle_w"] == pytest.approx(5048 * 1042 / 1e6)
    assert power["load_w"] == pytest.approx(5048 * 1042 / 1e6)
    assert power["energy_per_inference_mj"] == pytest.approx(0.0, abs=1e-9)
    assert result["state_before"]["jetson"]["nvpmodel"] == "MAXN"


def _vm_status_mb() -> dict[str, float]:
    lines = Path("/proc/self/status").read_text().splitlines()
    return {k: int(v.split()[0]) / 1024 for k, _, v in (ln.partition(":") for ln in lines)
            if k in ("VmRSS", "VmHWM")}


def test_memory_figure_leaves_out_an_earlier_allocation_in_the_same_process(onnx_model):
    # Like training before the benchmark inside `edgekit compress`: 300 MiB, touched, freed.
    big = np.ones(300 * 2**20 // 8)
    del big
    before = _vm_status_mb()
    assert before["VmHWM"] - before["VmRSS"] >= 290  # the process peak still holds it
    memory = benchmark(onnx_model, BenchConfig(timing=FAST, power="none"))["memory"]
    assert memory["peak_rss_method"] == WINDOW_METHOD  # Linux >= 4.0: every edgekit host
    assert memory["process_lifetime_peak_rss_mb"] is None
    assert memory["rss_before_load_mb"] == pytest.approx(before["VmRSS"], abs=50)
    assert 0 <= memory["peak_rss_increase_mb"] < 150  # ~35 MiB here, onnxruntime import included
    assert memory["peak_rss_increase_mb"] == pytest.approx(
        memory["peak_rss_during_bench_mb"] - memory["rss_before_load_mb"])
    assert memory["peak_rss_during_bench_mb"] < before["VmHWM"] - 150


def test_memory_without_a_resettable_peak_is_labelled_lifetime(tmp_path):
    # Kernels or sandboxes that refuse the reset, and hosts without /proc, are not here:
    # the window is pointed at paths that refuse it in the same way.
    refused = MemoryWindow(clear_refs=tmp_path / "absent" / "clear_refs")
    refused.start()
    out = refused.result()
    assert out["peak_rss_during_bench_mb"] is None and out["peak_rss_increase_mb"] is None
    assert out["rss_before_load_mb"] > 0 and out["process_lifetime_peak_rss_mb"] > 0
    assert out["peak_rss_method"].startswith("benchmark peak unknown (cannot reset VmHWM")
    assert out["peak_rss_method"].endswith("lifetime peak from VmHWM")
    no_proc = MemoryWindow(status=tmp_path / "status", clear_refs=tmp_path / "absent" / "x")
    no_proc.start()
    out = no_proc.result()
    assert out["rss_before_load_mb"] is None and out["process_lifetime_peak_rss_mb"] > 0
    assert out["peak_rss_method"].endswith("lifetime peak from getrusage ru_maxrss")


@pytest.mark.slow
@pytest.mark.parametrize("xnnpack", [True, False])
def test_litert_runs_with_and_without_xnnpack(tflite_model, reference_output, xnnpack):
    x, expected = reference_output
    cfg = BenchConfig(threads=1, xnnpack=xnnpack, timing=FAST, power="none",
                      input_path=str(x), reference_path=str(expected))
    result = benchmark(tflite_model, cfg)
    assert result["runtime"]["name"] == "litert" and result["runtime"]["xnnpack"] is xnnpack
    assert result["model"]["precision"] == "fp32"  # detected from the tensor types
    assert result["reference_check"]["passed"] is True
    assert result["reference_check"]["max_abs_err"] < 1e-4


def test_reference_check_passes_and_detects_a_wrong_reference(onnx_model, reference_output,
                                                              tmp_path):
    x, expected = reference_output
    cfg = BenchConfig(timing=FAST, power="none", input_path=str(x), reference_path=str(expected))
    assert benchmark(onnx_model, cfg)["reference_check"]["passed"] is True
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.load(expected) + 1.0)
    cfg.reference_path = str(wrong)
    check = benchmark(onnx_model, cfg)["reference_check"]
    assert check["passed"] is False and check["max_abs_err"] == pytest.approx(1.0, abs=1e-4)


def test_dynamic_batch_and_seeded_inputs(onnx_model):
    result = benchmark(onnx_model, BenchConfig(batch=4, timing=FAST, power="none"))
    assert result["model"]["inputs"][0]["shape"] == [4, 3, 16, 16]
    assert result["throughput_ips"] == pytest.approx(4e3 / result["latency_ms"]["p50"])


def test_bad_inputs_raise_typed_errors(onnx_model, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        benchmark(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(BenchError, match="cannot load"):
        benchmark(garbage, BenchConfig(power="none"))
    with pytest.raises(InvalidInputError, match="suffix"):
        runner_class(None, tmp_path / "model.xyz")
    with pytest.raises(UnknownNameError, match="did you mean: onnxruntime"):
        runner_class("onnxruntim", onnx_model)
    bad_shape = tmp_path / "bad.npy"
    np.save(bad_shape, np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(DataError, match="shape"):
        benchmark(onnx_model, BenchConfig(power="none", input_path=str(bad_shape)))
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read"):
        benchmark(onnx_model, BenchConfig(power="none", input_path=str(pickled)))
    with pytest.raises(UnknownNameError):
        benchmark(onnx_model, BenchConfig(power="none", profile="jetsn-nano"))


def test_tensorrt_engine_without_tensorrt_names_how_to_install(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 16)
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(Exception, match="TensorRT"):
            benchmark(engine, BenchConfig(power="none"))
    else:  # pragma: no cover - only where TensorRT exists
        with pytest.raises(BenchError):
            benchmark(engine, BenchConfig(power="none"))


def test_power_from_an_external_meter_is_integrated_over_the_window(onnx_model, tmp_path):
    # A real child process stands in for a USB power meter (there is none here). It reads a
    # constant 7.5 W, so the net energy above idle must come out as exactly zero while the
    # gross energy per inference is 7.5 W x the measured time per inference.
    # (echo, not python: a python start-up per sample is too slow on a loaded machine)
    cfg = BenchConfig(timing=FAST, power="external", idle_seconds=1.0, energy_seconds=1.0,
                      power_options={"command": ["echo", "7.5"]})
    result = benchmark(onnx_model, cfg)
    power = result["power"]
    assert power["available"] is True, power
    assert power["sampler"] == "external"
    assert power["idle_w"] == pytest.approx(7.5) and power["load_w"] == pytest.approx(7.5)
    assert power["energy_per_inference_mj"] == pytest.approx(0.0, abs=1e-9)
    per_inference_s = power["load_seconds"] / power["load_inferences"]
    assert power["gross_energy_per_inference_mj"] == pytest.approx(7.5 * per_inference_s * 1e3)
    assert power["sample_rate_hz"] > 1


def test_torch_eager_runner_from_a_module_and_from_a_pt2_file(tmp_path):
    torch = pytest.importorskip("torch")
    from edgekit.bench import benchmark_runner
    from edgekit.runtime.torch_eager import TorchRunner
    from tests.helpers import TINY_SHAPE as SHAPE
    from tests.helpers import tiny_net

    net = tiny_net()
    runner = TorchRunner.from_module(net, SHAPE, threads=1)
    result = benchmark_runner(runner, BenchConfig(timing=FAST, power="none"),
                              model={"name": "tiny", "sha256": None, "size_bytes": None})
    assert result["runtime"]["name"] == "torch" and result["model"]["precision"] == "fp32"
    archive = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(SHAPE),)), str(archive))
    from_file = benchmark(archive, BenchConfig(timing=FAST, power="none"))
    assert from_file["runtime"]["name"] == "torch"
    assert from_file["model"]["inputs"][0]["shape"] == list(SHAPE)


def test_rapl_counter_path_end_to_end_on_a_sysfs_tree(onnx_model, tmp_path):
    # No RAPL here: a thread advances a powercap tree's counter at 5 W (5 uJ per us), as
    # the kernel would, including a wrap at max_energy_range_uj. Energy comes from the
    # counter deltas; at constant power the net energy per inference is ~0.
    import threading
    import time

    zone = tmp_path / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    max_uj = 3_000_000  # wraps every 0.6 s at 5 W
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    counter = zone / "energy_uj"
    counter.write_text("0\n")
    stop = threading.Event()
    start = time.perf_counter()

    def advance() -> None:
        while not stop.is_set():
            uj = int((time.perf_counter() - start) * 5e6) % max_uj
            tmp = zone / "energy_uj.tmp"
            tmp.write_text(f"{uj}\n")
            tmp.replace(counter)
            time.sleep(0.002)

    thread = threading.Thread(target=advance, daemon=True)
    thread.start()
    try:
        cfg = BenchConfig(timing=FAST, power="rapl", idle_seconds=1.0, energy_seconds=1.0,
                          power_options={"root": str(tmp_path / "powercap")})
        power = benchmark(onnx_model, cfg)["power"]
    finally:
        stop.set()
        thread.join()
    assert power["available"] is True, power
    assert power["energy_source"] == "counter"
    assert power["idle_w"] == pytest.approx(5.0, rel=0.1)
    assert power["load_w"] == pytest.approx(5.0, rel=0.1)
    per_inference_mj = power["gross_energy_per_inference_mj"]
    assert abs(power["energy_per_inference_mj"]) < 0.2 * per_inference_mj
