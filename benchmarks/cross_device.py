"""Do the deployed int8 files compute the same outputs on another CPU as on this one?

The parity checks of benchmarks/quantization.py run the files on this x86 CPU; a board runs
other kernels (XNNPACK and onnxruntime's MLAS pick NEON, dot-product or i8mm code by what
the CPU has). Three steps; ``run`` needs numpy, the runtimes and edgekit's core package only
(no torch), so it runs on the board itself or in benchmarks/arm64_emulated.sh's emulation:

    # here: the test inputs of every family that has a file in DIR (needs torch)
    python benchmarks/cross_device.py inputs --files DIR --out inputs.npz
    # here, once with the ONNX files in onnxruntime's reference kernels (each Q/DQ op
    # unfused: the arithmetic the file defines and the trained model computes), once fused
    python benchmarks/cross_device.py run --files DIR --inputs inputs.npz --out ref.npz \
        --onnx-reference --label "x86 reference"
    python benchmarks/cross_device.py run --files DIR --inputs inputs.npz --out x86.npz
    # on each other machine (fused kernels, as deployed)
    python benchmarks/cross_device.py run --files DIR --inputs inputs.npz --out a57.npz
    # here: each machine's outputs against the reference run
    python benchmarks/cross_device.py compare ref.npz x86.npz a57.npz --json PATH

TFLite files have no reference mode here: LiteRT with XNNPACK on this x86 CPU is the
reference, the runtime their parity with the trained model is measured in. Files are named
as benchmarks/quantization.py writes them (``FAMILY.KIND.onnx|tflite``); ``--glob`` picks
them (default: edgekit's TFLite and onnxruntime-target int8 files, which are meant for CPUs;
the TensorRT-target file is meant for TensorRT).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_GLOBS = "*.int8.tflite,*.onnxruntime.int8.onnx"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    inputs = sub.add_parser("inputs", help="write the test inputs of each family (needs torch)")
    run = sub.add_parser("run", help="run every file on these inputs (numpy + runtimes only)")
    for s in (inputs, run):
        s.add_argument("--files", required=True, type=Path, help="folder of deployed files")
        s.add_argument("--glob", default=DEFAULT_GLOBS, help=f"default: {DEFAULT_GLOBS}")
        s.add_argument("--out", required=True, type=Path, help=".npz to write")
    run.add_argument("--inputs", required=True, type=Path, help="the inputs step's .npz")
    run.add_argument("--threads", type=int, default=2)
    run.add_argument("--onnx-reference", action="store_true",
                     help="onnxruntime with graph optimization off: each Q/DQ op unfused, the "
                          "arithmetic the ONNX file defines (and the trained model computes)")
    run.add_argument("--label", default=platform.machine(), help="name of this machine")
    compare = sub.add_parser("compare", help="outputs of machines B against machine A")
    compare.add_argument("a", type=Path, help="the run step's .npz of machine A")
    compare.add_argument("b", type=Path, nargs="+", help="the .npz of each machine B")
    compare.add_argument("--json", help="write the result here")
    args = p.parse_args()
    if args.step == "compare":
        return _compare(args.a, args.b, args.json)
    files = _deployed_files(args.files, args.glob)
    if args.step == "inputs":
        _write_inputs(files, args.out)
    else:
        _run(files, args.inputs, args.out, args.threads, args.label, args.onnx_reference)
    return 0


def _deployed_files(folder: Path, globs: str) -> list[Path]:
    files = sorted({f for g in globs.split(",") for f in folder.glob(g.strip())})
    if not files:
        raise SystemExit(f"no file in {folder} matches {globs}")
    return files


def _family(path: Path) -> str:
    return path.name.split(".")[0]


def _kind(name: str) -> str:
    """``mobilenet_v2.onnxruntime.int8.onnx`` -> ``onnxruntime_onnx``; ``x.int8.tflite`` ->
    ``tflite``: which file of each family, for the metrics."""
    return "_".join(p for p in name.split(".")[1:] if p != "int8")


def _write_inputs(files: list[Path], out: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from quantization import data_splits  # the test sets benchmarks/quantization.py scores

    from edgekit.core.io import atomic_write_bytes

    arrays = {f: data_splits(f)[2].x.astype(np.float32) for f in {_family(p) for p in files}}
    atomic_write_bytes(out, _npz_bytes(arrays))
    print(", ".join(f"{k} {v.shape}" for k, v in sorted(arrays.items())), "->", out)


def _run(files: list[Path], inputs_path: Path, out: Path, threads: int, label: str,
         onnx_reference: bool) -> None:
    from edgekit.core.io import atomic_write_bytes
    from edgekit.runtime import open_runner

    inputs = _load_npz(inputs_path)
    outputs: dict[str, np.ndarray] = {}
    for path in files:
        if _family(path) not in inputs:
            raise SystemExit(f"{inputs_path.name} has no inputs for {_family(path)} ({path.name})")
        x = inputs[_family(path)]
        runner = open_runner(path, threads=threads, onnx_reference=onnx_reference)
        try:
            outputs[path.name] = np.concatenate(
                [runner.predict(x[i:i + 64]) for i in range(0, len(x), 64)])
        finally:
            runner.close()
        print(f"{path.name}: {outputs[path.name].shape}", flush=True)
    machine = _machine(label) | {"onnx_kernels": "reference" if onnx_reference else "fused"}
    outputs["__machine__"] = np.array(json.dumps(machine))
    atomic_write_bytes(out, _npz_bytes(outputs))


def _machine(label: str) -> dict[str, Any]:
    """What picked the kernels: architecture, CPU feature flags, runtime versions."""
    import importlib.metadata as md

    versions = {}
    for dist in ("numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return {"label": label, "machine": platform.machine(), "python": platform.python_version(),
            "cpu_features": _cpu_features(), "versions": versions}


def _cpu_features() -> list[str]:
    """aarch64: the kernel's hwcap names that matter to int8 kernels; x86: the AVX family."""
    if platform.machine() == "aarch64":
        auxv = dict(struct.iter_unpack("<QQ", Path("/proc/self/auxv").read_bytes()))
        hwcap, hwcap2 = auxv.get(16, 0), auxv.get(26, 0)  # AT_HWCAP, AT_HWCAP2
        bits = {"asimd": (hwcap, 1), "fphp": (hwcap, 9), "asimddp": (hwcap, 20),
                "sve": (hwcap, 22), "i8mm": (hwcap2, 13)}
        return [name for name, (word, bit) in bits.items() if word >> bit & 1]
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("flags")).split(":")[1].split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    from edgekit.bench.inputs import load_array_file  # no unpickling, clear errors

    arrays = load_array_file(path)
    if not isinstance(arrays, dict):
        raise SystemExit(f"{path.name} is a single array, not this script's .npz")
    return arrays


