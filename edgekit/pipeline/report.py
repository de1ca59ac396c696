"""The Markdown report at the end of `edgekit compress`, rendered from the run's manifest.

Every figure says where it comes from: *measured* (named runtime on the named host) or
*estimated* (per-layer model calibrated on published measurements, with its interval).
"""

from __future__ import annotations

from typing import Any

from edgekit.pipeline import plan_report, prune_report
from edgekit.quantization.ranges import describe as describe_ranges


def _verification(metrics: dict[str, Any]) -> list[str]:
    parity, check = metrics.get("parity"), metrics.get("bundle_check")
    if not parity:
        return []
    lines = ["", f"Verification {_verdict(parity)} on this workstation, {parity['host']}: "
             f"{_ran_in(parity)}, against {parity['reference'] or 'the trained model'}: "
             f"{_figures(parity)} (measured)."]
    if check:
        lines += ["", f"Bundle check {_verdict(check)} (the board's own command, `edgekit "
                  "verify FILE --expected reference.npz`, run here first): "
                  f"{_figures(check)}."]
    return lines


def _verdict(parity: dict[str, Any]) -> str:
    return ("PASSED" if parity["passed"] else "**FAILED**") + \
        f" (threshold {parity['threshold'] * 100:.1f}%)"


def _ran_in(parity: dict[str, Any]) -> str:
    text = f"{parity['runtime']} {parity.get('runtime_version', '')}".strip()
    kernels = parity.get("kernels", "")
    if kernels.startswith("reference"):
        return f"{text}'s reference kernels (unfused Q/DQ: TensorRT's int8 arithmetic, not " \
               "TensorRT itself)"
    return f"{text} ({kernels or 'default'} kernels)"


def _figures(parity: dict[str, Any]) -> str:
    decisive = ""
    if parity.get("decisive_agreement") is not None:  # what the verdict was judged on
        decisive = (f" ({parity['decisive_agreement'] * 100:.2f}% on the "
                    f"{parity['decisive']:,} decisive ones, whose margin exceeds "
                    f"{2 * parity['tolerance_steps']:.1f} steps)")
    reason = f"; failed because the {parity['reason']}" if parity.get("reason") else ""
    return (f"{parity['agreement'] * 100:.2f}% {parity['kind']} agreement on "
            f"{parity['samples']:,} samples{decisive}; output error max "
            f"{parity['max_err_steps']:.2f} / mean {parity['mean_err_steps']:.3f} "
            f"quantization steps{reason}")


def _device_estimates(block: dict[str, Any] | None) -> list[str]:
    """The target and the GPU side by side (edgekit.bench.compare): only figures resting on
    the device's own points; no transferred estimate and no power-budget bound."""
    if not block:
        return []
    from edgekit.bench.compare import table_lines

    if not block.get("rows"):
        return ["## Target vs GPU", "", f"Estimates unavailable: {block.get('error')}", ""]
    return ["## Target vs GPU", "",
            f"`{block['file']}`, batch 1. Estimated: per-layer model fitted to the device's own "
            "published measurements of real models (docs/estimates.md); points: how many; "
            "interval: 10th–90th percentile of its leave-one-out errors. A device without "
            "points of its own is not estimated here (`edgekit devices --compare FILE "
            "--include-unmeasured`).",
            "", *table_lines(block["rows"], bounds=False), "",
            *([f"![latency per device]({block['plot']})", ""] if block.get("plot") else [])]


def _deploying(manifest: dict[str, Any]) -> list[str]:
    if "bundle_manifest" not in manifest["artifacts"]:
        return []
    return ["## On the device", "",
            "Copy `bundle/` to the board and follow `bundle/DEVICE.md`, or from here: "
            "`edgekit deploy RUN_DIR --remote user@board` (copies, "
            + ("builds the engine, " if manifest["target"]["runtime"] == "tensorrt" else "")
            + "verifies, benchmarks and adds the board's figures below).", ""]


