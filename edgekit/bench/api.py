"""``benchmark(model_file, BenchConfig(...))``: the whole measurement, returning a result record.

This module is the device-side agent: it imports numpy and, inside the chosen runner, the
one runtime it needs. Never torch/onnx/nncf here (a test checks ``sys.modules``).
"""

from __future__ import annotations

import datetime as _dt
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bench.inputs import file_inputs, load_array_file, random_inputs
from edgekit.bench.memory import MemoryWindow
from edgekit.bench.results import SCHEMA_VERSION, validate_result
from edgekit.bench.timing import TimingConfig, summarize, time_once, time_runs, warm_up
from edgekit.core.errors import DataError, InvalidInputError
from edgekit.core.io import sha256_file
from edgekit.devices import state as machine_state
from edgekit.devices.power import PowerMonitor, PowerUnavailable, open_sampler, summarize_energy
from edgekit.devices.power import unavailable as power_unavailable
from edgekit.runtime.base import Runner
from edgekit.runtime.registry import runner_class


@dataclass
class BenchConfig:
    """Every option of ``edgekit bench`` (the CLI flags map one to one onto these)."""

    runtime: str | None = None  # None: from the file suffix
    device: str = "cpu"  # cpu | cuda | tensorrt (onnxruntime EP)
    threads: int | None = None
    xnnpack: bool = True  # LiteRT only
    timing: TimingConfig = field(default_factory=TimingConfig)
    batch: int = 1
    input_path: str | None = None  # .npy / .npz; default: seeded random
    reference_path: str | None = None  # expected first output (.npy)
    atol: float = 1e-3
    rtol: float = 1e-3
    power: str = "auto"  # a sampler name, "auto" or "none"
    power_options: dict[str, Any] = field(default_factory=dict)  # the sampler's own keywords
    idle_seconds: float = 2.0
    energy_seconds: float = 3.0
    profile: str | None = None
    precision: str | None = None  # fp32/fp16/int8; detected where the runtime can tell
    label: str | None = None
    progress: bool = True  # warm-up and timing progress with an ETA, on a terminal only
    # Where the machine is looked at: state probes and power samplers read sysfs under
    # sys_root and run nvpmodel/tegrastats/vcgencmd from tool_dirs (None: PATH; (): nowhere).
    sys_root: str = "/sys"
    proc_root: str = "/proc"
    tool_dirs: tuple[str, ...] | None = None


def benchmark(model_path: str | Path, config: BenchConfig | None = None) -> dict[str, Any]:
    """Measure ``model_path`` with the runtime its suffix (or ``config.runtime``) names."""
    config = config or BenchConfig()
    path = Path(model_path)
    if not path.is_file():
        raise DataError(f"model file {path} does not exist")
    cls = runner_class(config.runtime, path)
    runner = cls(path, threads=config.threads, device=config.device,
                 options={"xnnpack": config.xnnpack})
    model = {"name": path.name, "sha256": sha256_file(path), "size_bytes": path.stat().st_size}
    return benchmark_runner(runner, config, model=model)


