"""The summary of benchmarks/quantization.py: the flat ``metrics``, the paired comparisons
of each row and the one-line report of a family."""

from __future__ import annotations

from typing import Any

import numpy as np

OURS = ("qat_onnx", "qat_ort", "qat_tflite")  # the QAT files' score keys in a row
SAME_RUNTIME = (("qat_onnx", "ort_ptq_reference"), ("qat_ort", "ort_ptq"),
                ("qat_ort", "ort_ptq_u8s8"), ("qat_tflite", "litert_ptq"))
ORT_VENDOR_FUSED = ("ort_ptq", "ort_ptq_u8s8")  # both documented settings, fused CPU kernels


def paired(preds: dict[str, np.ndarray], ds: Any) -> dict[str, dict[str, Any]]:
    """Each QAT file minus fp32 and minus each vendor PTQ file: the score difference and its
    paired-bootstrap 95% interval over the test samples (edgekit.training.compare)."""
    from edgekit.training.compare import paired_difference

    pairs = {}
    for ours in OURS:
        # the TensorRT file against onnxruntime's PTQ file in the same (reference) kernels
        ort_vendor = ("ort_ptq_reference",) if ours == "qat_onnx" else ORT_VENDOR_FUSED
        for other in ("fp32", *ort_vendor, "litert_ptq"):
            if ours in preds and other in preds:
                d = paired_difference(preds[ours], preds[other], ds.y, task=ds.task,
                                      num_classes=ds.num_classes)
                pairs[f"{ours}-{other}"] = {k: round(v, 4) if isinstance(v, float) else v
                                            for k, v in d.to_dict().items()}
    return pairs


def metrics(rows: list[dict[str, Any]], speed: dict[str, Any]) -> dict[str, Any]:
    ok = [r for r in rows if "error" not in r]
    m: dict[str, Any] = {"families": len(rows), "families_failed": len(rows) - len(ok)}

    def agg(fn: Any, key: str) -> float | None:
        vals = [r[key] for r in ok if key in r]
        return round(float(fn(vals)), 4) if vals else None

    onnx_parity = [v for k in ("parity_onnx", "parity_ort") if (v := agg(min, k)) is not None]
    m["parity_min_onnx"] = min(onnx_parity) if onnx_parity else None
    m["parity_min_tflite"] = agg(min, "parity_tflite")
    drops = [100 * (r["fp32"] - r[k]) for r in ok for k in OURS if k in r]
    m["int8_acc_drop_pp_max"] = round(max(drops), 2) if drops else None
    m["tflite_float_ops_total"] = (sum(r["tflite_float_ops"] for r in ok)
                                   if any("tflite_float_ops" in r for r in ok) else None)
    gaps = []
    for r in ok:
        vendors = [r[k] for k in ("ort_ptq", "ort_ptq_u8s8", "ort_ptq_reference", "litert_ptq")
                   if k in r]
        ours = [r[k] for k in OURS if k in r]
        if vendors and ours:
            gaps.append(100 * (min(ours) - max(vendors)))
    m["qat_minus_best_vendor_ptq_pp_min"] = round(min(gaps), 2) if gaps else None
    # each QAT file against the vendor PTQ file deployed where it is: the TensorRT file and
    # ORT's PTQ file both in the reference kernels (TensorRT's arithmetic), the onnxruntime
    # file and ORT's PTQ file in the fused kernels, the TFLite file and litert's PTQ in LiteRT
    same = [100 * (r[ours] - r[vendor]) for r in ok for ours, vendor in SAME_RUNTIME
            if ours in r and vendor in r]
    m["qat_minus_vendor_ptq_same_runtime_pp_min"] = round(min(same), 2) if same else None
    # edgekit's onnxruntime file against the more accurate of the vendor's two documented
    # settings, both in the fused CPU kernels they are made for
    best = [100 * (r["qat_ort"] - max(r[k] for k in ORT_VENDOR_FUSED if k in r))
            for r in ok if "qat_ort" in r and any(k in r for k in ORT_VENDOR_FUSED)]
    m["qat_ort_minus_ort_vendor_best_pp_min"] = round(min(best), 2) if best else None
    # how many of those gaps are more than test-set noise (95% paired-bootstrap interval
    # entirely below 0): QAT file vs vendor PTQ file, and QAT file vs fp32
    pairs = [(name, d) for r in ok for name, d in r.get("paired", {}).items()]
    m["vendor_ptq_ahead_significant"] = sum(
        d["high"] < 0 for name, d in pairs if not name.endswith("-fp32")) if pairs else None
    m["int8_below_fp32_significant"] = sum(
        d["high"] < 0 for name, d in pairs if name.endswith("-fp32")) if pairs else None
    m.update(_speed_ratios(speed))
    return m


def _speed_ratios(speed: dict[str, Any]) -> dict[str, float | None]:
    """int8 speed-up over fp32 and over each vendor file: the lowest per runtime, then each.
    ``ort_int8_vs_vendor`` is against onnxruntime's default S8S8 file; ``..._vendor_best``
    against the faster of its two documented settings, model by model and thread by thread."""
    speed = _with_vendor_best(speed)
    others = {"ort": ("fp32", "vendor", "vendor_u8s8", "vendor_best"),
              "tflite": ("fp32", "vendor")}
    m: dict[str, float | None] = {}
    for rt, vs_list in others.items():
        for vs in vs_list:
            ratios = [speed[f"{n}.{rt}_{vs}.t{t}_ms"] / speed[f"{n}.{rt}_int8.t{t}_ms"]
                      for n in _timed(speed) for t in (1, 2)
                      if f"{n}.{rt}_int8.t{t}_ms" in speed and f"{n}.{rt}_{vs}.t{t}_ms" in speed]
            m[f"{rt}_int8_vs_{vs}"] = round(min(ratios), 3) if ratios else None
    for n in _timed(speed):
        for t in (1, 2):
            for rt, vs_list in others.items():
                key = f"{n}.{rt}_int8.t{t}_ms"
                for other in vs_list:
                    if key in speed and f"{n}.{rt}_{other}.t{t}_ms" in speed:
                        m[f"{n}.{rt}_int8_vs_{other}.t{t}"] = round(
                            speed[f"{n}.{rt}_{other}.t{t}_ms"] / speed[key], 3)
    return m


def _with_vendor_best(speed: dict[str, Any]) -> dict[str, Any]:
    out = dict(speed)
    for n in _timed(speed):
        for t in (1, 2):
            vendor = [speed[k] for k in (f"{n}.ort_vendor.t{t}_ms", f"{n}.ort_vendor_u8s8.t{t}_ms")
                      if k in speed]
            if vendor:
                out[f"{n}.ort_vendor_best.t{t}_ms"] = min(vendor)
    return out


def _timed(speed: dict[str, Any]) -> list[str]:
    return sorted({k.split(".")[0] for k in speed if k.endswith("_ms")})


def row_line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['model']:<20} ERROR {r['error']}  ({r['seconds']} s)"
    cells = " ".join(f"{k}={r[k]:.4f}" for k in ("fp32", "qat_onnx", "qat_onnx_fused", "qat_ort",
                                                  "ort_ptq", "ort_ptq_u8s8", "ort_ptq_reference",
                                                  "qat_tflite",
                                                  "litert_ptq", "parity_onnx", "parity_ort",
                                                  "parity_tflite", "parity_tflite_builtin")
                     if k in r)
    extra = f" float_ops={r['tflite_float_ops']}" if "tflite_float_ops" in r else ""
    return f"{r['model']:<20} {cells}{extra}  ({r['seconds']} s)"
