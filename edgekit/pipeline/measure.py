"""The measuring stages of `edgekit compress`: verify the deployed file in its runtime,
benchmark it on this host, estimate it on the target, and gather the report's figures."""

from __future__ import annotations

import importlib.util
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edgekit.core.io import atomic_write_bytes, atomic_write_json
from edgekit.devices import roofline_bound
from edgekit.pipeline.stages import HOST_RUNTIME, Context, deployed_key, test_outputs
from edgekit.pipeline.steps import step

DEVICES_PLOT = "devices.png"  # the target vs the GPU (DESKTOP_GPU), beside report.md


def verify(ctx: Context, qm: Any | None, fp32: Any, files: dict[str, Path]) -> dict[str, Any]:
    """Run the deployed file in its real runtime and compare it with the trained model.

    A mismatch does not stop the run: the report and files are still written (nothing is
    lost) and the pipeline raises VerificationError once they are in place.
    """
    from edgekit.core.errors import VerificationError
    from edgekit.export.verify import load_report
    from edgekit.export.verify import verify as verify_file

    name = deployed_key(files)
    reference = qm if qm is not None else fp32
    runtime = "lce" if name == "lce" else None  # a .tflite LiteRT cannot run: named
    report_path = ctx.out / "verify.json"
    host = HOST_RUNTIME[runtime or ctx.profile.runtime]
    ctx.log(f"{step('verify')} verify {files[name].name} in {host}")
    # as QAT's score saw them; both kernels (the LCE file is the trained net itself)
    outputs = test_outputs(ctx, "int8" if qm is not None else "fp32", reference)
    with ThreadPoolExecutor(max_workers=1) as beside:  # one onnxruntime thread each
        fused = None
        if ctx.profile.runtime == "tensorrt" and qm is not None:  # onnxruntime's fused int8
            fused = beside.submit(verify_file, files[name], reference, ctx.test,  # kernels too
                                  onnx_kernels="optimized", threshold=0.0,
                                  reference_outputs=outputs)
        try:
            report = verify_file(files[name], reference, ctx.test, report_path=report_path,
                                 runtime=runtime, reference_outputs=outputs).to_dict()
        except VerificationError as exc:
            ctx.notes.append(f"VERIFICATION FAILED: {exc}")
            report = load_report(report_path)
    report["artifact"] = files[name].name  # not the staging path the run was written under
    if fused is not None:
        agreement = fused.result().agreement
        report["onnxruntime_fused_kernels_agreement"] = agreement
        ctx.notes.append(f"onnxruntime's fused x86 int8 kernels on the same file: "
                         f"{agreement * 100:.2f}% top-1 agreement (not TensorRT's "
                         f"arithmetic; shown for comparison only).")
    atomic_write_json(report_path, report)
    return report


def verify_and_check_bundle(ctx: Context, qm: Any | None, fp32: Any, files: dict[str, Path]
                            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``verify`` and ``check_bundle``, the bundle's check on a thread of its own (both run
    onnxruntime on one thread: on two cores they take the time of one)."""
    with ThreadPoolExecutor(max_workers=1) as beside:
        bundle_check = beside.submit(check_bundle, ctx, files)
        verification = verify(ctx, qm, fp32, files)
    return verification, bundle_check.result()


def check_bundle(ctx: Context, files: dict[str, Path]) -> dict[str, Any]:
    """The board's own check, run here first: the deployed file against reference.npz, as
    `edgekit verify --expected` will run it on the device (numpy + the runtime only)."""
    from edgekit.bench.expected import verify_expected

    deployed = files[deployed_key(files)]
    report = verify_expected(deployed, files["reference"])
    if not report.passed:
        ctx.notes.append(f"BUNDLE CHECK FAILED: {report.summary()}")
    out = report.to_dict()
    out["artifact"] = f"bundle/{deployed.name}"
    return out


def bench(ctx: Context, files: dict[str, Path]) -> dict[str, Any]:
    """Measure each deployed precision on this host; estimate it on the target's profile."""
    from edgekit.bench.api import BenchConfig, benchmark
    from edgekit.bench.timing import TimingConfig

    ctx.log(f"{step('benchmark')} benchmark on this host ({ctx.recipe.bench_runs} timed runs "
            "per file)")
    if "lce" in files:
        from edgekit.pipeline.lowbit_deploy import HOST_NOT_TIMED

        ctx.notes.append(HOST_NOT_TIMED)
    results = {}
    for precision in ("fp32", "int8"):
        if precision not in files:
            continue
        config = BenchConfig(threads=ctx.recipe.bench_threads, label=precision,
                             precision=precision, timing=TimingConfig(runs=ctx.recipe.bench_runs),
                             power=ctx.recipe.bench_power)
        result = benchmark(files[precision], config)
        atomic_write_json(ctx.out / f"bench_{precision}.json", result)
        results[precision] = result
    return results