def benchmark_runner(
    runner: Runner, config: BenchConfig, *, model: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Measure an already constructed runner (e.g. ``TorchRunner.from_module``)."""
    if config.profile:
        from edgekit.devices import get_profile

        get_profile(config.profile)  # fail early on a bad name
    roots = {"sys_root": Path(config.sys_root), "proc_root": Path(config.proc_root)}
    before = machine_state.snapshot(**roots, tool_dirs=config.tool_dirs)

    memory = MemoryWindow()
    memory.start()  # the peak from here on is the benchmark's, not the process's lifetime
    start = time.perf_counter_ns()
    runner.load()
    specs = runner.input_specs()
    init_ns = time.perf_counter_ns() - start
    if config.input_path:
        inputs, source = file_inputs(specs, config.input_path), Path(config.input_path).name
    else:
        inputs = random_inputs(specs, seed=config.timing.seed, batch=config.batch)
        source = f"random normal, seed {config.timing.seed}"
    runner.set_inputs(inputs)
    first_ns = time_once(runner.run)
    reference = _check_reference(runner, config) if config.reference_path else None

    sampler = None
    if config.power == "none":
        power: dict[str, Any] = power_unavailable("disabled (--power none)")
    else:
        try:
            where = {"sys_root": config.sys_root, "tool_dirs": config.tool_dirs}
            sampler = open_sampler(config.power, **{**where, **config.power_options})
        except PowerUnavailable as exc:
            power = power_unavailable(str(exc))
    if sampler is None:
        warm = warm_up(runner.run, config.timing, progress=config.progress)
        samples = time_runs(runner.run, config.timing.runs, progress=config.progress)
    else:
        try:
            with PowerMonitor(sampler) as monitor:
                warm, samples, power = _measure_with_power(runner, config, sampler, monitor)
        finally:
            sampler.close()  # e.g. stops a tegrastats child even when a run fails

    memory_fields = memory.result()
    latency = summarize(samples, config.timing)
    precision = config.precision or runner.detected_precision()
    result = {
        "schema_version": SCHEMA_VERSION,
        "kind": "measured",
        "label": config.label,
        "edgekit_version": _edgekit_version(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": before["hostname"],
        "model": {**(model or {"name": str(runner.path), "sha256": None, "size_bytes": None}),
                  "precision": precision,
                  "inputs": [{"name": s.name, "shape": list(a.shape), "dtype": str(a.dtype)}
                             for s, a in zip(specs, inputs, strict=True)]},
        "runtime": runner.info(),
        "device": {"profile": config.profile, "arch": platform.machine()},
        "config": {**asdict(config.timing), "batch": config.batch, "input": source,
                   "power": config.power, "idle_seconds": config.idle_seconds,
                   "energy_seconds": config.energy_seconds},
        "warmup": warm,
        "latency_ms": latency,
        "throughput_ips": config.batch * 1e3 / latency["p50"] if latency["p50"] > 0 else None,
        "init_ms": init_ns / 1e6,
        "first_run_ms": first_ns / 1e6,
        "memory": {**memory_fields, "gpu_bytes": runner.gpu_memory_bytes()},
        "power": power,
        "reference_check": reference,
        "state_before": before,
        "state_after": {"temperatures_c": machine_state.temperatures(roots["sys_root"]),
                        "throttle_counts": machine_state.throttle_counts(roots["sys_root"])},
    }
    runner.close()
    return validate_result(result)


def _measure_with_power(
    runner: Runner, config: BenchConfig, sampler: Any, monitor: PowerMonitor
) -> tuple[dict[str, Any], np.ndarray, dict[str, Any]]:
    """Idle baseline, then warm-up and latency runs, then a fixed-length energy window."""
    clock = time.perf_counter_ns
    idle_start, idle_energy0 = clock(), sampler.read_energy_j()
    time.sleep(config.idle_seconds)
    idle_end, idle_energy1 = clock(), sampler.read_energy_j()
    warm = warm_up(runner.run, config.timing, progress=config.progress)
    samples = time_runs(runner.run, config.timing.runs, progress=config.progress)
    # Energy needs a window long enough for the sensor rate, independent of --runs.
    load_energy0, load_start = sampler.read_energy_j(), clock()
    deadline, count = load_start + int(config.energy_seconds * 1e9), 0
    while clock() < deadline:
        runner.run()
        count += 1
    load_end, load_energy1 = clock(), sampler.read_energy_j()
    try:
        if monitor.errors:
            raise PowerUnavailable(monitor.errors[0])
        power = summarize_energy(
            monitor.window(idle_start, idle_end), monitor.window(load_start, load_end),
            idle_s=(idle_end - idle_start) / 1e9, load_s=(load_end - load_start) / 1e9,
            inferences=count * config.batch,
            idle_energy_j=_delta(idle_energy0, idle_energy1),
            load_energy_j=_delta(load_energy0, load_energy1),
        )
        power.update(sampler.describe())
    except PowerUnavailable as exc:
        power = power_unavailable(f"{sampler.name}: {exc}")
    return warm, samples, power


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _check_reference(runner: Runner, config: BenchConfig) -> dict[str, Any]:
    expected = load_array_file(config.reference_path)  # type: ignore[arg-type]
    if not isinstance(expected, np.ndarray):
        raise DataError("the reference must be a single .npy array (the first output)")
    got = runner.outputs()[0]
    if got.shape != expected.shape:
        raise InvalidInputError(f"reference shape {expected.shape} != output shape {got.shape}")
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    tolerance = config.atol + config.rtol * np.abs(expected.astype(np.float64))
    return {"file": Path(config.reference_path).name, "max_abs_err": float(diff.max()),  # type: ignore[arg-type]
            "atol": config.atol, "rtol": config.rtol, "passed": bool(np.all(diff <= tolerance))}


def _edgekit_version() -> str:
    from edgekit import __version__

    return __version__
