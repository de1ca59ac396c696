"""How good are edgekit's device estimates? Leave-one-out error per device, and estimated vs
measured on this host for the zoo families.

1. Layer records of the models in the published points (edgekit/devices/published/*.toml):
   each architecture is built in torch (benchmarks/_published_models.py), exported to ONNX
   and read by ``edgekit.bench.layers``; ``--refresh-layers`` rewrites
   edgekit/devices/published/layers.json (package data; the estimates read it at run time).
2. Per device with >= 5 published points: the latency model is fitted on them and each
   point is predicted by a refit without it (``loo_median_ratio_error``: the median of
   max(est/meas, meas/est) over those folds); devices with measured power runs
   (published/power/, benchmarks/mlperf_power.py) get ``energy_loo_median_ratio_error``
   of their idle + dynamic power model; ``desktop_vs_orin_nano_latency_ratio``: MobileNetV2
   (1.0, 224 px) int8 on the Jetson Orin Nano over the report's GPU, with its interval.
3. This host (the x86-cpu profile): the zoo families at 224 px, fp32 and int8, in
   onnxruntime (edgekit's onnxruntime-target file) and LiteRT (edgekit's TFLite file), each
   timed by ``edgekit bench`` in a process of its own (batch 1, ``--threads``); the host
   model is fitted on those points, ``host_median_ratio_error`` is its leave-one-out error,
   and the points are written to edgekit/devices/published/x86-cpu.toml with
   ``--write-host`` (run it under the exclusive CPU lock: the figures are timings).

    python benchmarks/estimates.py --json docs/results/estimates.json --out /tmp/est
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "edgekit" / "devices" / "published"
HOST_FAMILIES = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                 "shufflenet_v1", "shufflenet_v2_x1_0", "squeezenet1_1")
FILES = {"ort_fp32": "fp32.onnx", "ort_int8": "int8.onnx", "tflite_fp32": "fp32.tflite",
         "tflite_int8": "int8.tflite"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    p.add_argument("--out", required=True, help="folder for exported files")
    p.add_argument("--refresh-layers", action="store_true",
                   help="rebuild published/layers.json from the torch architectures")
    p.add_argument("--families", default=",".join(HOST_FAMILIES))
    p.add_argument("--skip-host", action="store_true")
    p.add_argument("--write-host", action="store_true",
                   help="write the host points to edgekit/devices/published/x86-cpu.toml")
    p.add_argument("--prepare-only", action="store_true",
                   help="export the host files into --out and stop (no timing: run this part "
                        "under the shared CPU lock, the timing under the exclusive one)")
    p.add_argument("--host-from", metavar="QUANT_JSON",
                   help="take the host timings from benchmarks/quantization.py's speed part "
                        "(its 1-thread medians; files in --out) instead of timing here")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=30)
    return p


def published_models() -> list[str]:
    import tomllib

    names: set[str] = set()
    for path in PUBLISHED.glob("*.toml"):
        names |= {pt["model"] for pt in tomllib.loads(path.read_text())["point"]
                  if not pt["model"].startswith("host/")}
    return sorted(names)


def refresh_layers(out: Path) -> dict[str, Any]:
    import torch
    from _published_models import build

    from edgekit.bench.layers import layer_records

    layers_path = PUBLISHED / "layers.json"
    data = json.loads(layers_path.read_text()) if layers_path.is_file() else {"models": {}}
    data["about"] = ("layer records (edgekit.bench.layers) of the fp32 ONNX export of each "
                     "architecture in benchmarks/_published_models.py, batch 1; host/ entries: "
                     "the zoo files timed by benchmarks/estimates.py")
    for name in published_models():
        model, size = build(name)
        path = out / f"published-{name}.onnx"
        torch.onnx.export(model.eval(), torch.zeros(1, 3, size, size), str(path),
                          dynamo=False, opset_version=17)
        data["models"][name] = [r.to_dict() for r in layer_records(path)]
        print(f"layers {name}: {len(data['models'][name])}", flush=True)
    _write_json(layers_path, data)
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from edgekit.core.io import atomic_write_json

    atomic_write_json(path, data)


def host_files(name: str, out: Path) -> dict[str, Path]:
    """The four files of a family at 224 px (names as benchmarks/quantization.py's speed
    files, so files it left in --out are reused)."""
    from edgekit.calibration import calibration_crops
    from edgekit.export.onnx import export_onnx
    from edgekit.export.tflite import export_tflite
    from edgekit.models import create_model
    from edgekit.quantization import QuantConfig, quantize

    calib = calibration_crops(32, size=224, channels=3)
    model = create_model(name, num_classes=10, in_channels=3, input_size=224).eval()
    ptq = dict(mode="ptq", calibration_size=32, batch_size=8)
    makers = {
        "ort_fp32": lambda p: export_onnx(model, p, input_shape=(3, 224, 224)),
        "ort_int8": lambda p: export_onnx(quantize(model, QuantConfig(
            target="onnxruntime", **ptq), calib_data=calib), p),
        "tflite_fp32": lambda p: export_tflite(model, p, calibration=calib),
        "tflite_int8": lambda p: export_tflite(quantize(model, QuantConfig(
            target="tflite", **ptq), calib_data=calib), p, calibration=calib),
    }
    files = {}
    for key, make in makers.items():
        path = out / f"{name}-224.{FILES[key]}"
        if not path.is_file():
            make(path)
        files[key] = path
    return files


def host_points(families: list[str], out: Path, threads: int, runs: int
                ) -> list[dict[str, Any]]:
    from quantization import _median_ms  # edgekit bench in a process of its own

    from edgekit.bench.layers import layer_records

    points = []
    for name in families:
        try:
            files = host_files(name, out)
        except Exception as exc:  # a family edgekit cannot export is a result, not a crash
            points.append({"family": name, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        for key, path in files.items():
            records = layer_records(path)
            ms = _median_ms(path, threads, runs)
            points.append({"family": name, "file": key, "model": f"host/{path.name}",
                           "precision": "int8" if "int8" in key else "fp32",
                           "latency_ms": ms, "records": [r.to_dict() for r in records]})
            print(f"host {path.name:<40} {ms:9.3f} ms", flush=True)
    return points


def points_from_quantization(path: Path, out: Path, threads: int) -> list[dict[str, Any]]:
    """The speed figures of a benchmarks/quantization.py run (timed there by ``edgekit
    bench`` under the exclusive CPU lock) with the layer records of the files it timed."""
    from edgekit.bench.layers import layer_records

    speed = json.loads(path.read_text())["speed"]
    suffix = {**FILES, "ort_vendor": "ort_ptq.onnx", "ort_vendor_u8s8": "ort_ptq_u8s8.onnx",
              "tflite_vendor": "litert_ptq.tflite"}
    points = []
    for key, ms in sorted(speed.items()):
        name, kind, t = key.split(".")
        if t != f"t{threads}_ms":
            continue
        file = out / f"{name}-224.{suffix[kind]}"
        points.append({"family": name, "file": kind, "model": f"host/{file.name}",
                       "precision": "fp32" if kind.endswith("fp32") else "int8",
                       "latency_ms": ms,
                       "records": [r.to_dict() for r in layer_records(file)]})
    return points


def device_errors() -> dict[str, Any]:
    from edgekit.devices import list_profiles
    from edgekit.devices.calibrated import MIN_POINTS, calibration, default_devices
    from edgekit.devices.energy_model import power_model

    rows = {}
    shown = default_devices()
    for name in list_profiles():
        if name == "x86-cpu":
            continue
        cal = calibration(name)
        power = power_model(name)
        rows[name] = {"points": cal.points, "source": cal.source,
                      "default_comparison": name in shown,
                      "energy_points": power.points if power else 0,
                      "energy_loo_median_ratio_error": (round(power.loo_median_ratio_error, 3)
                                                        if power else None),
                      "energy_interval_factors": power.interval_factors() if power else None,
                      "power_model": ({"idle_w": power.idle_w, "dynamic_w": power.dynamic_w}
                                      if power else None),
                      "loo_median_ratio_error": (round(cal.loo_median_ratio_error, 3)
                                                 if cal.loo_median_ratio_error else None),
                      "leave_model_out": (round(cal.loo_model_median_ratio_error, 3)
                                          if cal.loo_model_median_ratio_error else None),
                      "interval_factors": cal.interval_factors(),
                      "constants": cal.constants.to_dict(),
                      "calibrated": cal.points >= MIN_POINTS}
        print(f"{name:<18} points={cal.points:<3} loo_median_ratio_error="
              f"{rows[name]['loo_median_ratio_error']} energy_points="
              f"{rows[name]['energy_points']} energy_loo="
              f"{rows[name]['energy_loo_median_ratio_error']} ({cal.source})", flush=True)
    return rows


def desktop_vs_orin_nano(out: Path) -> dict[str, Any]:
    """MobileNetV2 (1.0, 224 px) as an int8 graph: the report's GPU against the Jetson Orin
    Nano. The Orin Nano has no published points of its own, so its figure is transferred
    (labelled); the ratio's interval combines both intervals' extremes."""
    from edgekit.bench.compare import DESKTOP_GPU
    from edgekit.devices.calibrated import as_precision, estimate, published_layers

    records = as_precision(published_layers()["mobilenet_v2_1.0_224"], "int8")
    gpu, nano = estimate(DESKTOP_GPU, records), estimate("jetson-orin-nano", records)
    ratio = nano.latency_ms / gpu.latency_ms
    low = high = None
    if None not in (gpu.low_ms, gpu.high_ms, nano.low_ms, nano.high_ms):
        low, high = nano.low_ms / gpu.high_ms, nano.high_ms / gpu.low_ms
    print(f"MobileNetV2-224 int8: {DESKTOP_GPU} {gpu.text()}; jetson-orin-nano {nano.text()}; "
          f"Orin Nano / GPU latency ratio {ratio:.2f} ({low}–{high})", flush=True)
    return {"model": "mobilenet_v2_1.0_224 int8", "gpu": DESKTOP_GPU, "ratio": ratio,
            "interval": [low, high], "gpu_estimate": gpu.to_dict(),
            "orin_nano_estimate": nano.to_dict()}


def host_fit(points: list[dict[str, Any]]) -> dict[str, Any]:
    from edgekit.devices import get_profile
    from edgekit.devices.latency_model import LayerRecord, calibrate

    ok = [p for p in points if "error" not in p]
    models = [[LayerRecord.from_dict(r) for r in p["records"]] for p in ok]
    cal = calibrate(get_profile("x86-cpu"), models, [p["latency_ms"] / 1e3 for p in ok],
                    source="measured on this host", groups=[p["family"] for p in ok])
    rows = []
    for p, r in zip(ok, cal.loo_log_residuals, strict=True):
        rows.append({"file": p["model"], "measured_ms": round(p["latency_ms"], 3),
                     "loo_estimate_ms": round(p["latency_ms"] / math.exp(r), 3)})
        print(f"{p['model']:<48} measured {p['latency_ms']:8.3f}  leave-one-out estimate "
              f"{rows[-1]['loo_estimate_ms']:8.3f} ms", flush=True)
    return {"cal": cal, "rows": rows}


def write_host_toml(points: list[dict[str, Any]], threads: int, flags: list[str],
                    how: str) -> None:
    import platform

    lines = ["# Latencies of edgekit's zoo files measured by edgekit on the development host,",
             "# to fit the x86-cpu profile's latency model (measured, not published).",
             f"# benchmarks/estimates.py --write-host; edgekit bench --threads {threads}, "
             "batch 1, p50.", 'device = "x86-cpu"', ""]
    for p in points:
        if "error" in p:
            continue
        lines += ["[[point]]", f'model = "{p["model"]}"', f'precision = "{p["precision"]}"',
                  "batch = 1", f"latency_ms = {p['latency_ms']:.6g}",
                  f'published = "edgekit bench p50 {p["latency_ms"]:.4f} ms"',
                  f'source = "measured on {platform.node()}, {platform.machine()}, '
                  f'flags {" ".join(flags)}"',
                  f'round = "{how}"', ""]
    (PUBLISHED / "x86-cpu.toml").write_text("\n".join(lines))
    layers_path = PUBLISHED / "layers.json"
    data = json.loads(layers_path.read_text())
    for p in points:
        if "error" not in p:
            data["models"][p["model"]] = p["records"]
    _write_json(layers_path, data)


def main() -> int:
    args = _parser().parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _provenance import cpu_flags, run_info

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.refresh_layers:
        refresh_layers(out)
    if args.prepare_only:
        for name in [f for f in args.families.split(",") if f]:
            try:
                print(name, sorted(p.name for p in host_files(name, out).values()), flush=True)
            except Exception as exc:  # reported again (as an error row) by the timed run
                print(f"{name}: {type(exc).__name__}: {exc}"[:300], flush=True)
        return 0
    result: dict[str, Any] = {**run_info("estimates", None, torch_threads=args.threads),
                              "cpu_flags": cpu_flags(), "threads": args.threads}
    result["devices"] = device_errors()
    metrics: dict[str, Any] = {}
    for name, row in result["devices"].items():
        metrics[f"{name}.points"] = row["points"]
        metrics[f"{name}.default_comparison"] = row["default_comparison"]
        if row["points"]:
            metrics[f"{name}.loo_median_ratio_error"] = row["loo_median_ratio_error"]
            metrics[f"{name}.leave_model_out_median_ratio_error"] = row["leave_model_out"]
        else:  # borrowed constants: the error of predicting one donor from the others
            metrics[f"{name}.leave_device_out_median_ratio_error"] = row[
                "loo_median_ratio_error"]
        if row["energy_points"]:
            metrics[f"{name}.energy_points"] = row["energy_points"]
            metrics[f"{name}.energy_loo_median_ratio_error"] = row[
                "energy_loo_median_ratio_error"]
    result["desktop_vs_orin_nano"] = desktop_vs_orin_nano(out)
    ratio = result["desktop_vs_orin_nano"]
    metrics["desktop_vs_orin_nano_latency_ratio"] = round(ratio["ratio"], 3)
    metrics["desktop_vs_orin_nano_latency_ratio_low"] = (
        round(ratio["interval"][0], 3) if ratio["interval"][0] else None)
    metrics["desktop_vs_orin_nano_latency_ratio_high"] = (
        round(ratio["interval"][1], 3) if ratio["interval"][1] else None)
    metrics["desktop_vs_orin_nano_gpu"] = ratio["gpu"]
    metrics["orin_nano_basis"] = ratio["orin_nano_estimate"]["source"]
    metrics["gpu_measured"] = False  # no GPU machine in this run: nothing timed on a GPU
    if not args.skip_host:
        points = (points_from_quantization(Path(args.host_from), out, args.threads)
                  if args.host_from else
                  host_points([f for f in args.families.split(",") if f], out, args.threads,
                              args.runs))
        result["host_timings_from"] = args.host_from or "timed here"
        fit = host_fit(points)
        result["host"] = {"points": fit["rows"], "errors": [p for p in points if "error" in p],
                          "constants": fit["cal"].constants.to_dict()}
        metrics["host.points"] = fit["cal"].points
        metrics["host_median_ratio_error"] = round(fit["cal"].loo_median_ratio_error, 3)
        by_family = fit["cal"].loo_model_median_ratio_error
        metrics["host_leave_family_out_median_ratio_error"] = (round(by_family, 3)
                                                               if by_family else None)
        if args.write_host:
            where = "benchmarks/quantization.py speed part" if args.host_from else \
                "benchmarks/estimates.py"
            how = f"{where} (exclusive CPU lock), 2026-12-03"
            write_host_toml(points, args.threads, cpu_flags(), how)
    result["metrics"] = metrics
    print(json.dumps(metrics, indent=2))
    if args.json:
        _write_json(Path(args.json), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
