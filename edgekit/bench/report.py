"""`edgekit report`: Markdown and a self-contained HTML page (plots embedded as base64 PNG).

Every figure and table row says whether its numbers were measured or estimated; a missing
power reading stays "unavailable (reason)".
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from edgekit.bench.results import load_results
from edgekit.core.io import atomic_path
from edgekit.core.lazy import require


def _device(r: dict[str, Any]) -> str:
    return r["device"].get("profile") or r.get("hostname", "?")


def _name(r: dict[str, Any]) -> str:
    precision = r["model"].get("precision") or "?"
    default = f"{r['model']['name']} {r['runtime']['name']} {precision} @ {_device(r)}"
    return r.get("label") or default


def _energy_text(r: dict[str, Any]) -> str:
    p = r["power"]
    if not p["available"]:
        return f"unavailable ({p['reason']})"
    return (f"{p['energy_per_inference_mj']:.3f} ± {p['energy_per_inference_mj_uncertainty']:.3f}"
            f" ({p['sampler']}, {p['sample_rate_hz']:.0f} Hz)")


def table_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in results:
        lat = r["latency_ms"]
        ci = lat.get("median_ci95") or [float("nan")] * 2
        rows.append([
            r["kind"], r["model"]["name"], r["runtime"]["name"], r["model"].get("precision") or "?",
            _device(r), f"{lat['p50']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]", f"{lat['p90']:.3f}",
            f"{lat['p99']:.3f}",
            f"{r['throughput_ips']:.1f}" if r.get("throughput_ips") else "-", _energy_text(r),
        ])
    return rows


HEADER = ["kind", "model", "runtime", "precision", "device", "p50 ms [95% CI]", "p90 ms",
          "p99 ms", "inf/s", "energy mJ/inference"]


def _figures(results: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    matplotlib = require("matplotlib", purpose="plots in reports")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot")
    figures = []

    def save(fig: Any, title: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        figures.append((title, buf.getvalue()))

    measured = [r for r in results if r["kind"] == "measured" and r["latency_ms"].get("samples")]
    if measured:
        fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(measured)))
        ax.boxplot([r["latency_ms"]["samples"] for r in measured], orientation="horizontal",
                   showfliers=True)  # not vert=False: deprecated in 3.11, gone in 3.13
        ax.set_yticks(range(1, len(measured) + 1), [_name(r) for r in measured], fontsize=7)
        ax.set_xlabel("latency per inference (ms)")
        ax.set_title("Latency distributions (measured)")
        save(fig, "Latency distributions (measured)")

    with_energy = [r for r in results if r["power"]["available"]]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if with_energy:
        for r in with_energy:
            p = r["power"]
            ax.errorbar(r["latency_ms"]["p50"], p["energy_per_inference_mj"],
                        yerr=p["energy_per_inference_mj_uncertainty"], fmt="o", capsize=3,
                        label=f"{_name(r)} ({r['kind']})")
        ax.set_xscale("log")
        ax.legend(fontsize=6)
        title = "Latency vs energy per inference across devices (measured)"
    else:
        ax.text(0.5, 0.5, "no energy measurements: every result reports power unavailable",
                ha="center", va="center", fontsize=9, wrap=True)
        title = "Latency vs energy per inference (no measurements)"
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("energy per inference above idle (mJ)")
    ax.set_title(title)
    save(fig, title)

    groups: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for r in results:
        key = (r["runtime"]["name"], _device(r), r["kind"])
        groups.setdefault(key, {})[r["model"].get("precision") or "?"] = r
    pairs = {k: v for k, v in groups.items() if "fp32" in v and "int8" in v}
    if pairs:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{rt}\n{dev}\n({kind})" for rt, dev, kind in pairs]
        xs = range(len(pairs))
        ax.bar([x - 0.2 for x in xs], [v["fp32"]["latency_ms"]["p50"] for v in pairs.values()],
               0.4, label="fp32")
        ax.bar([x + 0.2 for x in xs], [v["int8"]["latency_ms"]["p50"] for v in pairs.values()],
               0.4, label="int8")
        ax.set_xticks(list(xs), labels, fontsize=7)
        ax.set_ylabel("p50 latency (ms)")
        kinds = sorted({k[2] for k in pairs})
        title = f"fp32 vs int8 per runtime ({' and '.join(kinds)})"
        ax.set_title(title)
        ax.legend()
        save(fig, title)
    return figures


def render_markdown(results: list[dict[str, Any]], figure_files: list[tuple[str, str]]) -> str:
    lines = ["# edgekit benchmark report", "",
             "Rows marked `measured` were timed on the named device; `estimated` rows come from "
             "the per-layer model calibrated on published measurements (docs/estimates.md; their "
             "interval and basis are in the Reproducibility list).", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |"
              for row in table_rows(results)]
    lines += ["", "## Reproducibility", ""]
    for r in results:
        s = r.get("state_before", {})
        lines.append(f"- {_name(r)}: {r['timestamp']}, host {r['hostname']}, CPU "
                     f"{s.get('cpu_model')}, runtime {r['runtime'].get('version')}, "
                     f"threads {r['runtime'].get('threads')}, model sha256 "
                     f"{(r['model'].get('sha256') or '')[:16]}")
    lines += ["", "## Figures", ""]
    lines += [f"![{title}]({name})" for title, name in figure_files]
    return "\n".join(lines) + "\n"


def render_html(results: list[dict[str, Any]], figures: list[tuple[str, bytes]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                   for row in table_rows(results))
    imgs = "".join(
        f"<figure><img alt='{esc(t)}' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode()}'><figcaption>{esc(t)}</figcaption></figure>"
        for t, png in figures)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>edgekit benchmark report"
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
            "collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head>"
            "<body><h1>edgekit benchmark report</h1><p>Rows marked <b>measured</b> were timed on "
            "the named device; <b>estimated</b> rows come from the per-layer model calibrated on "
            "published measurements (docs/estimates.md)."
            f"</p><table><tr>{head}</tr>{body}</table>{imgs}</body></html>\n")


def write_report(result_paths: list[Path], out_dir: Path) -> list[Path]:
    """Write ``report.md`` (+ PNGs) and a self-contained ``report.html`` into ``out_dir``."""
    results = load_results(list(result_paths))
    figures = _figures(results)
    names = [(title, f"figure-{i + 1}.png") for i, (title, _) in enumerate(figures)]
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for (_, name), (_, png) in zip(names, figures, strict=True):
            (tmp / name).write_bytes(png)
        (tmp / "report.md").write_text(render_markdown(results, names), "utf-8")
        (tmp / "report.html").write_text(render_html(results, figures), "utf-8")
    return [out_dir / "report.md", out_dir / "report.html"]
