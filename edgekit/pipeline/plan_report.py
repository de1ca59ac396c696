"""The report's precision-plan section: which layers stay float, why, and the plans tried."""

from __future__ import annotations

from typing import Any

MAX_ROWS = 40  # the rest of the per-layer table is in manifest.json


def report_lines(plan: dict[str, Any] | None) -> list[str]:
    """Markdown lines for ``metrics["precision_plan"]`` (none without a plan)."""
    if not plan:
        return []
    if plan.get("chosen_by") == "hand":
        return ["", "## Precision plan", "", "Chosen by hand (keep_float): weights float in "
                + ", ".join(f"`{m}`" for m in plan["keep_float"]) + "; every other "
                "conv/linear layer int8."]
    source = {"measured": "measured on this host in onnxruntime's profiler (per block, fp32 "
                          "file vs all-int8 PTQ file)",
              "estimated": "estimated by the target's calibrated per-kernel device model "
                           "(float = fp16 where the device runs it; not timed here)",
              "unknown": "unknown for this target on this host: the plan is chosen on "
                         "accuracy alone"}[plan["latency_source"]]
    lines = ["", "## Precision plan", "",
             f"{plan['chosen_by']}: int8 share: {100 * plan['int8_mac_share']:.0f}% of MACs; "
             f"{len(plan['keep_float'])} layer(s) float. On {plan['samples']} samples of the "
             f"validation split ({plan['metric']}, PTQ, layers switched without "
             f"re-calibrating; one changed answer is {100 / plan['samples']:.2f} pp) all-int8 lost "
             f"{plan['int8_drop_pp']:.2f} pp and this plan {plan['drop_pp']:.2f} pp "
             f"({'within' if plan['within_budget'] else '**over**'} the {plan['max_drop']} pp "
             f"budget). Layer latency: {source}.", "",
             "Latency is per block (a conv with its activation, under the block's name; "
             "layers of one block share its figures); \"unknown\": the profile named no "
             "block for the layer in both files.", "",
             "| layer | precision | MACs | float µs | int8 µs | latency | metric if float, pp "
             "| output error removed |", "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for row in plan["layers"][:MAX_ROWS]:
        f = f"{row['float_us']:.1f}" if row["float_us"] is not None else "–"
        q = f"{row['int8_us']:.1f}" if row["int8_us"] is not None else "–"
        lines.append(f"| `{row['layer']}` | {row['precision']} | {row['macs']:,} | {f} | {q} "
                     f"| {row['latency']} | {row['metric_gain_pp']:+.2f} "
                     f"| {row['error_reduction']:.4f} |")
    if len(plan["layers"]) > MAX_ROWS:
        lines.append(f"| … {len(plan['layers']) - MAX_ROWS} more in manifest.json | | | | | | | |")
    lines += ["", "Plans tried (each step makes the int8 layer with the most output error per "
              "MAC float):", "", "| layers float | made float | drop pp | int8 MAC share "
              "| latency µs (sum of per-block figures) |", "| ---: | --- | ---: | ---: | ---: |"]
    for step in plan["steps"]:
        lat = f"{step['latency_us']:.1f}" if step["latency_us"] is not None else "–"
        lines.append(f"| {step['kept_float']} | {step['added'] or '(start)'} "
                     f"| {step['drop_pp']:.2f} | {100 * step['int8_mac_share']:.1f}% | {lat} |")
    return lines