def device_section(record: dict[str, Any], runtime: str = "") -> list[str]:
    """The figures measured on one board by `edgekit deploy`, labelled with where: the
    board as the user named it, then the host and architecture the board reported."""
    host, arch = _host_and_arch(record)
    board = record.get("board") or record["host"]
    lines = [f"## Measured on {board}: host {host} ({arch or 'architecture not recorded'})",
             "",
             f"`edgekit deploy` to {record['host']} on {record['when']} (edgekit "
             f"{record.get('edgekit_version', '?')} on the board, profile {record['profile']}).",
             ""]
    expected = _profile_arch(record["profile"])
    if arch and expected and arch != expected:
        lines += [f"**Warning:** the board reported a {arch} CPU, but profile "
                  f"{record['profile']} describes an {expected} device: these figures may not be "
                  "from that device.", ""]
    engine = record.get("engine_build")
    if engine is not None:
        lines += [("TensorRT engine built on the board with trtexec."
                   if engine["built"] else f"TensorRT engine NOT built: {engine['error']}"), ""]
    elif runtime == "tensorrt" and not _ran_an_engine(record):
        lines += ["TensorRT engine not built: these figures are of the ONNX file, not of "
                  "a TensorRT engine.", ""]
    verify = record.get("verify", {})
    if "error" in verify:
        lines += [f"Verification could not run: {verify['error']}", ""]
    elif verify:
        parity = {**verify, "kind": "top-1" if verify["task"] == "classification" else "pixel",
                  "max_err_steps": verify["max_error_steps"],
                  "mean_err_steps": verify["mean_error_steps"]}
        lines += [f"Verification {_verdict(parity)} on {verify['host']}: "
                  f"`{verify['artifact']}` in {_ran_in(parity)}: {_figures(parity)} "
                  "(measured).", ""]
    lines += ["| file | p50 ms | p90 ms | inf/s | runtime | power |",
              "| --- | ---: | ---: | ---: | --- | --- |"]
    for label, result in record.get("bench", {}).items():
        if "error" in result:
            lines.append(f"| {label} | – | – | – | failed: {result['error']} | |")
            continue
        lat, rt = result["latency_ms"], result["runtime"]
        lines.append(f"| `{result['model']['name']}` | {lat['p50']:.3f} | {lat['p90']:.3f} "
                     f"| {result['throughput_ips']:.1f} | {rt.get('name', '')} "
                     f"{rt.get('version', '')} | {power_text(result['power'])} |")
    return [*lines, ""]


def _resumed(resumed: dict[str, Any] | None) -> list[str]:
    if resumed is None:
        return []
    reused = ", ".join(resumed["reused"]) or "nothing (every stage ran again)"
    return ["", f"**Resumed** from an unfinished run (`--resume`); reused: {reused}. The run "
            "time above covers the resumed part only."]


def _precision_reason(profile: str, precision: str) -> str:
    from edgekit.pipeline.preflight import precision_note

    try:
        note = precision_note(_get_profile(profile), precision)
    except KeyError:  # UnknownNameError: a manifest from elsewhere
        return ""
    return f" {note}" if note else ""


def _get_profile(name: str) -> Any:
    from edgekit.devices.profiles import get_profile

    return get_profile(name)


def _host_and_arch(record: dict[str, Any]) -> tuple[str, str]:
    """(host name, architecture) as the board reported them: verify's "<host> (<arch>)",
    else a bench result's hostname and device arch."""
    verify = record.get("verify", {})
    if verify.get("host"):
        name, _, arch = verify["host"].partition(" (")
        return name, arch.rstrip(")")
    for result in record.get("bench", {}).values():
        if result.get("hostname"):
            return result["hostname"], (result.get("device") or {}).get("arch", "")
    return record.get("hostname") or "not recorded", ""


def _profile_arch(name: str) -> str:
    try:
        return _get_profile(name).arch
    except KeyError:  # UnknownNameError: a record made with a profile this edgekit lacks
        return ""


def _ran_an_engine(record: dict[str, Any]) -> bool:
    names = [r.get("model", {}).get("name", "") for r in record.get("bench", {}).values()]
    names.append(record.get("verify", {}).get("artifact", ""))
    return any(str(n).endswith((".engine", ".plan")) for n in names)


def power_text(power: dict[str, Any]) -> str:
    if not power.get("available"):
        return f"unavailable ({power.get('reason', 'not measured')})"
    return (f"{power['energy_per_inference_mj']:.3f} ± "
            f"{power['energy_per_inference_mj_uncertainty']:.3f} mJ/inference "
            f"({power.get('sampler', '')})")


