"""Energy points from MLPerf Inference power results: per-second wall power (spl.txt) of the
SingleStream runs of MaxQ (power-measured) systems with one NVIDIA GPU or Jetson, read from
local copies of the results repositories, written to
edgekit/devices/published/power/<device>.toml. The wall power is the whole box's (a Jetson
dev kit, or a server with its CPUs, fans and one GPU).

For each run: the mean of the analyser's samples between loadgen's power_begin and power_end
(mlperf_log_detail.txt; the window MLPerf's own checker uses), the idle draw (10th percentile
of the samples before power_begin: the box waiting between warm-up and the timed run), the
mean latency and the queries per second with loadgen overhead (mlperf_log_summary.txt).
Energy per inference: mean wall power during the run x mean latency (the draw of the whole
box while one inference runs; MLPerf's own SingleStream figure, mean power / QPS, also counts
loadgen's gaps between queries: the QPS is recorded beside it).

    python benchmarks/mlperf_power.py --mirror v1.0=/path/inference_results_v1.0 ...
(each path a git directory; the commit read is recorded in every point)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "edgekit" / "devices" / "published" / "power"
SYSTEMS = {("NVIDIA", "Xavier_NX_TRT_MaxQ"): "jetson-xavier-nx",
           ("NVIDIA", "Orin_TRT_MaxQ"): "jetson-agx-orin",
           ("Dell", "XE2420_A10x1_TRT_MaxQ"): "a10", ("Dell", "XR12_A2x1_TRT_MaxQ"): "a2",
           ("Dell", "XR4520c_MaxQ_A2x1_TRT_MaxQ"): "a2", ("Dell", "XR5610_L4x1_TRT_MaxQ"): "l4"}
MODELS = {"resnet50": "resnet50", "ssd-mobilenet": "ssd_mobilenet_v1", "retinanet": "retinanet"}
DATES = {"v1.0": "2021-04-21", "v1.1": "2021-09-22", "v2.0": "2022-04-06",
         "v2.1": "2022-09-08", "v3.0": "2023-04-05"}
TIME = "%m-%d-%Y %H:%M:%S.%f"


def _show(git_dir: Path, commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(git_dir), "show", f"{commit}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def _files(git_dir: Path, commit: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(git_dir), "ls-tree", "-r", "--name-only", commit,
                          "closed"], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def run_point(git_dir: Path, commit: str, run: str) -> dict[str, object]:
    """One SingleStream power run (``run``: its .../performance/run_1 folder)."""
    detail = _show(git_dir, commit, f"{run}/mlperf_log_detail.txt")
    window = [dt.datetime.strptime(re.search(rf'"key": "power_{k}", "value": "([^"]+)"',
                                             detail).group(1), TIME) for k in ("begin", "end")]
    summary = _show(git_dir, commit, f"{run}/mlperf_log_summary.txt")
    mean_ns = int(re.search(r"Mean latency \(ns\)\s*: (\d+)", summary).group(1))
    qps_line = re.search(r"QPS w/ loadgen overhead\s*: ([\d.]+)", summary)
    assert "Result is : VALID" in summary, run
    before, inside = [], []
    for line in _show(git_dir, commit, f"{run}/spl.txt").splitlines():
        fields = line.split(",")
        when, watts = dt.datetime.strptime(fields[1], TIME), float(fields[3])
        if when < window[0]:
            before.append(watts)
        elif when <= window[1]:
            inside.append(watts)
    mean_w = statistics.fmean(inside)
    idle_w = statistics.quantiles(before, n=10)[0]
    qps = float(qps_line.group(1))
    return {"mean_w": round(mean_w, 3), "idle_w": round(idle_w, 3), "samples": len(inside),
            "latency_ms": mean_ns / 1e6, "qps": qps, "energy_mj": round(mean_w * mean_ns / 1e6, 4),
            "published": (f"spl.txt: {len(inside)} samples between power_begin "
                          f"{window[0]:%H:%M:%S} and power_end {window[1]:%H:%M:%S}, mean "
                          f"{mean_w:.3f} W; summary: Mean latency (ns) : {mean_ns}; "
                          + re.sub(r"\s+", " ", qps_line.group(0).strip()))}


def beside_published(device: str, mirrors: dict[str, tuple[str, str]]
                     ) -> list[dict[str, object]]:
    """Power runs beside the device's published latency points (a power log next to the
    summary the point was read from, in a mirrored repository at the point's commit)."""
    import tomllib

    data = tomllib.loads((OUT.parent / f"{device}.toml").read_text())
    rows = []
    for pt in data["point"]:
        m = re.fullmatch(r"https://github.com/mlcommons/inference_results_(v[\d.]+)/blob/"
                         r"([0-9a-f]{40})/(.+)/mlperf_log_summary.txt", pt["source"])
        if not m or mirrors.get(m.group(1), ("", ""))[1] != m.group(2):
            continue
        rnd, commit, run = m.groups()
        git_dir = Path(mirrors[rnd][0])
        try:
            _show(git_dir, commit, f"{run}/spl.txt")
        except subprocess.CalledProcessError:
            continue  # a performance-only submission: no power log
        rows.append({"model": pt["model"], "precision": pt["precision"], "batch": 1,
                     **run_point(git_dir, commit, run),
                     "source": pt["source"].replace("mlperf_log_summary.txt", "spl.txt"),
                     "round": f"{pt['round']}, power", "date": pt.get("date", DATES[rnd]),
                     "power_mode": "submitted (the latency point's own run)",
                     "system": pt.get("system", ""), "software": pt.get("software", "")})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirror", action="append", required=True, metavar="ROUND=GIT_DIR")
    p.add_argument("--out", default=str(OUT), help="folder for <device>.toml (default: the "
                   "package's published/power)")
    p.add_argument("--beside-published", default="raspberry-pi-4",
                   help="devices whose published latency points have power logs beside them")
    args = p.parse_args()
    points: dict[str, list[dict[str, object]]] = {}
    mirrors = {}
    for item in args.mirror:
        rnd, path = item.split("=", 1)
        git_dir = Path(path)
        commit = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        mirrors[rnd] = (path, commit)
        repo = f"inference_results_{rnd}"
        for f in _files(git_dir, commit):
            m = re.fullmatch(r"closed/(\w+)/results/([\w-]+)/([\w-]+)/SingleStream/"
                             r"performance/run_1/spl.txt", f)
            if not m or m.group(1, 2) not in SYSTEMS or m.group(3) not in MODELS:
                continue
            device = SYSTEMS[m.group(1, 2)]
            run = f.rsplit("/", 1)[0]
            system = json.loads(_show(git_dir, commit,
                                      f"closed/{m.group(1)}/systems/{m.group(2)}.json"))
            point = {"model": MODELS[m.group(3)], "precision": "int8", "batch": 1,
                     **run_point(git_dir, commit, run),
                     "source": f"https://github.com/mlcommons/{repo}/blob/{commit}/{run}/spl.txt",
                     "round": f"MLPerf Inference {rnd}, closed division, {m.group(1)}, "
                              "SingleStream, power",
                     "date": DATES[rnd], "power_mode": "MaxQ",
                     "system": f"{system['system_name']} ({m.group(2)})",
                     "software": system.get("other_software_stack") or system.get("framework", "")}
            points.setdefault(device, []).append(point)
            print(f"{device:18} {rnd} {point['model']:18} {point['mean_w']:7.3f} W "
                  f"idle {point['idle_w']:7.3f} W {point['energy_mj']:8.3f} mJ", flush=True)
    for device in filter(None, args.beside_published.split(",")):
        points[device] = beside_published(device, mirrors)
        print(f"{device:18} {len(points[device])} power runs beside its published points")
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    for device, rows in points.items():
        lines = [f"# Measured wall power of MLPerf Inference SingleStream runs on {device}",
                 "# (power-measured submissions; `power_mode` says which setting), extracted by",
                 "# benchmarks/mlperf_power.py from spl.txt, mlperf_log_detail.txt and",
                 "# mlperf_log_summary.txt at the pinned commits in `source`.",
                 f'device = "{device}"', ""]
        for r in rows:
            lines.append("[[energy]]")
            for k, v in r.items():
                lines.append(f"{k} = {json.dumps(v, ensure_ascii=False)}")
            lines.append("")
        (out / f"{device}.toml").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