def _load_outputs(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays = _load_npz(path)
    if "__machine__" not in arrays:
        raise SystemExit(f"{path.name} is not an output of the run step")
    return json.loads(str(arrays.pop("__machine__"))), arrays


def _compare(a_path: Path, b_paths: list[Path], json_path: str | None) -> int:
    """Each machine B's outputs against machine A's, file by file: top-1 agreement over the
    class axis (images for classifiers, pixels for segmentation), the share of output values
    that differ at all, and the largest difference relative to A's largest output."""
    machine_a, a = _load_outputs(a_path)
    machines, rows = [], []
    for b_path in b_paths:
        machine_b, b = _load_outputs(b_path)
        machines.append(machine_b)
        common = sorted(a.keys() & b.keys())
        if not common:
            raise SystemExit(f"{a_path.name} and {b_path.name} have no file in common")
        for name in common:
            x, y = a[name], b[name]
            if x.shape != y.shape:
                raise SystemExit(f"{name}: output shapes differ, {x.shape} vs {y.shape}")
            rows.append({"machine": machine_b["label"], "file": name,
                         "top1_agreement": float((x.argmax(1) == y.argmax(1)).mean()),
                         "values_differing": float((x != y).mean()),
                         "max_abs_diff_rel": float(np.abs(x - y).max() / (np.abs(x).max() or 1))})
    for m in (machine_a, *machines):
        print(f"{'A' if m is machine_a else 'B'}: {m['label']} {m['cpu_features']}, "
              f"ONNX in {m['onnx_kernels']} kernels")
    print("| machine B | file | top-1 agreement | outputs differing | max diff / max abs |\n"
          "| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['machine']} | {r['file']} | {r['top1_agreement']:.4f} "
              f"| {r['values_differing']:.2%} | {r['max_abs_diff_rel']:.2e} |")
    metrics: dict[str, Any] = {}
    for kind in sorted({_kind(r["file"]) for r in rows}):  # over every machine B
        part = [r for r in rows if _kind(r["file"]) == kind]
        metrics |= {f"{kind}_files": len(part),
                    f"{kind}_identical": sum(r["values_differing"] == 0 for r in part),
                    f"{kind}_top1_agreement_min": min(r["top1_agreement"] for r in part),
                    f"{kind}_values_differing_max": max(r["values_differing"] for r in part)}
    print(json.dumps(metrics))
    if json_path:
        from _provenance import run_info

        from edgekit.core.io import atomic_write_json

        atomic_write_json(json_path, {**run_info("cross_device", None), "a": machine_a,
                                      "b": machines, "rows": rows, "metrics": metrics})
    return 0


if __name__ == "__main__":
    from edgekit.core.errors import EdgekitError

    try:
        raise SystemExit(main())
    except EdgekitError as exc:  # unreadable files, a model the runtime rejects
        raise SystemExit(f"cross_device: {exc}") from None
