"""onnxruntime at 224 px, one thread: fp32 vs edgekit's deployed int8 vs the vendor's
quantize_static files, every zoo family, ratios measured in one run on this CPU.

Per family (3x224x224, 10 classes, untrained weights: latency does not depend on them;
int8 by PTQ calibration on 32 scikit-learn photo crops):
  * ``fp32``: edgekit's float export;
  * ``int8``: edgekit's onnxruntime-target file (``--target onnxruntime``, what
    ``edgekit compress --target x86-cpu`` deploys), verified against its quantized torch
    model on 64 other photo crops (``verify_agreement``: top-1 agreement, edgekit's
    ``verify`` with onnxruntime's fused kernels);
  * ``vendor_u8s8``: onnxruntime's advice for x86 (``quant_pre_process``, U8S8,
    ``reduce_range`` only without VNNI);
  * ``vendor_s8s8``: ``quantize_static``'s defaults (S8S8), labelled beside it.
``vendor_best`` is the faster of the two vendor files, family by family (of the one that
can be made where onnxruntime's tool fails on the other: ``vendor_*_error``).

Timing: the four files of a family are open at once; ``--rounds`` times, each file in turn
runs ``--runs`` batch-1 calls on one seeded input after a warm-up, and the median call of
each round is kept; the figure is the median over rounds. This machine is shared (other
jobs load its 2 cores), so absolute times drift by 2x and more between minutes; the
interleaving is there so the *ratios* of one family compare files under the same load.

``fused`` counts come from onnxruntime's optimized graph (``optimized_model_filepath``):
convs and Gemms onnxruntime runs as int8 kernels (QLinearConv, QGemm, ...) against float
Conv/Gemm nodes left in the int8 file. ``--layers FAMILY`` adds the per-layer table of
that family (``edgekit.bench.layer_latency.compare_layers``, fp32 vs edgekit int8).
``--plan``: each family's measured keep-float plan (``QuantConfig.keep_float``: the blocks
whose int8 kernels the profiler timed slower than float), made, verified and timed again
with the other files (``planned_*``; ``plan_round.*`` are that second round's times).
``--max-drop PP``: each family's max-drop plan (``edgekit.quantization.plan_precision``:
slower-in-int8 blocks float, then the most harmful layers per MAC until the drop on 64
held-out crops is within PP), made, verified and timed with the others (``max_drop_*``),
and the fragile test model recovered under PP (``benchmarks/_precision_plan.py``); metrics
``drop_pp_max``, ``int8_mac_share_median``, ``deployed_over_fp32_bytes_median``,
``fragile_recovered_drop_pp``.

    python benchmarks/precision.py --out results/precision --json results/precision.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# sibling modules in benchmarks/, on sys.path when run as a script
from _precision_plan import fragile_recovered, max_drop_plan, plan_metrics
from _provenance import cpu_flags
from _quantization_outputs import has_vnni, ort_quantize_recommended, ort_quantize_static

FAMILIES = ("lenet5", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small",
            "mobilenet_v3_large", "shufflenet_v1", "shufflenet_v2_x1_0", "squeezenet1_1",
            "espnet", "espnetv2")
FILES = ("fp32", "int8", "vendor_u8s8", "vendor_s8s8")
SIZE = 224
INT8_KERNELS = {"QLinearConv", "QGemm", "QLinearMatMul", "ConvInteger", "MatMulInteger"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="directory for the ONNX files")
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated zoo names (default: one per family)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default: 5)")
    p.add_argument("--runs", type=int, default=20, help="timed calls per file and round")
    p.add_argument("--reuse-files", action="store_true",
                   help="time the files already in --out instead of making them again")
    p.add_argument("--layers", default="", help="family whose per-layer table is added")
    p.add_argument("--plan", action="store_true",
                   help="also make and time each family's measured keep-float plan")
    p.add_argument("--max-drop", type=float, metavar="PP",
                   help="also make and time each family's max-drop plan, and recover the "
                   "fragile test model, under this budget (percentage points)")
    return p


def main() -> int:
    args = _parser().parse_args()
    import torch
    from _provenance import run_info

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    flags = cpu_flags()
    result: dict[str, Any] = {
        **run_info("precision", None, torch_threads=1),
        "commit": _commit(), "date": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"),
        "cpu_flags": flags, "threads": 1, "input": [3, SIZE, SIZE],
        "rounds": args.rounds, "runs": args.runs, "families": {}, "metrics": {}}
    print(f"cpu flags: {' '.join(flags)}; vnni: {has_vnni(flags)}", flush=True)
    print(f"{'family':<20}{'fp32':>9}{'int8':>9}{'u8s8':>9}{'s8s8':>9}"
          f"{'vs fp32':>9}{'vs best':>9}{'fused':>8}{'agree':>8}", flush=True)
    for name in [n for n in args.families.split(",") if n]:
        t0 = time.perf_counter()
        try:
            row = _family(name, out, args, flags)
        except Exception as exc:  # one family's failure is a result too; keep going
            row = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        result["families"][name] = row
        print(_line(name, row), flush=True)
        result["metrics"] = _metrics(result["families"])
        _save(args.json, result)
    if args.max_drop is not None:
        result["fragile"] = fragile_recovered(args.max_drop)
        result["metrics"].update(_metrics(result["families"]),
                                 fragile_recovered_drop_pp=result["fragile"][
                                     "fragile_recovered_drop_pp"])
        print(f"fragile model: plain int8 -{result['fragile']['fragile_int8_drop_pp']} pp, "
              f"max-drop plan -{result['fragile']['fragile_recovered_drop_pp']} pp "
              f"(keep float {result['fragile']['fragile_keep_float']})", flush=True)
        _save(args.json, result)
    if args.layers:
        from edgekit.bench.layer_latency import compare_layers

        result["layers"] = {args.layers: compare_layers(
            out / f"{args.layers}-{SIZE}.fp32.onnx", out / f"{args.layers}-{SIZE}.int8.onnx",
            runs=args.runs, rounds=args.rounds)}
        _print_layers(result["layers"][args.layers])
    _save(args.json, result)
    print(json.dumps(result["metrics"], indent=2))
    return 0


def _family(name: str, out: Path, args: argparse.Namespace, flags: list[str]
            ) -> dict[str, Any]:
    paths = {key: out / f"{name}-{SIZE}.{key}.onnx" for key in FILES}
    row: dict[str, Any] = {}
    if not (args.reuse_files and paths["int8"].is_file()):
        row.update(_make_files(name, paths, flags))
    paths = {key: p for key, p in paths.items() if p.is_file()}
    ms = _interleaved_medians(paths, rounds=args.rounds, runs=args.runs)
    row.update({f"{key}_ms": round(v, 3) for key, v in ms.items()})
    best = min(v for key, v in ms.items() if key.startswith("vendor"))
    row["vendor_best_ms"] = round(best, 3)
    row["int8_vs_fp32"] = round(ms["fp32"] / ms["int8"], 3)
    row["int8_vs_vendor_best"] = round(best / ms["int8"], 3)
    if "vendor_u8s8" in ms:
        row["vendor_u8s8_vs_fp32"] = round(ms["fp32"] / ms["vendor_u8s8"], 3)
    for key in ("int8", "vendor_u8s8") if "vendor_u8s8" in paths else ("int8",):
        fused, left = _fused_kernels(paths[key])
        row[f"{key}_int8_kernels"], row[f"{key}_float_kernels"] = fused, left
    row["bytes"] = {key: p.stat().st_size for key, p in paths.items()}
    if args.plan:
        try:
            row.update(_planned(name, paths, args))
        except Exception as exc:  # the plan's failure must not lose the family's row
            row["plan_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if args.max_drop is not None:
        try:
            row.update(max_drop_plan(name, paths, args, lambda files: _interleaved_medians(
                files, rounds=args.rounds, runs=args.runs)))
        except Exception as exc:  # the plan's failure must not lose the family's row
            row["max_drop_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return row


def _planned(name: str, paths: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    """The family's keep-float plan: every model block whose int8 kernels were measured
    slower than its float ones (``compare_layers``, interleaved rounds, medians) stays float.
    The planned file is made, verified, and timed again beside the other four."""
    from edgekit.bench.layer_latency import compare_layers
    from edgekit.calibration import calibration_crops
    from edgekit.export.onnx import export_onnx
    from edgekit.export.verify import verify
    from edgekit.models import create_model
    from edgekit.quantization import QuantConfig, quantize

    model = create_model(name, num_classes=10, in_channels=3, input_size=SIZE).eval()
    modules = {m for m, _ in model.named_modules() if m}
    rows = compare_layers(paths["fp32"], paths["int8"], runs=args.runs, rounds=args.rounds)
    plan = sorted(str(r["layer"]) for r in rows if r["layer"] in modules
                  and 0 < float(r["fp32_us"]) < float(r["int8_us"]))
    # a block inside a kept one is kept with it
    plan = [m for m in plan if not any(m.startswith(k + ".") for k in plan)]
    out: dict[str, Any] = {"plan": plan}
    if not plan:
        return out
    calib = calibration_crops(32, size=SIZE, channels=3)
    qm = quantize(model, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=32,
                                     batch_size=8, keep_float=tuple(plan)), calib_data=calib)
    planned = paths["int8"].with_name(f"{name}-{SIZE}.planned.onnx")
    export_onnx(qm, planned)
    check = calibration_crops(64, size=SIZE, channels=3, seed=1)
    out["planned_verify_agreement"] = round(float(verify(planned, qm.model, check,
                                                         batch_size=16).agreement), 4)
    ms = _interleaved_medians({**paths, "planned": planned}, rounds=args.rounds, runs=args.runs)
    best = min(v for key, v in ms.items() if key.startswith("vendor"))
    out.update({f"plan_round.{key}_ms": round(v, 3) for key, v in ms.items()})
    out["planned_vs_fp32"] = round(ms["fp32"] / ms["planned"], 3)
    out["planned_vs_vendor_best"] = round(best / ms["planned"], 3)
    out["planned_vs_int8"] = round(ms["int8"] / ms["planned"], 3)
    return out


def _make_files(name: str, paths: dict[str, Path], flags: list[str]) -> dict[str, Any]:
    """Write the files; return the int8 file's agreement with its torch model, and why a
    vendor file could not be made (ESPNetv2: onnxruntime's pre-processing fails on it)."""
    from edgekit.calibration import calibration_crops
    from edgekit.export.onnx import export_onnx
    from edgekit.export.verify import verify
    from edgekit.models import create_model
    from edgekit.quantization import QuantConfig, quantize

    calib = calibration_crops(32, size=SIZE, channels=3)
    model = create_model(name, num_classes=10, in_channels=3, input_size=SIZE).eval()
    export_onnx(model, paths["fp32"], input_shape=(3, SIZE, SIZE))
    qm = quantize(model, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=32,
                                     batch_size=8), calib_data=calib)
    export_onnx(qm, paths["int8"])
    made: dict[str, Any] = {}
    for key, make in (("vendor_u8s8", lambda p: ort_quantize_recommended(
            paths["fp32"], p, calib, vnni=has_vnni(flags))),
                      ("vendor_s8s8", lambda p: ort_quantize_static(paths["fp32"], p, calib))):
        paths[key].unlink(missing_ok=True)
        try:
            make(paths[key])
        except Exception as exc:  # the vendor tool's own failure is a result
            made[f"{key}_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    check = calibration_crops(64, size=SIZE, channels=3, seed=1)
    made["verify_agreement"] = round(float(verify(paths["int8"], qm.model, check,
                                                  batch_size=16).agreement), 4)
    return made


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _interleaved_medians(paths: dict[str, Path], *, rounds: int, runs: int
                         ) -> dict[str, float]:
    """Median over rounds of each file's median batch-1 call (ms), files taken in turn."""
    sessions = {key: _session(p) for key, p in paths.items()}
    x = np.random.default_rng(0).random((1, 3, SIZE, SIZE), dtype=np.float32)
    feeds = {key: {s.get_inputs()[0].name: x} for key, s in sessions.items()}
    per_round: dict[str, list[float]] = {key: [] for key in paths}
    for _ in range(rounds):
        for key, sess in sessions.items():
            for _ in range(3):  # warm-up: caches, and the other files' footprint
                sess.run(None, feeds[key])
            calls = []
            for _ in range(runs):
                t = time.perf_counter()
                sess.run(None, feeds[key])
                calls.append(time.perf_counter() - t)
            per_round[key].append(1e3 * float(np.median(calls)))
    return {key: float(np.median(v)) for key, v in per_round.items()}


def _fused_kernels(path: Path) -> tuple[int, int]:
    """(int8 conv/matmul kernels, float Conv/Gemm/MatMul) in onnxruntime's optimized graph."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node]
    return (sum(op in INT8_KERNELS for op in ops),
            sum(op in ("Conv", "FusedConv", "Gemm", "MatMul") for op in ops))


def _metrics(families: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ok = {name: row for name, row in families.items() if "error" not in row}
    metrics: dict[str, Any] = {"families_timed": len(ok),
                               "families_failed": len(families) - len(ok)}
    if ok:
        metrics["ort_deployed_vs_fp32_min"] = min(r["int8_vs_fp32"] for r in ok.values())
        metrics["ort_deployed_vs_vendor_best_min"] = min(r["int8_vs_vendor_best"]
                                                         for r in ok.values())
        u8s8 = [r["vendor_u8s8_vs_fp32"] for r in ok.values() if "vendor_u8s8_vs_fp32" in r]
        if u8s8:
            metrics["ort_vendor_u8s8_vs_fp32_min"] = min(u8s8)
        agreements = [r["verify_agreement"] for r in ok.values() if "verify_agreement" in r]
        if agreements:
            metrics["verify_agreement_min"] = min(agreements)
    planned = [r for r in ok.values() if "planned_vs_fp32" in r]
    if planned:
        metrics["ort_planned_vs_fp32_min"] = min(r["planned_vs_fp32"] for r in planned)
        metrics["ort_planned_vs_vendor_best_min"] = min(r["planned_vs_vendor_best"]
                                                        for r in planned)
    metrics.update(plan_metrics(ok))
    for name, row in ok.items():
        metrics[f"{name}.int8_vs_fp32"] = row["int8_vs_fp32"]
        metrics[f"{name}.int8_vs_vendor_best"] = row["int8_vs_vendor_best"]
    return metrics


def _line(name: str, row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{name:<20}error: {row['error']}"
    plan = ""
    if "planned_vs_fp32" in row:
        plan = (f"\n{'  planned':<20}keep float {','.join(row['plan'])}: "
                f"{row['planned_vs_fp32']:.2f}x fp32, {row['planned_vs_vendor_best']:.2f}x "
                f"vendor best, {row['planned_vs_int8']:.2f}x int8 (same rounds), "
                f"agreement {row['planned_verify_agreement']:.4f}")
    elif "plan" in row:
        plan = f"\n{'  planned':<20}no block measured slower in int8"
    if "max_drop_vs_fp32" in row:
        plan += (f"\n{'  max-drop plan':<20}{len(row['max_drop_keep_float'])} layers float, "
                 f"int8 {100 * row['max_drop_int8_mac_share']:.0f}% of MACs, drop "
                 f"{row['max_drop_drop_pp']:.2f} pp (all-int8 {row['max_drop_int8_drop_pp']:.2f})"
                 f": {row['max_drop_vs_fp32']:.2f}x fp32, {row['max_drop_vs_vendor_best']:.2f}x "
                 f"vendor best, {row['max_drop_over_fp32_bytes']:.2f}x fp32 bytes, agreement "
                 f"{row['max_drop_verify_agreement']:.4f}")
    elif "max_drop_error" in row:
        plan += f"\n{'  max-drop plan':<20}error: {row['max_drop_error']}"
    fused = f"{row['int8_int8_kernels']}/{row['int8_int8_kernels'] + row['int8_float_kernels']}"
    agree = row.get("verify_agreement")
    vendor = "".join(f"{row[k]:>9.3f}" if k in row else f"{'fails':>9}"
                     for k in ("vendor_u8s8_ms", "vendor_s8s8_ms"))
    return (f"{name:<20}{row['fp32_ms']:>9.3f}{row['int8_ms']:>9.3f}{vendor}"
            f"{row['int8_vs_fp32']:>8.2f}x{row['int8_vs_vendor_best']:>8.2f}x{fused:>8}"
            f"{'' if agree is None else f'{agree:.4f}':>8}{plan}")


def _print_layers(rows: list[dict[str, Any]], top: int = 15) -> None:
    print(f"\n{'block (slowest int8 first)':<32}{'fp32 µs':>9}{'int8 µs':>9}{'ratio':>7}  int8 ops")
    for r in rows[:top]:
        ratio = "" if r["int8_over_fp32"] is None else f"{r['int8_over_fp32']:.2f}"
        print(f"{r['layer']:<32}{r['fp32_us']:>9.1f}{r['int8_us']:>9.1f}{ratio:>7}  "
              f"{r['int8_ops']}")


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                           cwd=Path(__file__).parent).stdout.strip()
    return done.stdout.strip() + ("-dirty" if dirty else "")


def _save(path: str | None, result: dict[str, Any]) -> None:
    if path:
        from edgekit.core.io import atomic_write_json

        atomic_write_json(path, result)


if __name__ == "__main__":
    raise SystemExit(main())
