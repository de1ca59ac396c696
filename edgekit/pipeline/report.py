"""The Markdown report at the end of `edgekit compress`, rendered from the run's manifest.

Every figure says where it comes from: *measured* (named runtime on the named host) or
*estimated* (roofline from the target's spec-sheet profile).
"""

from __future__ import annotations

from typing import Any


def render_report(manifest: dict[str, Any]) -> str:
    recipe, target, metrics = manifest["recipe"], manifest["target"], manifest["metrics"]
    lines = [
        f"# edgekit compress: {recipe['model']} for {target['profile']} ({target['runtime']})",
        "",
        f"Data `{recipe['data']}`, precision {recipe['precision']}, "
        f"{recipe['epochs']} fp32 epoch(s), {recipe['qat_epochs']} QAT epoch(s); "
        f"edgekit {manifest['edgekit_version']}, run took {manifest['duration_s']} s.",
        "",
        "## Accuracy: trained vs deployed",
        "",
        "| model | where it ran | metric |",
        "| --- | --- | --- |",
    ]
    for row in metrics.get("accuracy_rows", []):
        value = f"{row['value']:.4f} ({row['metric']})"
        lines.append(f"| {row['model']} | {row['runtime']} | {value} |")
    change = metrics.get("int8_minus_fp32")
    if change:
        pp = {k: 100 * change[k] for k in ("difference", "low", "high")}
        verdict = ("more than test noise" if change["low"] > 0 or change["high"] < 0
                   else "within test noise")
        lines += ["", f"int8 (trained) minus fp32: {pp['difference']:+.2f} pp {change['metric']}, "
                  f"{change['level'] * 100:.0f}% interval {pp['low']:+.2f} … {pp['high']:+.2f} pp "
                  f"(paired bootstrap over the {change['samples']:,} test samples): {verdict}."]
    qat = metrics.get("qat_validation")
    if qat:
        epochs = ", ".join(f"epoch {i} {v:.4f}" for i, v in enumerate(qat["epochs"], 1))
        kept = ("the calibrated start (epoch 0): QAT did not validate better"
                if qat["kept_epoch"] == 0 else f"epoch {qat['kept_epoch']}")
        lines += ["", f"QAT on the validation set ({qat['metric']}): calibrated start "
                  f"{qat['start']:.4f}, {epochs}; kept {kept}."]
    parity = metrics.get("parity")
    if parity:
        verdict = "PASSED" if parity["passed"] else "**FAILED**"
        lines += [
            "",
            f"Verification {verdict} (threshold {parity['threshold'] * 100:.1f}%, deployed file "
            f"run in {parity['runtime']}): "
            f"{parity['agreement'] * 100:.2f}% {parity['kind']} agreement; "
            f"logit error max {parity['max_err_steps']:.2f} / mean {parity['mean_err_steps']:.3f} "
            "output quantization steps (measured).",
        ]
    lines += ["", "## Files", "", "| file | bytes | sha256 |", "| --- | ---: | --- |"]
    for name, art in manifest["artifacts"].items():
        lines.append(f"| `{art['path']}` ({name}) | {art['bytes']:,} | `{art['sha256'][:16]}` |")
    if "size_ratio" in metrics:
        lines += ["", f"On disk: deployed file is {metrics['size_ratio']:.2f}x smaller than fp32."]
    lines += ["", "## Latency", "", "| precision | p50 ms | p90 ms | where | kind |",
              "| --- | ---: | ---: | --- | --- |"]
    for row in metrics.get("latency_rows", []):
        p90 = f"{row['p90_ms']:.3f}" if row.get("p90_ms") is not None else "–"
        lines.append(f"| {row['precision']} | {row['p50_ms']:.3f} | {p90} | {row['where']} "
                     f"| {row['kind']} |")
    lines += ["", f"Power: {metrics.get('power', 'unavailable (not measured)')}", ""]
    notes = metrics.get("notes", [])
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)
