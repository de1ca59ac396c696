"""One model file on every device profile: latency, throughput, energy per inference and
inferences per joule, measured where a bench record of that file on that profile exists,
estimated (calibrated per-layer model, with its interval and the number of points behind
it) elsewhere. Profiles with no points of their own are left out unless asked for
(``include_unmeasured``); then their rows are labelled *transferred*.

``edgekit devices --compare MODEL_FILE [--plot PNG]`` prints (and plots) it; the compress
report shows the target and the GPU (``edgekit.pipeline.measure``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import EdgekitError
from edgekit.core.io import sha256_file

if TYPE_CHECKING:
    from edgekit.devices.calibrated import LayerEstimate

# The GPU the compress report compares the target with: the A10 is GA102, the die of the
# GeForce RTX 3080/3090, and has published batch-1 points of its own (MLPerf Inference edge
# rounds, TensorRT int8); no GeForce card has such points.
DESKTOP_GPU = "a10"


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
            "throughput_ips": r.get("throughput_ips"), "energy_mj": energy, "points": None,
            "basis": f"measured on {r.get('hostname', '?')} ({r['runtime'].get('name', '')} "
                     f"{r['runtime'].get('version', '')}".rstrip() + ")",
            "energy_basis": (power.get("sampler", "") if energy is not None
                             else f"unavailable ({power.get('reason', 'not measured')})")}
    return rows


def estimate_latency(model_path: str | Path, device: str) -> LayerEstimate:
    """The calibrated latency estimate of one batch-1 inference of an ONNX or TFLite file on
    a device profile, with its interval and the points behind it (the figure compress
    reports; the roofline lower bound is ``edgekit.devices.roofline_bound``). For a device
    with no published points of its own its ``kind`` is 'transferred' (borrowed from devices
    of its runtime, which compress's report and comparisons do not show unless asked)."""
    from edgekit.bench.layers import layer_records
    from edgekit.devices import get_profile
    from edgekit.devices.calibrated import estimate

    return estimate(get_profile(device).name, layer_records(Path(model_path)))


def compare_devices(model_path: str | Path, *, devices: list[str] | None = None,
                    results: list[dict[str, Any]] | None = None,
                    include_unmeasured: bool = False) -> list[dict[str, Any]]:
    """One row per device profile (``devices``: a subset, in that order; by default the
    profiles with points of their own and those ``results`` measured)."""
    from edgekit.bench.layers import layer_records
    from edgekit.devices import get_profile, list_profiles
    from edgekit.devices.calibrated import default_devices

    path = Path(model_path)
    records = layer_records(path)
    measured = _measured_rows(results or [], sha256_file(path), path.name)
    if devices is None:
        shown = list_profiles() if include_unmeasured else default_devices()
        devices = [n for n in list_profiles() if n in shown or n in measured]
    rows = []
    for name in devices:
        profile = get_profile(name)
        if profile.name in measured:
            rows.append(measured[profile.name])
            continue
        rows.append(_estimated_row(profile.name, records, include_unmeasured))
    return rows


def _estimated_row(device: str, records: list[Any], include_unmeasured: bool
                   ) -> dict[str, Any]:
    from edgekit.devices.calibrated import energy_upper_bound_mj, estimate, has_own_points
    from edgekit.devices.energy_model import energy_estimate_mj

    if not include_unmeasured and not has_own_points(device):
        return {"device": device, "kind": "unmeasured", "points": 0,
                "basis": "no published points of its own: not estimated here (`edgekit devices "
                         "--compare FILE --include-unmeasured` borrows other devices' fits)"}
    try:
        est = estimate(device, records)
    except EdgekitError as exc:  # e.g. no calibration for this runtime family
        return {"device": device, "kind": "unavailable", "points": 0, "basis": str(exc)}
    bound, how = energy_upper_bound_mj(device, est.latency_ms)
    row = {"device": device, "kind": est.kind, "precision": est.precision,
           "latency_ms": est.latency_ms, "interval_ms": [est.low_ms, est.high_ms],
           "throughput_ips": 1e3 / est.latency_ms, "points": est.points, "source": est.source,
           "energy_mj": None, "energy_interval_mj": None, "energy_points": 0,
           "energy_upper_bound_mj": bound, "energy_bound_basis": how,
           "basis": est.text(), "energy_basis": "no measured power for this device",
           "loo_median_ratio_error": est.loo_median_ratio_error}
    energy = energy_estimate_mj(device, records, est.latency_ms)
    if energy is not None and est.kind == "estimated":
        mj, (lo, hi), model = energy
        # the latency's interval and the power model's, taken as independent extremes
        lat_lo = est.low_ms / est.latency_ms if est.low_ms else 1.0
        lat_hi = est.high_ms / est.latency_ms if est.high_ms else 1.0
        row.update(energy_mj=mj, energy_interval_mj=[mj * lo * lat_lo, mj * hi * lat_hi],
                   energy_points=model.points, energy_basis=model.basis(),
                   energy_loo_median_ratio_error=model.loo_median_ratio_error)
    return row


def _num(value: float | None, fmt: str = ".3g") -> str:
    return "–" if value is None else format(value, fmt)


def table_lines(rows: list[dict[str, Any]], *, bounds: bool = True) -> list[str]:
    """A Markdown table: the kind of every figure and the points behind it are in its row.
    ``bounds``: also print the power-mode budget bound where no energy figure exists."""
    lines = ["| device | kind | points | precision | latency ms (interval) | inf/s "
             "| mJ/inference (interval) | inf/J | basis |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        points = "–" if r.get("points") is None else str(r["points"])
        if r["kind"] in ("unavailable", "unmeasured"):
            lines.append(f"| {r['device']} | {r['kind']} | {points} | – | – | – | – | – "
                         f"| {r['basis']} |")
            continue
        energy, span_mj = r.get("energy_mj"), r.get("energy_interval_mj")
        per_joule = 1e3 / energy if energy else None
        energy_text = _num(energy) + (f" ({_num(span_mj[0])}–{_num(span_mj[1])})"
                                      if energy is not None and span_mj else "")
        energy_basis = r["energy_basis"]
        if energy is None and bounds and r.get("energy_upper_bound_mj") is not None:
            energy_text = f"≤ {_num(r['energy_upper_bound_mj'])} (bound)"
            energy_basis = r["energy_bound_basis"]
        lines.append(f"| {r['device']} | {r['kind']} | {points} | {r['precision']} | "
                     f"{_num(r['latency_ms'])}{_interval(r.get('interval_ms'))} | "
                     f"{_num(r.get('throughput_ips'))} | {energy_text} | {_num(per_joule)} | "
                     f"{r['basis']}; energy: {energy_basis} |")
    return lines


def _interval(span: list[float | None] | None) -> str:
    if not span or span[0] is None or span[1] is None:
        return ""
    return f" ({_num(span[0])}–{_num(span[1])})"


def plot_png(rows: list[dict[str, Any]], title: str) -> bytes:
    """Latency and energy per inference per device as bars with their intervals, coloured by
    the kind of figure (measured / estimated / transferred), on log axes: a PNG (needs the
    ``report`` extra). A device without an energy figure has no energy bar."""
    import io

    from edgekit.core.lazy import require

    matplotlib = require("matplotlib", purpose="plotting the device comparison")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot")
    shown = [r for r in rows if r["kind"] not in ("unavailable", "unmeasured")]
    colours = {"measured": "tab:blue", "estimated": "tab:orange", "transferred": "tab:grey"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 1.6 + 0.4 * max(1, len(shown))), sharey=True)
    for ax, key, span_key, label in (
            (axes[0], "latency_ms", "interval_ms", "latency per inference, batch 1 (ms)"),
            (axes[1], "energy_mj", "energy_interval_mj", "energy per inference (mJ)")):
        values = []
        for y, r in enumerate(shown):
            value = r.get(key)
            if value is None:
                continue
            span = r.get(span_key) or [None, None]
            err = None
            if span[0] is not None and span[1] is not None:
                err = [[value - span[0]], [span[1] - value]]
                values += span
            values.append(value)
            ax.barh(y, value, xerr=err, color=colours.get(r["kind"], "black"), capsize=3)
        ax.set_xlabel(f"{label}; whiskers: interval", fontsize=8)
        if not values:  # no device here has measured power behind an energy figure
            ax.text(0.5, 0.5, "no energy figure: no measured power", ha="center",
                    va="center", transform=ax.transAxes, fontsize=8)
            ax.set_xticks([])
            continue
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 2, max(values) * 2)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    points = ["measured" if r.get("points") is None else f"{r['points']} points"
              for r in shown]
    axes[0].set_yticks(range(len(shown)), [f"{r['device']} ({r['kind']}, {n})"
                                           for r, n in zip(shown, points, strict=True)],
                       fontsize=7)
    fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
