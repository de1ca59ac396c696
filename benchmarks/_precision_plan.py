"""``benchmarks/precision.py --max-drop PP``: each family's max-drop precision plan
(``edgekit.quantization.plan_precision``) made, verified and timed beside the other files,
and the fragile model of ``tests/helpers.py`` recovered under the same budget.

Per family (untrained weights, 224 px): PTQ on 32 photo crops, sensitivity and the plan's
drops on 64 other crops (no labels: top-1 agreement with the fp32 model, so a drop is the
share of crops whose class the int8 model changes), per-block latency from onnxruntime's
profiler on the fp32 and all-int8 files (``compare_layers``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 224
VAL_SAMPLES = 64


def max_drop_plan(name: str, paths: dict[str, Path], args: Any,
                  timed: Any) -> dict[str, Any]:
    """The family's plan under ``args.max_drop``; ``timed(paths)`` times files in turn."""
    from edgekit.bench.layer_latency import compare_layers
    from edgekit.calibration import calibration_crops
    from edgekit.export.onnx import export_onnx
    from edgekit.export.verify import verify
    from edgekit.models import create_model
    from edgekit.quantization import LayerLatency, QuantConfig, plan_precision, quantize

    model = create_model(name, num_classes=10, in_channels=3, input_size=SIZE).eval()
    calib = calibration_crops(32, size=SIZE, channels=3)
    val = calibration_crops(VAL_SAMPLES, size=SIZE, channels=3, seed=2)
    config = QuantConfig(target="onnxruntime", mode="ptq", calibration_size=32, batch_size=8)
    all_int8 = quantize(model, config, calib_data=calib)
    latency = {str(r["layer"]): LayerLatency(float(r["fp32_us"]), float(r["int8_us"]),
                                             "measured")
               for r in compare_layers(paths["fp32"], paths["int8"], runs=args.runs,
                                       rounds=args.rounds)
               if float(r["fp32_us"]) > 0 and float(r["int8_us"]) > 0}
    plan = plan_precision(model, val, "onnxruntime", max_drop=args.max_drop, latency=latency,
                          quantized=all_int8, samples=VAL_SAMPLES)
    out: dict[str, Any] = {"max_drop_keep_float": list(plan.keep_float),
                           "max_drop_drop_pp": plan.drop_pp,
                           "max_drop_int8_drop_pp": plan.int8_drop_pp,
                           "max_drop_int8_mac_share": plan.int8_mac_share,
                           "max_drop_within_budget": plan.within_budget,
                           "max_drop_steps": len(plan.steps)}
    mixed = quantize(model, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=32,
                                        batch_size=8, keep_float=plan.keep_float),
                     calib_data=calib)
    deployed = paths["int8"].with_name(f"{name}-{SIZE}.max_drop.onnx")
    export_onnx(mixed, deployed)
    check = calibration_crops(64, size=SIZE, channels=3, seed=1)
    out["max_drop_verify_agreement"] = round(float(verify(deployed, mixed.model, check,
                                                          batch_size=16).agreement), 4)
    ms = timed({**paths, "max_drop": deployed})
    best = min(v for key, v in ms.items() if key.startswith("vendor"))
    out.update({f"max_drop_round.{key}_ms": round(v, 3) for key, v in ms.items()})
    out["max_drop_vs_fp32"] = round(ms["fp32"] / ms["max_drop"], 3)
    out["max_drop_vs_vendor_best"] = round(best / ms["max_drop"], 3)
    out["max_drop_over_fp32_bytes"] = round(deployed.stat().st_size
                                            / paths["fp32"].stat().st_size, 4)
    return out


def fragile_recovered(max_drop: float) -> dict[str, Any]:
    """The fragile test model (``tests.helpers.fragile_net``): its plain int8 drop and its
    drop under the plan, on its held-out blocks (accuracy), plan quantized for real."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests/
    from edgekit.quantization import QuantConfig, plan_precision, quantize
    from edgekit.quantization.sensitivity import Scorer
    from tests.helpers import block_data, fragile_net

    net, calib, val = fragile_net(), block_data(128, seed=1), block_data(400, seed=2)
    plan = plan_precision(net, val, "onnxruntime", max_drop=max_drop, calib_data=calib,
                          calibration_size=128)
    mixed = quantize(net, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=128,
                                      keep_float=plan.keep_float), calib_data=calib)
    scorer = Scorer(net, val)
    return {"fragile_int8_drop_pp": plan.int8_drop_pp,
            "fragile_keep_float": list(plan.keep_float),
            "fragile_recovered_drop_pp": round(
                scorer.float_metric - scorer.measure(mixed.model)[0], 4),
            "fragile_int8_mac_share": plan.int8_mac_share}


def plan_metrics(families: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's plan metrics over the families that have a max-drop plan."""
    rows = [r for r in families.values() if "max_drop_vs_fp32" in r]
    if not rows:
        return {}
    return {
        "drop_pp_max": max(r["max_drop_drop_pp"] for r in rows),
        "int8_mac_share_median": float(np.median([r["max_drop_int8_mac_share"] for r in rows])),
        "deployed_over_fp32_bytes_median": float(np.median(
            [r["max_drop_over_fp32_bytes"] for r in rows])),
        "ort_max_drop_vs_fp32_min": min(r["max_drop_vs_fp32"] for r in rows),
        "ort_max_drop_vs_vendor_best_min": min(r["max_drop_vs_vendor_best"] for r in rows),
        "max_drop_verify_agreement_min": min(r["max_drop_verify_agreement"] for r in rows),
    }