def roofline_bounds(ctx: Context, model: Any) -> list[dict[str, Any]]:
    """Roofline lower bounds on the target: weights read once, plus the input (the result's
    ``roofline_bounds``; its ``estimates`` and the report are the calibrated estimates)."""
    from edgekit.models import count_macs, count_params

    macs = count_macs(model, input_size=ctx.input_shape[-1], in_channels=ctx.input_shape[0])
    params, inputs = count_params(model), math.prod(ctx.input_shape)
    rows = []
    for precision, width in (("fp32", 4), ("int8", 1)):
        if precision in ctx.profile.peak_ops_s:
            est = roofline_bound(ctx.profile, macs, params * width + inputs * 4, precision)
            rows.append(est.to_dict())
    return rows


def _top5_rows(model: str, key: str, ctx: Context) -> list[dict[str, Any]]:
    """The top-5 accuracy row of ``ctx.metrics[key]`` (ImageNet-scale labelled data)."""
    value = ctx.metrics[key].get("top5_accuracy")
    return [] if value is None else [{"model": model, "runtime": "torch",
                                      "metric": "top-5 accuracy", "value": value}]


def collect_metrics(ctx: Context, verification: dict[str, Any], bench: dict[str, Any],
                    files: dict[str, Path], bundle_check: dict[str, Any],
                    device_rows: dict[str, Any]) -> dict[str, Any]:
    from edgekit.pipeline.report import power_text
    from edgekit.runtime.parity import this_host

    metric = "accuracy" if ctx.task == "classification" else "miou"
    # without labels every score is agreement with the fp32 model (pipeline.labels)
    shown = ("top-1 agreement with fp32" if ctx.task == "classification"
             else "mIoU against fp32") if "labels" in ctx.metrics else metric
    rows = [{"model": "fp32 (trained)", "runtime": "torch", "metric": shown,
             "value": ctx.metrics["fp32"][metric]}, *_top5_rows("fp32 (trained)", "fp32", ctx)]
    if "int8_trained" in ctx.metrics:
        rows.append({"model": "int8 fake-quant (trained)", "runtime": "torch", "metric": shown,
                     "value": ctx.metrics["int8_trained"][metric]})
        rows += _top5_rows("int8 fake-quant (trained)", "int8_trained", ctx)
        top5 = ctx.metrics["int8_trained"].get("top5_agreement")
        if top5 is not None:
            rows.append({"model": "int8 fake-quant (trained)", "runtime": "torch",
                         "metric": "fp32's top-1 in its top 5", "value": top5})
    if verification.get("deployed_accuracy") is not None:
        rows.append({"model": f"deployed {Path(verification['artifact']).name}",
                     "runtime": verification["runtime"],
                     "metric": "top-1 agreement with fp32" if "labels" in ctx.metrics
                     else "accuracy", "value": verification["deployed_accuracy"]})
    host = this_host()
    latency = []
    for precision, result in bench.items():
        lat = result["latency_ms"]
        latency.append({"precision": precision, "p50_ms": lat["p50"], "p90_ms": lat["p90"],
                        "where": f"this workstation, {host}: {result['runtime'].get('name', '')} "
                                 f"{result['runtime'].get('version', '')}".strip(),
                        "kind": "measured"})
    for row in device_rows.get("rows", []):
        if row["kind"] == "estimated" and row["device"] == ctx.profile.name:
            latency.append({"precision": row["precision"], "p50_ms": row["latency_ms"],
                            "p90_ms": None, "where": f"{row['device']}: {row['basis']}",
                            "kind": "estimated"})
    power = next(iter(bench.values()), {}).get("power", {})
    metrics: dict[str, Any] = {
        "accuracy_rows": rows,
        "parity": _parity(verification),
        "bundle_check": _parity(bundle_check),
        "latency_rows": latency,
        "device_estimates": device_rows,
        "power": f"on this workstation, {host}: {power_text(power)}",
        "notes": ctx.notes,
    }
    if "int8_minus_fp32" in ctx.metrics:
        metrics["int8_minus_fp32"] = {**ctx.metrics["int8_minus_fp32"], "metric": metric,
                                      "samples": len(ctx.test)}
    for key in ("qat_validation", "distributed", "pruning", "fp32_dense", "labels",
                "weight_rounding", "deployed_as", "precision_plan", "activation_ranges"):
        if key in ctx.metrics:
            metrics[key] = ctx.metrics[key]
    deployed = deployed_key(files)
    if deployed != "fp32" and "fp32" in files:
        metrics["size_ratio"] = files["fp32"].stat().st_size / files[deployed].stat().st_size
    if "int8" in bench and "fp32" in bench:
        metrics["host_int8_speedup"] = (bench["fp32"]["latency_ms"]["p50"]
                                        / bench["int8"]["latency_ms"]["p50"])
    return metrics