def latency_section(metrics: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """The latency table, led by the file the target runs. For TensorRT that is the engine,
    which this host cannot time: the table holds its device estimate (or says there is
    none), and onnxruntime's timing of the ONNX it is built from goes to the notes."""
    rows = metrics.get("latency_rows", [])
    engine = target["runtime"] == "tensorrt"
    if engine:
        rows = [row for row in rows if row["kind"] == "estimated"]
    lines = ["", "## Latency", ""]
    if engine and not rows:
        lines += [f"The TensorRT engine for {target['profile']}: not timed here (no TensorRT "
                  "on this host) and not estimated (the device has no published points of "
                  "its own: \"Target vs GPU\" below). `edgekit deploy` measures it on the "
                  "board.", ""]
        return lines
    lines += ["| precision | p50 ms | p90 ms | where | kind |", "| --- | ---: | ---: | --- | --- |"]
    for row in sorted(rows, key=lambda r: r["precision"] != "int8"):
        p90 = f"{row['p90_ms']:.3f}" if row.get("p90_ms") is not None else "–"
        lines.append(f"| {row['precision']} | {row['p50_ms']:.3f} | {p90} | {row['where']} "
                     f"| {row['kind']} |")
    return lines


def _host_timing_note(metrics: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """For TensorRT targets: onnxruntime's timing on this host, a note, not the headline."""
    measured = [row for row in metrics.get("latency_rows", []) if row["kind"] == "measured"]
    if target["runtime"] != "tensorrt" or not measured:
        return []
    figures = ", ".join(f"{row['precision']} p50 {row['p50_ms']:.3f} ms" for row in measured)
    s8s8 = ("; its signed-int8 activations take onnxruntime's s8s8 path, slow on x86 CPUs "
            "without VNNI" if any(row["precision"] == "int8" for row in measured) else "")
    return [f"onnxruntime on this host ran the ONNX files TensorRT builds its engine from "
            f"(not the engine; {measured[0]['where']}): {figures} (measured){s8s8}. "
            "`edgekit deploy` builds and measures the engine on the Jetson."]


def render_report(manifest: dict[str, Any]) -> str:
    recipe, target, metrics = manifest["recipe"], manifest["target"], manifest["metrics"]
    lines = [
        f"# edgekit compress: {recipe['model']} for {target['profile']} ({target['runtime']})",
        "",
        f"Data `{recipe['data']}`, "
        + (f"deployed as {metrics['deployed_as']}, " if metrics.get("deployed_as")
           else f"precision {recipe['precision']}, ")
        + f"{recipe['epochs']} fp32 epoch(s), {recipe['qat_epochs']} QAT epoch(s); "
        f"edgekit {manifest['edgekit_version']}, run took {manifest['duration_s']} s."
        + _precision_reason(target["profile"], recipe["precision"]),
        *_resumed(manifest.get("resumed")),
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
    ddp = metrics.get("distributed")
    if ddp:
        state = ("identical on every process" if ddp["int8_state_identical"]
                 else "**different** between processes")
        lines += ["", f"Trained on {ddp['processes']} processes (torchrun, "
                  f"DistributedDataParallel); weights and quantizer scales after QAT: {state}."]
    qat = metrics.get("qat_validation")
    if qat:
        epochs = ", ".join(f"epoch {i} {v:.4f}" for i, v in enumerate(qat["epochs"], 1))
        kept = ("the calibrated start (epoch 0): QAT did not validate better"
                if qat["kept_epoch"] == 0 else f"epoch {qat['kept_epoch']}")
        lines += ["", f"QAT on the validation set ({qat['metric']}): calibrated start "
                  f"{qat['start']:.4f}, {epochs}; kept {kept}."]
    if metrics.get("activation_ranges"):  # PTQ's range setting (edgekit.quantization.ranges)
        lines += ["", describe_ranges(metrics["activation_ranges"])]
    lines += _verification(metrics)
    lines += plan_report.report_lines(metrics.get("precision_plan"))
    lines += ["", "## Files", "", "SHA-256 shortened to 16 hex digits here; in full in "
              "manifest.json and bundle/bundle.json.", "",
              "| file | bytes | sha256 |", "| --- | ---: | --- |"]
    for name, art in manifest["artifacts"].items():
        lines.append(f"| `{art['path']}` ({name}) | {art['bytes']:,} | `{art['sha256'][:16]}` |")
    if "size_ratio" in metrics:
        deployed = manifest["artifacts"].get("lce") or manifest["artifacts"].get("int8")
        named = f" (`{deployed['path']}`, {deployed['bytes']:,} bytes)" if deployed else ""
        lines += ["", f"On disk: deployed file{named} is {metrics['size_ratio']:.2f}x smaller "
                  "than fp32."]
    lines += latency_section(metrics, target)
    lines += ["", f"Power {metrics.get('power', 'unavailable (not measured)')}", ""]
    lines += prune_report.report_lines(manifest)
    lines += _device_estimates(metrics.get("device_estimates"))
    lines += _deploying(manifest)
    for record in manifest.get("device_runs", {}).values():
        lines += device_section(record, target["runtime"])
    notes = [*metrics.get("notes", []), *_host_timing_note(metrics, target)]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)
