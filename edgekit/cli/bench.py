"""`edgekit bench`, `edgekit report` and `edgekit devices`: parsing only, the API does the work.

Imports stay inside the handlers so that `edgekit bench model.onnx` on a board loads numpy
and the one runtime it needs, nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgekit.cli.ssh import add_ssh_arguments, ssh_options
from edgekit.core.errors import InvalidInputError
from edgekit.core.io import atomic_write_bytes, check_writable

# (flag, attribute) pairs forwarded to the remote agent; file-valued flags are copied over.
_FORWARDED = [("--runtime", "runtime"), ("--device", "device"), ("--threads", "threads"),
              ("--runs", "runs"), ("--warmup", "warmup"), ("--seed", "seed"),
              ("--batch", "batch"), ("--atol", "atol"), ("--rtol", "rtol"),
              ("--power", "power"), ("--power-command", "power_command"),
              ("--idle-seconds", "idle_seconds"), ("--energy-seconds", "energy_seconds"),
              ("--profile", "profile"), ("--precision", "precision"), ("--label", "label")]
_FILE_FLAGS = [("--input", "input"), ("--reference", "reference")]


def register(sub: Any) -> None:
    bench = sub.add_parser("bench", help="measure latency (and power) of a model file",
                           description="Measure latency, throughput, memory and energy per "
                           "inference of an .onnx/.tflite/.engine/.plan/.pt2 file, here or "
                           "over SSH.")
    bench.add_argument("model", help="model file (.onnx, .tflite, .engine, .plan, .pt2)")
    bench.add_argument("--runtime", help="onnxruntime, litert, tensorrt or torch "
                       "(default: from the suffix)")
    bench.add_argument("--device", default="cpu", help="cpu, cuda or tensorrt (ORT provider)")
    bench.add_argument("--threads", type=int, help="intra-op threads (default: runtime's)")
    bench.add_argument("--no-xnnpack", action="store_true", help="LiteRT: reference kernels")
    bench.add_argument("--runs", type=int, default=100, help="timed runs (default 100)")
    bench.add_argument("--warmup", type=int, help="fixed warm-up runs (default: until steady)")
    bench.add_argument("--seed", type=int, default=0, help="seed of inputs and bootstrap")
    bench.add_argument("--batch", type=int, default=1, help="size of a dynamic batch dimension")
    bench.add_argument("--input", help=".npy/.npz input data instead of random")
    bench.add_argument("--reference", help=".npy expected first output; checked once")
    bench.add_argument("--atol", type=float, default=1e-3)
    bench.add_argument("--rtol", type=float, default=1e-3)
    bench.add_argument("--power", default="auto", help="auto, none, nvml, jetson-hwmon, "
                       "jetson-ina3221x, tegrastats, rapl, external")
    bench.add_argument("--power-command", help="external meter command printing watts")
    bench.add_argument("--power-root", help="sysfs root of the power sensor (testing)")
    bench.add_argument("--idle-seconds", type=float, default=2.0, help="idle baseline window")
    bench.add_argument("--energy-seconds", type=float, default=3.0, help="energy window")
    bench.add_argument("--profile", help="device profile name or alias (recorded)")
    bench.add_argument("--precision", help="fp32/fp16/int8 label when not detectable")
    bench.add_argument("--label", help="free-form label for reports")
    bench.add_argument("--json", metavar="PATH", help="write the result JSON ('-' = stdout)")
    add_ssh_arguments(bench)
    bench.set_defaults(func=run_bench)

    report = sub.add_parser("report", help="Markdown + HTML report from result files")
    report.add_argument("results", nargs="+", help="result JSON files")
    report.add_argument("--out", required=True, help="output folder")
    report.set_defaults(func=run_report)

    devices = sub.add_parser("devices", help="list device profiles, show one, or compare a "
                             "model file across them")
    devices.add_argument("name", nargs="?", help="profile name or alias")
    devices.add_argument("--compare", metavar="MODEL_FILE",
                         help=".onnx/.tflite file: latency, throughput and energy on every "
                         "profile, measured where --results has it, else estimated")
    devices.add_argument("--results", metavar="DIR",
                         help="with --compare: folder of `edgekit bench` result JSON to merge")
    devices.add_argument("--plot", metavar="PNG",
                         help="with --compare: also write the comparison as a bar chart "
                         "(needs the `report` extra)")
    devices.add_argument("--include-unmeasured", action="store_true",
                         help="with --compare: also the profiles with no published points "
                         "of their own (estimates transferred from devices of their runtime)")
    devices.add_argument("--model", metavar="MODEL_FILE",
                         help="with a profile name: its calibrated estimate for this file")
    devices.add_argument("--macs", type=float,
                         help="with --bytes: roofline lower bound (not a latency estimate)")
    devices.add_argument("--bytes", type=float, dest="bytes_moved")
    devices.add_argument("--precision", default="fp32", help="precision of --macs/--bytes")
    devices.add_argument("--json", action="store_true", help="print JSON")
    devices.add_argument("--result", metavar="PATH",
                         help="with --model: write the estimate as a result record")
    devices.add_argument("--model-name", help="model name for --result (default: file name)")
    devices.set_defaults(func=run_devices)


def _agent_args(args: argparse.Namespace) -> list[str]:
    out = []
    for flag, attr in _FORWARDED:
        value = getattr(args, attr)
        if value is not None:
            out += [flag, str(value)]
    if args.no_xnnpack:
        out.append("--no-xnnpack")
    return out


def _config(args: argparse.Namespace) -> Any:
    from edgekit.bench import BenchConfig, TimingConfig

    power_options: dict[str, Any] = {}
    if args.power_command:
        power_options["command"] = args.power_command
    if args.power_root:
        power_options["root"] = args.power_root
    return BenchConfig(
        runtime=args.runtime, device=args.device, threads=args.threads,
        xnnpack=not args.no_xnnpack,
        timing=TimingConfig(runs=args.runs, warmup=args.warmup, seed=args.seed),
        batch=args.batch, input_path=args.input, reference_path=args.reference,
        atol=args.atol, rtol=args.rtol, power_options=power_options,
        # A meter command with the default --power means "use that meter".
        power="external" if args.power_command and args.power == "auto" else args.power,
        idle_seconds=args.idle_seconds, energy_seconds=args.energy_seconds,
        profile=args.profile, precision=args.precision, label=args.label,
    )


def run_bench(args: argparse.Namespace) -> int:
    check_writable(None if args.json == "-" else args.json)  # "-" is stdout
    if args.remote and args.inventory:
        raise InvalidInputError("give --remote or --inventory, not both")
    files = {flag: getattr(args, attr) for flag, attr in _FILE_FLAGS if getattr(args, attr)}
    if args.remote or args.inventory:
        from edgekit.bench import remote

        opts = ssh_options(args)
        if args.remote:
            target = remote.SSHTarget.parse(args.remote)
            result: Any = remote.run_remote(target, args.model, _agent_args(args), opts,
                                            extra_files=files)
        else:
            hosts = remote.load_inventory(args.inventory, opts)
            result = remote.run_fleet(hosts, args.model, _agent_args(args), extra_files=files)
    else:
        from edgekit.bench import benchmark

        result = benchmark(args.model, _config(args))
    _emit(result, args.json)
    failed = _failed(result)
    return 1 if failed else 0


def _failed(result: Any) -> bool:
    items = result.values() if "schema_version" not in result else [result]
    return any("error" in r or (r.get("reference_check") or {}).get("passed") is False
               for r in items)


def _emit(result: Any, json_path: str | None) -> None:
    from edgekit.core.io import atomic_write_json

    summary = sys.stderr if json_path == "-" else sys.stdout
    items = [("", result)] if "schema_version" in result else list(result.items())
    for name, item in items:
        print(_summary_line(name, item), file=summary)
    if json_path == "-":
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif json_path:
        atomic_write_json(json_path, result)


def _summary_line(name: str, r: dict[str, Any]) -> str:
    prefix = f"{name}: " if name else ""
    if "error" in r:
        return f"{prefix}FAILED: {r['error']}"
    lat = r["latency_ms"]
    power = r["power"]
    energy = (f"{power['energy_per_inference_mj']:.3f} ± "
              f"{power['energy_per_inference_mj_uncertainty']:.3f} mJ/inference "
              f"({power['sampler']}, {power['sample_rate_hz']:.0f} Hz)"
              if power["available"] else f"power: unavailable ({power['reason']})")
    check = ""
    if r.get("reference_check"):
        ref = r["reference_check"]
        check = f"; reference {'OK' if ref['passed'] else 'MISMATCH'} " \
                f"(max abs err {ref['max_abs_err']:.3g})"
    return (f"{prefix}{r['model']['name']} [{r['runtime']['name']}] measured: p50 "
            f"{lat['p50']:.3f} ms (95% CI {lat['median_ci95'][0]:.3f}-"
            f"{lat['median_ci95'][1]:.3f}), p90 {lat['p90']:.3f}, p99 {lat['p99']:.3f}, "
            f"{r['throughput_ips']:.1f} inf/s; {energy}{check}")


def run_report(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="dir")
    from edgekit.bench.report import write_report

    paths = write_report([Path(p) for p in args.results], Path(args.out))
    for path in paths:
        print(path)
    return 0


def run_devices(args: argparse.Namespace) -> int:
    check_writable(args.result)
    check_writable(args.plot)
    from edgekit.devices import get_profile, list_profiles

    if args.plot and not args.compare:
        raise InvalidInputError("--plot draws the comparison: give --compare MODEL_FILE")
    if args.include_unmeasured and not args.compare:
        raise InvalidInputError("--include-unmeasured widens the comparison: give --compare "
                                "MODEL_FILE")
    if args.compare:
        return _compare(args)
    if args.result and not args.model:
        raise InvalidInputError("--result writes a calibrated estimate: give --model FILE")
    if args.name is None:
        profiles = [get_profile(n) for n in list_profiles()]
        if args.json:
            print(json.dumps([p.to_dict() for p in profiles], indent=2))
            return 0
        from edgekit.devices.calibrated import MIN_POINTS, own_points

        print(f"{'name':18} {'runtime':12} {'precisions':16} {'points':>6}  {'aliases'}")
        for p in profiles:
            n = own_points(p.name)
            note = "" if n >= MIN_POINTS else "  (no published points of its own: left out " \
                "of --compare unless --include-unmeasured)"
            print(f"{p.name:18} {p.runtime:12} {','.join(p.precisions):16} {n:>6}  "
                  f"{', '.join(p.aliases)}{note}")
        return 0
    profile = get_profile(args.name)
    data: dict[str, Any] = {"profile": profile.to_dict()}
    if args.macs is not None or args.bytes_moved is not None:
        if args.macs is None or args.bytes_moved is None:
            raise InvalidInputError("a roofline bound needs both --macs and --bytes")
        from edgekit.devices import roofline_bound

        data["roofline_lower_bound"] = roofline_bound(profile, args.macs, args.bytes_moved,
                                                      args.precision).to_dict()
    if args.model:
        from edgekit.bench.estimated import estimated_result

        record = estimated_result(profile.name, args.model, model_name=args.model_name)
        data["estimate"] = record["estimate"]
        if args.result:
            from edgekit.core.io import atomic_write_json

            atomic_write_json(args.result, record)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for key, value in data["profile"].items():
        print(f"{key:26} {value}")
    if "roofline_lower_bound" in data:
        e = data["roofline_lower_bound"]
        print(f"roofline lower bound ({e['method']}): {e['latency_ms']:.4f} ms, "
              f"{e['bound']}-bound; real kernels are slower: use --model FILE for an estimate")
    if "estimate" in data:
        print(f"{Path(args.model).name}: {data['estimate']['text']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from edgekit.bench.compare import compare_devices, plot_png, table_lines

    results = None
    if args.results:
        from edgekit.bench.results import load_results

        folder = Path(args.results)
        if not folder.is_dir():
            raise InvalidInputError(f"--results {folder}: not a folder")
        results = load_results(sorted(folder.glob("*.json")))
    devices = [args.name] if args.name else None
    rows = compare_devices(args.compare, devices=devices, results=results,
                           include_unmeasured=args.include_unmeasured)
    if args.plot:
        atomic_write_bytes(args.plot, plot_png(rows, f"{Path(args.compare).name} on each "
                                               "device profile"))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{Path(args.compare).name}, batch 1 (interval: 10th-90th percentile of the "
              "model's leave-one-out errors; points: the device's own published points)")
        print("\n".join(table_lines(rows)))
    return 0
