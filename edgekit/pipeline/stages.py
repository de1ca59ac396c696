"""The stages of `edgekit compress`, each an explicit function of explicit values.

prepare → train_or_load → quantize → export → verify → bench → collect_metrics. The
pipeline module strings them together; tests and users may call them one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.core.io import atomic_write_json
from edgekit.devices import DeviceProfile, estimate_latency
from edgekit.pipeline.recipe import CompressRecipe

# Share of the training split held out for validation (best-epoch choice in training and QAT).
VAL_FRACTION = 0.1
# The QAT scheme follows the runtime the target profile names.
QUANT_TARGET = {"tensorrt": "tensorrt", "tflite": "tflite", "onnxruntime": "onnxruntime"}
# Where the deployed file runs on this host for verification and the measured latency.
HOST_RUNTIME = {"tensorrt": "onnxruntime (CPU) on the ONNX that TensorRT consumes",
                "tflite": "LiteRT interpreter (XNNPACK)", "onnxruntime": "onnxruntime (CPU)"}


@dataclass
class Context:
    """What every stage needs: the recipe, the target, the data and where to write."""

    recipe: CompressRecipe
    profile: DeviceProfile
    out: Path
    log: Callable[[str], None]
    task: str
    train: Any
    val: Any  # held out of train: picks the best epoch, so test stays unseen until the end
    test: Any
    model_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])

    def input_spec(self) -> dict[str, Any]:
        return {"shape": ["batch", *self.input_shape], "dtype": "float32", "layout": "NCHW",
                "range": [0.0, 1.0], "model": self.model_config}


def prepare(recipe: CompressRecipe, profile: DeviceProfile, out: Path,
            log: Callable[[str], None]) -> Context:
    from edgekit.calibration import load_splits
    from edgekit.models import get_model_spec

    if profile.runtime not in QUANT_TARGET:
        raise InvalidInputError(f"target {profile.name} uses runtime {profile.runtime!r}, "
                                f"which compress cannot export to")
    spec = get_model_spec(recipe.model)
    data = recipe.data
    if spec.task == "segmentation" and data == "mnist5k":
        data = "mnist5k_seg"  # the embedded default, in its segmentation form
    size = spec.input_size if spec.task == "segmentation" else None
    train, test = load_splits(data, input_size=size, seed=recipe.seed)
    if recipe.train_limit is not None:
        train = train.subset(recipe.train_limit, seed=recipe.seed)
    if train.task != spec.task:
        raise InvalidInputError(f"{recipe.model} is a {spec.task} model but {data} is a "
                                f"{train.task} data set")
    train, val = train.split(VAL_FRACTION, seed=recipe.seed)
    log(f"[1/6] data {data}: {len(train)} train / {len(val)} validation / {len(test)} test, "
        f"input {train.x.shape[1:]}")
    return Context(recipe, profile, out, log, spec.task, train, val, test)


def train_or_load(ctx: Context) -> Any:
    from edgekit.models import create_model
    from edgekit.training import TrainConfig, evaluate, train
    from edgekit.training.checkpoint import load_checkpoint, save_checkpoint

    r = ctx.recipe
    if r.weights:
        model, _ = load_checkpoint(r.weights)
        if model.edgekit_config.get("name") != r.model:
            raise InvalidInputError(f"weights {r.weights} hold a {model.edgekit_config.get('name')}"
                                    f", not a {r.model}")
        ctx.log(f"[2/6] loaded {r.model} from {r.weights}")
    else:
        import torch

        c, h = ctx.input_shape[0], ctx.input_shape[-1]
        # initial weights: torch seeds its generator differently in every process, so
        # without this the same command trains a different model each time
        torch.manual_seed(r.seed)
        model = create_model(r.model, num_classes=ctx.train.num_classes, in_channels=c,
                             input_size=h, **r.model_args)
        ctx.log(f"[2/6] training fp32 {r.model} for {r.epochs} epoch(s)")
        train(model, ctx.train, TrainConfig(epochs=r.epochs, lr=r.lr, batch_size=r.batch_size,
                                             seed=r.seed), val_data=ctx.val)
    model.eval()
    ctx.model_config = dict(model.edgekit_config)
    fp32 = evaluate(model, ctx.test)
    ctx.metrics["fp32"] = fp32
    save_checkpoint(model, ctx.out / "fp32", metrics=fp32)
    return model


def quantize(ctx: Context, model: Any) -> Any | None:
    from edgekit.quantization import QuantConfig
    from edgekit.quantization import quantize as quantize_model
    from edgekit.training import evaluate, predicted_classes
    from edgekit.training.compare import paired_difference

    r = ctx.recipe
    if r.precision == "fp32":
        ctx.log("[3/6] precision fp32: no quantization")
        return None
    mode = "qat" if r.qat_epochs > 0 else "ptq"
    config = QuantConfig(target=QUANT_TARGET[ctx.profile.runtime], mode=mode, epochs=r.qat_epochs,
                         lr=r.qat_lr, calibration_size=r.calibration_size,
                         batch_size=r.batch_size, seed=r.seed)
    ctx.log(f"[3/6] int8 {mode.upper()} with the {config.target} scheme")
    qm = quantize_model(model, config, train_data=ctx.train, val_data=ctx.val)
    ctx.metrics["int8_trained"] = evaluate(qm.model, ctx.test)
    # is the int8 model's loss (or gain) more than test-set noise?
    ctx.metrics["int8_minus_fp32"] = paired_difference(
        predicted_classes(qm.model, ctx.test), predicted_classes(model, ctx.test), ctx.test.y,
        task=ctx.test.task, num_classes=ctx.test.num_classes).to_dict()
    ctx.metrics["quant_scheme"] = qm.scheme
    fit = qm.history
    if fit is not None and fit.start_metric is not None:  # QAT epochs, chosen on validation
        ctx.metrics["qat_validation"] = {
            "metric": fit.metric, "start": fit.start_metric, "kept_epoch": fit.best_epoch,
            "epochs": [h[f"val_{fit.metric}"] for h in fit.history]}
    return qm


def export(ctx: Context, fp32: Any, qm: Any | None) -> dict[str, Path]:
    """Write the deployable files; both precisions, so size and speed can be compared."""
    runtime = ctx.profile.runtime
    shape = ctx.input_shape
    ctx.log(f"[4/6] export for {runtime}")
    files: dict[str, Path] = {}
    # "device", not "target": the exporters record the quantization target under that key
    meta = {"device": ctx.profile.name, "recipe": ctx.recipe.to_dict()}
    if runtime == "tflite":
        from edgekit.export.tflite import export_tflite

        calib = ctx.train.x[: min(64, len(ctx.train))]
        files["fp32"] = export_tflite(fp32, ctx.out / "model_fp32.tflite", calibration=calib,
                                      metadata=meta).path
        if qm is not None:
            files["int8"] = export_tflite(qm, ctx.out / "model_int8.tflite", calibration=calib,
                                          metadata=meta).path
        return files
    from edgekit.export.onnx import export_onnx

    files["fp32"] = export_onnx(fp32, ctx.out / "model_fp32.onnx", input_shape=shape,
                                metadata=meta).path
    if qm is not None:
        files["int8"] = export_onnx(qm, ctx.out / "model_int8.onnx", input_shape=shape,
                                    metadata=meta).path
    if runtime == "tensorrt":
        files.update(_tensorrt_plan(ctx, files.get("int8", files["fp32"])))
    return files


def _tensorrt_plan(ctx: Context, onnx_path: Path) -> dict[str, Path]:
    """The build config and trtexec line; the engine itself where TensorRT is installed."""
    import importlib.util

    from edgekit.export.tensorrt import (
        build_engine,
        engine_config,
        trtexec_command,
        write_build_config,
    )

    engine = ctx.out / (onnx_path.stem + ".engine")
    cfg = engine_config(onnx_path, engine)
    files = {"tensorrt_build_config": write_build_config(cfg, ctx.out / "tensorrt_build.json")}
    script = ctx.out / "build_engine.sh"
    script.write_text("#!/bin/sh\n# Build the TensorRT engine on the target (JetPack's trtexec)."
                      f"\nset -e\ncd \"$(dirname \"$0\")\"\n{trtexec_command(cfg)}\n")
    script.chmod(0o755)
    files["tensorrt_build_script"] = script
    if importlib.util.find_spec("tensorrt") is not None:
        files["engine"] = build_engine(cfg)
    else:
        ctx.notes.append("TensorRT is not installed on this host: the engine was not built; "
                         "run build_engine.sh on the Jetson (uses trtexec from JetPack).")
    return files


def verify(ctx: Context, qm: Any | None, fp32: Any, files: dict[str, Path]) -> dict[str, Any]:
    """Run the deployed file in its real runtime and compare it with the trained model.

    A mismatch does not stop the run: the report and files are still written (nothing is
    lost) and the pipeline raises VerificationError once they are in place.
    """
    from edgekit.core.errors import VerificationError
    from edgekit.export.verify import load_report
    from edgekit.export.verify import verify as verify_file

    name = "int8" if qm is not None else "fp32"
    reference = qm if qm is not None else fp32
    report_path = ctx.out / "verify.json"
    ctx.log(f"[5/6] verify {files[name].name} in {HOST_RUNTIME[ctx.profile.runtime]}")
    try:
        report = verify_file(files[name], reference, ctx.test, report_path=report_path).to_dict()
    except VerificationError as exc:
        ctx.notes.append(f"VERIFICATION FAILED: {exc}")
        report = load_report(report_path)
    report["artifact"] = files[name].name  # not the staging path the run was written under
    if ctx.profile.runtime == "tensorrt":  # what onnxruntime's own fused int8 kernels make of it
        fused = verify_file(files[name], reference, ctx.test, onnx_kernels="optimized",
                            threshold=0.0)
        report["onnxruntime_fused_kernels_agreement"] = fused.agreement
        ctx.notes.append(f"onnxruntime's fused x86 int8 kernels on the same file: "
                         f"{fused.agreement * 100:.2f}% top-1 agreement (not TensorRT's "
                         f"arithmetic; shown for comparison only).")
    atomic_write_json(report_path, report)
    return report


def bench(ctx: Context, files: dict[str, Path]) -> dict[str, Any]:
    """Measure each deployed precision on this host; estimate it on the target's profile."""
    from edgekit.bench.api import BenchConfig, benchmark
    from edgekit.bench.timing import TimingConfig

    ctx.log(f"[6/6] benchmark on this host ({ctx.recipe.bench_runs} timed runs per file)")
    if ctx.profile.runtime == "tensorrt":
        ctx.notes.append("Host latencies time onnxruntime's CPU kernels on the ONNX that TensorRT "
                         "will compile, not TensorRT: its signed-int8 activations take "
                         "onnxruntime's slow s8s8 path on x86 CPUs without VNNI. Measure the "
                         "engine on the device with `edgekit bench model_int8.engine`.")
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


