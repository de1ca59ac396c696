"""NVML energy per inference of MobileNetV2 1.0 (224x224, random weights) in PyTorch CUDA.

fp32 and fp16, each through the harness (``TorchRunner`` + ``benchmark_runner``) with the
NVML sampler: idle baseline first, then warm-up, timed runs and a fixed energy window; the
idle power is subtracted. Uses the GPU's total-energy counter where the GPU has one.
Needs a CUDA GPU, PyTorch with CUDA and nvidia-ml-py; on a machine without them it says so
and exits 2 (it never prints a number it did not measure).

Usage: python benchmarks/nvml_energy.py [--json PATH] [--batch 1] [--energy-seconds 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgekit.bench import BenchConfig, TimingConfig, benchmark_runner
from edgekit.core.io import atomic_write_json
from edgekit.runtime.torch_eager import TorchRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import mobilenet_v2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write results JSON here")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--energy-seconds", type=float, default=10.0)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing measured", file=sys.stderr)
        return 2
    model, source = mobilenet_v2()
    metrics: dict[str, Any] = {}
    results = {}
    for precision, dtype in (("fp32", "float32"), ("fp16", "float16")):
        runner = TorchRunner.from_module(model, (args.batch, 3, 224, 224), device="cuda",
                                         dtype=dtype)
        cfg = BenchConfig(power="nvml", idle_seconds=args.idle_seconds,
                          energy_seconds=args.energy_seconds, precision=precision,
                          profile=None, label=f"MobileNetV2 torch CUDA {precision}",
                          timing=TimingConfig(runs=args.runs))
        result = benchmark_runner(runner, cfg, model={"name": "mobilenet_v2", "sha256": None,
                                                      "size_bytes": None})
        results[precision] = result
        power = result["power"]
        metrics[f"{precision}_p50_ms"] = result["latency_ms"]["p50"]
        if power["available"]:
            metrics[f"{precision}_energy_mj"] = power["energy_per_inference_mj"]
            metrics[f"{precision}_energy_mj_uncertainty"] = power[
                "energy_per_inference_mj_uncertainty"]
            metrics[f"{precision}_idle_w"] = power["idle_w"]
            metrics[f"{precision}_load_w"] = power["load_w"]
            energy = (f"{power['energy_per_inference_mj']:.3f} ± "
                      f"{power['energy_per_inference_mj_uncertainty']:.3f} mJ/inference above "
                      f"idle ({power['idle_w']:.1f} W idle, {power['load_w']:.1f} W load, "
                      f"{power['energy_source']})")
        else:
            energy = f"power unavailable ({power['reason']})"
        print(f"MobileNetV2 CUDA {precision}: p50 {result['latency_ms']['p50']:.3f} ms; {energy}")
    gpu = results["fp32"]["power"].get("gpu") or torch.cuda.get_device_name(0)
    if args.json:
        from _provenance import run_info

        atomic_write_json(args.json, {**run_info("nvml_energy", None), "gpu": gpu,
                                      "mobilenet_v2_source": source, "batch": args.batch,
                                      "metrics": metrics, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
