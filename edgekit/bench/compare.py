"""One model file on every device profile: latency, throughput, energy per inference and
inferences per joule, measured where a bench record of that file on that profile exists,
estimated (calibrated per-layer model, with its interval) elsewhere.

``edgekit devices --compare MODEL_FILE [--plot PNG]`` prints (and plots) it; the compress
report shows the target and the desktop GPU (``edgekit.pipeline.measure``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import EdgekitError
from edgekit.core.io import sha256_file

if TYPE_CHECKING:
    from edgekit.devices.calibrated import LayerEstimate

DESKTOP_GPU = "desktop-rtx"


def _measured_rows(records: list[dict[str, Any]], digest: str, name: str
                   ) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        profile = (r.get("device") or {}).get("profile")
        model = r.get("model") or {}
        same = model.get("sha256") == digest if model.get("sha256") else model.get("name") == name
        if r.get("kind") != "measured" or not profile or not same:
            continue
        lat = r["latency_ms"]
        power = r["power"]
        energy = power.get("energy_per_inference_mj") if power.get("available") else None
        rows[profile] = {
            "device": profile, "kind": "measured", "precision": model.get("precision") or "?",
            "latency_ms": lat["p50"], "interval_ms": lat.get("median_ci95"),
            "throughput_ips": r.get("throughput_ips"), "energy_mj": energy,
            "basis": f"measured on {r.get('hostname', '?')} ({r['runtime'].get('name', '')} "
                     f"{r['runtime'].get('version', '')}".rstrip() + ")",
            "energy_basis": (power.get("sampler", "") if energy is not None
                             else f"unavailable ({power.get('reason', 'not measured')})")}
    return rows


def estimate_latency(model_path: str | Path, device: str) -> LayerEstimate:
    """The calibrated latency estimate of one batch-1 inference of an ONNX or TFLite file on
    a device profile, with its interval (the figure compress reports; the roofline lower
    bound is ``edgekit.devices.roofline_bound``)."""
    from edgekit.bench.layers import layer_records
    from edgekit.devices import get_profile
    from edgekit.devices.calibrated import estimate

    return estimate(get_profile(device).name, layer_records(Path(model_path)))


def compare_devices(model_path: str | Path, *, devices: list[str] | None = None,
                    results: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per device profile (``devices``: a subset, in that order)."""
    from edgekit.bench.layers import layer_records
    from edgekit.devices import get_profile, list_profiles
    from edgekit.devices.calibrated import energy_per_inference_mj, estimate

    path = Path(model_path)
    records = layer_records(path)
    measured = _measured_rows(results or [], sha256_file(path), path.name)
    rows = []
    for name in devices or list_profiles():
        profile = get_profile(name)
        if profile.name in measured:
            rows.append(measured[profile.name])
            continue
        try:
            est = estimate(profile.name, records)
        except EdgekitError as exc:  # e.g. no calibration for this runtime family
            rows.append({"device": profile.name, "kind": "unavailable", "basis": str(exc)})
            continue
        energy, how = energy_per_inference_mj(profile.name, est.latency_ms)
        rows.append({"device": profile.name, "kind": "estimated", "precision": est.precision,
                     "latency_ms": est.latency_ms, "interval_ms": [est.low_ms, est.high_ms],
                     "throughput_ips": 1e3 / est.latency_ms, "energy_mj": energy,
                     "basis": est.text(), "energy_basis": how, "points": est.points,
                     "source": est.source, "loo_median_ratio_error": est.loo_median_ratio_error})
    return rows


def _num(value: float | None, fmt: str = ".3g") -> str:
    return "–" if value is None else format(value, fmt)


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A Markdown table: the kind of every figure is in its row."""
    lines = ["| device | kind | precision | latency ms (interval) | inf/s | mJ/inference "
             "| inf/J | basis |", "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        if r["kind"] == "unavailable":
            lines.append(f"| {r['device']} | unavailable | – | – | – | – | – | {r['basis']} |")
            continue
        span = r.get("interval_ms") or [None, None]
        interval = (f" ({_num(span[0])}–{_num(span[1])})" if span[0] is not None else "")
        energy = r.get("energy_mj")
        per_joule = 1e3 / energy if energy else None
        lines.append(f"| {r['device']} | {r['kind']} | {r['precision']} | "
                     f"{_num(r['latency_ms'])}{interval} | {_num(r.get('throughput_ips'))} | "
                     f"{_num(energy)} | {_num(per_joule)} | {r['basis']}; energy: "
                     f"{r['energy_basis']} |")
    return lines


def plot_png(rows: list[dict[str, Any]], title: str) -> bytes:
    """Latency per device as bars with their intervals, coloured by the kind of figure
    (measured / estimated), on a log axis: a PNG (needs the ``report`` extra)."""
    import io

    from edgekit.core.lazy import require

    matplotlib = require("matplotlib", purpose="plotting the device comparison")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot")
    shown = [r for r in rows if r["kind"] != "unavailable"]
    colours = {"measured": "tab:blue", "estimated": "tab:orange"}
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.4 * max(1, len(shown))))
    for y, r in enumerate(shown):
        span = r.get("interval_ms") or [None, None]
        err = None
        if span[0] is not None and span[1] is not None:
            err = [[r["latency_ms"] - span[0]], [span[1] - r["latency_ms"]]]
        ax.barh(y, r["latency_ms"], xerr=err, color=colours.get(r["kind"], "grey"),
                capsize=3)
    ax.set_yticks(range(len(shown)), [f"{r['device']} ({r['kind']})" for r in shown],
                  fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency per inference, batch 1 (ms); whiskers: interval")
    ax.set_title(title, fontsize=9)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