def device_estimates(ctx: Context, files: dict[str, Path]) -> dict[str, Any]:
    """Calibrated estimates of the deployed file on the target and the GPU (devices without
    points of their own get an 'unmeasured' row, no figure), and their plot beside the
    report."""
    from edgekit.bench.compare import DESKTOP_GPU, compare_devices
    from edgekit.core.errors import EdgekitError

    deployed = files[deployed_key(files)]
    if ctx.lowbit == "lce":
        from edgekit.pipeline.lowbit_deploy import no_estimate

        return no_estimate(ctx, deployed.name)
    devices = list(dict.fromkeys([ctx.profile.name, DESKTOP_GPU]))
    try:
        block = {"file": deployed.name, "rows": compare_devices(deployed, devices=devices)}
    except EdgekitError as exc:
        return {"file": deployed.name, "rows": [], "error": str(exc)}
    if importlib.util.find_spec("matplotlib") is not None:  # the `report` extra
        from edgekit.bench.compare import plot_png

        atomic_write_bytes(ctx.out / DEVICES_PLOT, plot_png(
            block["rows"], f"{deployed.name}: {ctx.profile.name} vs {DESKTOP_GPU}"))
        block["plot"] = DEVICES_PLOT
    return block


def _parity(report: dict[str, Any]) -> dict[str, Any]:
    """The report's parity line: the figures, and where and in what the file ran."""
    return {"passed": report["passed"], "threshold": report["threshold"],
            "runtime": report["runtime"], "runtime_version": report.get("runtime_version", ""),
            "kernels": report.get("kernels", ""), "host": report.get("host", ""),
            "samples": report["samples"], "agreement": report["agreement"],
            "kind": "top-1" if report["task"] == "classification" else "pixel",
            "max_err_steps": report["max_error_steps"],
            "mean_err_steps": report["mean_error_steps"],
            "decisive": report.get("decisive", 0),
            "decisive_agreement": report.get("decisive_agreement"),
            "tolerance_steps": report.get("tolerance_steps", 0.0),
            "reason": report.get("reason", ""),
            "reference": report.get("reference", "")}