def target_estimates(ctx: Context, model: Any) -> list[dict[str, Any]]:
    """Roofline lower bounds on the target: weights read once, plus the input."""
    from edgekit.models import count_macs, count_params

    macs = count_macs(model, input_size=ctx.input_shape[-1], in_channels=ctx.input_shape[0])
    params, inputs = count_params(model), math.prod(ctx.input_shape)
    rows = []
    for precision, width in (("fp32", 4), ("int8", 1)):
        if precision in ctx.profile.peak_ops_s:
            est = estimate_latency(ctx.profile, macs, params * width + inputs * 4, precision)
            rows.append(est.to_dict())
    return rows


def collect_metrics(ctx: Context, verification: dict[str, Any], bench: dict[str, Any],
                    files: dict[str, Path], estimates: list[dict[str, Any]]) -> dict[str, Any]:
    metric = "accuracy" if ctx.task == "classification" else "miou"
    rows = [{"model": "fp32 (trained)", "runtime": "torch", "metric": metric,
             "value": ctx.metrics["fp32"][metric]}]
    if "int8_trained" in ctx.metrics:
        rows.append({"model": "int8 fake-quant (trained)", "runtime": "torch", "metric": metric,
                     "value": ctx.metrics["int8_trained"][metric]})
    if verification.get("deployed_accuracy") is not None:
        rows.append({"model": f"deployed {Path(verification['artifact']).name}",
                     "runtime": verification["runtime"], "metric": "accuracy",
                     "value": verification["deployed_accuracy"]})
    latency = []
    for precision, result in bench.items():
        lat = result["latency_ms"]
        latency.append({"precision": precision, "p50_ms": lat["p50"], "p90_ms": lat["p90"],
                        "where": f"this host, {result['runtime'].get('name', '')} "
                                 f"{result['runtime'].get('version', '')}".strip(),
                        "kind": "measured"})
    for est in estimates:
        latency.append({"precision": est["precision"], "p50_ms": est["latency_ms"], "p90_ms": None,
                        "where": f"{est['device']} ({est['bound']}-bound roofline)",
                        "kind": "estimated"})
    power = next(iter(bench.values()), {}).get("power", {})
    metrics: dict[str, Any] = {
        "accuracy_rows": rows,
        "parity": {"passed": verification["passed"], "threshold": verification["threshold"],
                   "runtime": verification["runtime"], "agreement": verification["agreement"],
                   "kind": "top-1" if verification["task"] == "classification" else "pixel",
                   "max_err_steps": verification["max_error_steps"],
                   "mean_err_steps": verification["mean_error_steps"]},
        "latency_rows": latency,
        "power": _power_text(power),
        "notes": ctx.notes,
    }
    if "int8_minus_fp32" in ctx.metrics:
        metrics["int8_minus_fp32"] = {**ctx.metrics["int8_minus_fp32"], "metric": metric,
                                      "samples": len(ctx.test)}
    if "qat_validation" in ctx.metrics:
        metrics["qat_validation"] = ctx.metrics["qat_validation"]
    if "int8" in files:
        metrics["size_ratio"] = files["fp32"].stat().st_size / files["int8"].stat().st_size
    if "int8" in bench and "fp32" in bench:
        metrics["host_int8_speedup"] = (bench["fp32"]["latency_ms"]["p50"]
                                        / bench["int8"]["latency_ms"]["p50"])
    return metrics


def _power_text(power: dict[str, Any]) -> str:
    if not power.get("available"):
        return f"unavailable ({power.get('reason', 'not measured')})"
    return (f"measured: {power['energy_per_inference_mj']:.3f} ± "
            f"{power['energy_per_inference_mj_uncertainty']:.3f} mJ per inference")
