"""The compress report's dense vs pruned section (``--prune``, ``--sparsity``)."""

from __future__ import annotations

from typing import Any


def report_lines(manifest: dict[str, Any]) -> list[str]:
    """The report's dense vs pruned table; nothing when the run did not prune."""
    metrics = manifest["metrics"]
    summary = metrics.get("pruning")
    if not summary:
        return []
    recipe = manifest["recipe"]
    what = " + ".join(s for s in (recipe.get("prune"), recipe.get("sparsity")) if s)
    metric = metrics["accuracy_rows"][0]["metric"]
    files = manifest["artifacts"]
    measured = {r["precision"]: r["p50_ms"] for r in metrics["latency_rows"]
                if r["kind"] == "measured"}
    row = next((r for r in metrics["accuracy_rows"] if r["model"].startswith("deployed")), None)
    # the deployed file is scored by accuracy (a segmenter's: pixel accuracy), which is
    # labelled where the column's metric is another (mIoU)
    deployed = "–" if row is None else f"{row['value']:.4f}" + (
        "" if row["metric"] == metric else f" ({row['metric']})")
    dense_ms = summary.get("dense_bench", {}).get("latency_ms", {}).get("p50")

    def mb(name: str) -> str:
        return f"{files[name]['bytes'] / 1e6:.2f}" if name in files else "–"

    def ms(value: float | None) -> str:
        return f"{value:.3f}" if value is not None else "–"

    estimates = dict(summary.get("target_estimates", {}))
    target_name = manifest["target"]["profile"]
    deployed_rows = (metrics.get("device_estimates") or {}).get("rows", [])
    estimates["int8"] = next((r for r in deployed_rows if r["device"] == target_name
                              and "int8" in files), None)

    def target(key: str) -> str:
        row = estimates.get(key)
        if not row or row.get("kind") != "estimated":
            return "–"
        low, high = row["interval_ms"]
        return ms(row["latency_ms"]) + (f" ({ms(low)}–{ms(high)})" if low is not None else "")

    dense, pruned = summary["dense"], summary["pruned"]
    lines = [f"## Pruning ({what}): dense vs pruned", "",
             f"| model | params | MACs | {metric} fp32 (torch) | fp32 file MB | host fp32 "
             f"p50 ms | {target_name} fp32 ms (estimated) | {metric} int8 deployed | int8 file "
             f"MB | host int8 p50 ms | {target_name} int8 ms (estimated) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| dense (trained) | {dense['params']:,} | {dense['macs']:,} | "
             f"{metrics['fp32_dense'][metric]:.4f} | {mb('fp32_dense')} | {ms(dense_ms)} | "
             f"{target('fp32_dense')} | not built | – | – | – |",
             f"| pruned | {pruned['params']:,} | {pruned['macs']:,} | "
             f"{summary['pruned_fp32'][metric]:.4f} | {mb('fp32')} | {ms(measured.get('fp32'))} "
             f"| {target('fp32')} | {deployed} | "
             f"{mb('int8')} | {ms(measured.get('int8'))} | {target('int8')} |", "",
             f"MACs kept: {pruned['macs'] / dense['macs']:.2f}; params kept: "
             f"{pruned['params'] / dense['params']:.2f}. Host latencies are medians in one run "
             "on this workstation (the runtime of the target's files, not the target). The "
             "dense model is not quantized here (that would need its own QAT): compare with "
             "a run without pruning for dense int8. Target figures: per-layer model fitted "
             "to published measurements (docs/estimates.md), 80% interval."]
    excluded = summary.get("channel", {}).get("excluded") or {}
    if excluded:
        lines.append(f"Layers kept whole ({len(excluded)}): " + "; ".join(
            f"{name} ({reason})" for name, reason in sorted(excluded.items())) + ".")
    sparse = summary.get("sparsity")
    if sparse:
        file = sparse.get("file")
        lines.append(
            f"2:4 sparsity: {len(sparse['sparse_layers'])} layers, "
            f"{sparse['sparse_mac_share']:.0%} of the Conv/Gemm MACs; "
            f"{len(sparse['dense'])} layers stay dense (TensorRT cannot run them sparse)."
            + (f" In {file['name']}: {file['conforming']} of {file['eligible']} eligible layers "
               f"conform ({'pattern kept' if file['pattern_ok'] else 'PATTERN BROKEN'})."
               if file else "")
            + " Only TensorRT on Ampere and newer GPUs (Jetson Orin) runs them faster.")
    return [*lines, ""]
