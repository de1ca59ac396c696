"""Published latency points of NVIDIA GPUs from MLPerf Inference results repositories:
SingleStream mean latency (batch 1, TensorRT int8) of ResNet-50, SSD-MobileNet v1 and
RetinaNet on single-GPU systems in the max-performance setting (no MaxQ, no Triton, no MIG),
every submitter, read from local copies of the results repositories and written to
edgekit/devices/published/<device>.toml with the source file at its commit.

    python benchmarks/mlperf_points.py --mirror v1.0=/path/inference_results_v1.0 ...
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "edgekit" / "devices" / "published"
MODELS = {"resnet50": "resnet50", "ssd-mobilenet": "ssd_mobilenet_v1", "retinanet": "retinanet"}
DATES = {"v1.0": "2021-04-21", "v1.1": "2021-09-22", "v2.0": "2022-04-06",
         "v2.1": "2022-09-08", "v3.0": "2023-04-05"}
# (submitter, system folder) -> device profile: single-GPU systems only
SYSTEMS = {
    "a100-pcie-80gb": [("NVIDIA", "A100-PCIe-80GBx1_TRT"), ("Nettrix", "A100-PCIe-80GBx1_TRT"),
                       ("H3C", "A100_PCIe_80GBx1_TRT")],
    "a30": [("NVIDIA", "A30x1_TRT")],
    "a10": [("NVIDIA", "A10x1_TRT"), ("Alibaba", "A10x1_TRT"), ("Dell", "XE2420_A10x1_TRT"),
            ("Supermicro", "SYS-E403-12P-FN2T_1_A10_TRT")],
    "a2": [("NVIDIA", "A2x1_TRT"), ("Dell", "XR12_edge_A2x1_TRT"), ("H3C", "A2x1_R4900G5_TRT"),
           ("Supermicro", "SYS-220HE-FTNR_1_A2_TRT"), ("Supermicro", "SYS-120GQ-TNRT_1_A2_TRT"),
           ("Supermicro", "SYS-E403-12P-FN2T_1_A2_TRT"), ("Dell", "XR4520c_A2x1_TRT")],
    "t4": [("Lenovo", "T4x1_TRT"), ("DellEMC", "XE2420_T4x1_TRT"), ("Dell", "XE2420_1xT4_edge_TRT"),
           ("Dell", "XE2420_T4x1_TRT"), ("Alibaba", "T4x1_TRT")],
    "l4": [("NVIDIA", "L4x1_TRT"), ("Dell", "XR7620_L4x1_TRT")],
}
# v3.1's repository is too large to copy here: its two L4 points were read file by file (the
# summary and systems/L4x1_TRT.json at this commit) and are recorded with the same fields
V31 = "eaf622a25c00f2b4b1d2c4f5b4f430570429d24a"
READ_ONE_BY_ONE = {"l4": [
    ("v3.1", V31, "NVIDIA", "L4x1_TRT", "resnet50", 346007, 348735),
    ("v3.1", V31, "NVIDIA", "L4x1_TRT", "retinanet", 4714985, 4806550)]}
READ_SYSTEMS = {("v3.1", "L4x1_TRT"): {
    "system_name": "ASROCKRACK 1U1G-MILAN (1x L4, TensorRT)", "accelerator_model_name": "NVIDIA L4",
    "other_software_stack": "TensorRT 9.0.0, CUDA 12.2, cuDNN 8.9.2, Driver 525.105.17, "
                            "DALI 1.28.0"}}
DATES["v3.1"] = "2023-09-11"
DETECTION = "detection: the published latency includes box decoding and NMS, which the layer " \
    "records do not"


def _git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", "-C", git_dir, *args], check=True, capture_output=True,
                          text=True).stdout


def points_of(device: str, rnd: str, git_dir: str, commit: str, files: set[str]
              ) -> list[dict[str, object]]:
    out = []
    for submitter, system in SYSTEMS[device]:
        for folder, model in MODELS.items():
            run = f"closed/{submitter}/results/{system}/{folder}/SingleStream/performance/run_1"
            if f"{run}/mlperf_log_summary.txt" not in files:
                continue
            summary = _git(git_dir, "show", f"{commit}:{run}/mlperf_log_summary.txt")
            if "Result is : VALID" not in summary:
                continue
            mean = int(re.search(r"Mean latency \(ns\)\s*: (\d+)", summary).group(1))
            p90 = int(re.search(r"90th percentile latency \(ns\)\s*: (\d+)", summary).group(1))
            desc = json.loads(_git(git_dir, "show",
                                   f"{commit}:closed/{submitter}/systems/{system}.json"))
            out.append(_point(rnd, commit, submitter, system, model, mean, p90, desc))
    return out


def _point(rnd: str, commit: str, submitter: str, system: str, model: str, mean: int,
           p90: int, desc: dict[str, str]) -> dict[str, object]:
    folder = {v: k for k, v in MODELS.items()}[model]
    run = f"closed/{submitter}/results/{system}/{folder}/SingleStream/performance/run_1"
    point = {"model": model, "precision": "int8", "batch": 1, "latency_ms": mean / 1e6,
             "published": f"SingleStream Mean latency (ns) : {mean}; 90th percentile "
                          f"latency (ns) : {p90}; Result is : VALID",
             "source": f"https://github.com/mlcommons/inference_results_{rnd}/blob/"
                       f"{commit}/{run}/mlperf_log_summary.txt",
             "round": f"MLPerf Inference {rnd}, closed division, {submitter}, SingleStream",
             "date": DATES[rnd],
             "system": f"{desc['system_name']} ({system}; {desc['accelerator_model_name']})",
             "software": desc.get("other_software_stack") or desc.get("framework", ""),
             "weights_published_as": "int8"}
    if model != "resnet50":
        point["note"] = DETECTION
    return point


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mirror", action="append", required=True, metavar="ROUND=GIT_DIR")
    p.add_argument("--devices", default=",".join(SYSTEMS))
    args = p.parse_args()
    found: dict[str, list[dict[str, object]]] = {d: [] for d in args.devices.split(",")}
    for item in args.mirror:
        rnd, git_dir = item.split("=", 1)
        commit = _git(git_dir, "rev-parse", "HEAD").strip()
        files = set(_git(git_dir, "ls-tree", "-r", "--name-only", commit, "closed").split("\n"))
        for device in found:
            found[device] += points_of(device, rnd, git_dir, commit, files)
    for device in found:
        for rnd, commit, submitter, system, model, mean, p90 in READ_ONE_BY_ONE.get(device, []):
            found[device].append(_point(rnd, commit, submitter, system, model, mean, p90,
                                        READ_SYSTEMS[(rnd, system)]))
    for device, rows in found.items():
        lines = [f"# Published measured latencies of real models on {device}, to fit its latency",
                 "# model (edgekit.devices.latency_model): MLPerf Inference SingleStream mean",
                 "# latency (batch 1, TensorRT int8), single-GPU systems in the max-performance",
                 "# setting, every submitter; `published` quotes the source file at its commit,",
                 "# `software` is the system description's software stack. Written by",
                 "# benchmarks/mlperf_points.py from local copies of the results repositories.",
                 f'device = "{device}"', 'runtime = "TensorRT (GPU), max-performance setting"', ""]
        for r in rows:
            lines += ["[[point]]", *[f"{k} = {json.dumps(v, ensure_ascii=False)}"
                                     for k, v in r.items()], ""]
        (PUBLISHED / f"{device}.toml").write_text("\n".join(lines))
        print(f"{device:16} {len(rows):3} points: " + ", ".join(sorted({str(r['model'])
                                                                           for r in rows})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
