"""The deploy bundle: everything the board needs, in one folder that works wherever it is copied.

``RUN/bundle/`` holds the deployed file(s), ``reference.npz`` (test inputs after
preprocessing and the trained model's outputs on them), ``bundle.json`` (target, input
contract, preprocessing, every file's full SHA-256), the agent wheel, ``DEVICE.md`` and, for
TensorRT targets, ``build_engine.sh`` + ``tensorrt_build.json`` with paths relative to the
bundle. Nothing in it needs torch: the board verifies with ``edgekit verify --expected``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.io import atomic_write_json, atomic_write_text, sha256_file
from edgekit.pipeline.stages import Context, deployed_key

FOLDER = "bundle"
REFERENCE = "reference.npz"
MANIFEST = "bundle.json"
GUIDE = "DEVICE.md"
# "a few hundred" test inputs, fewer for big inputs: 512 digits take 1.6 MB, while 224-px
# RGB images take 0.6 MB each, so the budget keeps a bundle copyable over a board's link.
MAX_SAMPLES = 512
INPUT_BUDGET_BYTES = 128 << 20


def reference_rows(ctx: Context) -> Any:
    """The test rows the reference records: stratified, at most MAX_SAMPLES and the budget."""
    import math

    per_sample = 4 * math.prod(ctx.input_shape)
    n = min(len(ctx.test), MAX_SAMPLES, max(32, INPUT_BUDGET_BYTES // per_sample))
    return ctx.test.subset_indices(n, seed=ctx.recipe.seed)


def write_bundle(ctx: Context, qm: Any | None, fp32: Any, files: dict[str, Path]
                 ) -> dict[str, Path]:
    """reference.npz, bundle.json, DEVICE.md and the agent wheel beside the deployed files."""
    from edgekit.bench.expected import write_reference
    from edgekit.calibration.forms import inputs_array, labels_array
    from edgekit.export.verify import onnx_output_step
    from edgekit.pipeline.agent_wheel import write_agent_wheel
    from edgekit.pipeline.stages import test_outputs

    folder = ctx.out / FOLDER
    rows = reference_rows(ctx)
    labels = labels_array(ctx.test)
    x, labels = inputs_array(ctx.test)[rows], None if labels is None else labels[rows]
    nets = {"fp32": fp32, **({"int8": qm} if qm is not None else {})}
    outputs = {p: test_outputs(ctx, p, nets[p])[rows] for p in ("fp32", "int8") if p in files}
    # the LCE file of a binary net reproduces the trained (fp32) net's outputs
    listed = {**{p: p for p in outputs}, **({"lce": "fp32"} if "lce" in files else {})}
    if "lce" in files and "fp32" not in outputs:
        outputs["fp32"] = test_outputs(ctx, "fp32", fp32)[rows]
    entries = {}
    for precision, reproduces in listed.items():
        path = files[precision]
        entry: dict[str, Any] = {"precision": precision, "outputs": reproduces,
                                 "sha256": sha256_file(path), "bytes": path.stat().st_size}
        if path.suffix == ".onnx" and (step := onnx_output_step(path)) is not None:
            entry["output_step"], entry["step_source"] = step
        if precision == "lce":  # a .tflite that LiteRT cannot run: the board must know
            entry["runtime"] = "lce"
        entries[path.name] = entry
    deployed = files[deployed_key(files)].name
    from edgekit import __version__

    record = {"task": ctx.task, "deployed": entries[deployed]["outputs"], "files": entries,
              "edgekit_version": __version__, "target": ctx.profile.name,
              "input": ctx.input_spec()}
    # in reference.npz and bundle.json: a board's verify record names it, so `edgekit
    # deploy` can tell results made with another bundle's reference
    record["bundle_id"] = bundle_id = _content_id(record, x, outputs, labels)
    out = {"reference": write_reference(folder / REFERENCE, x, outputs, labels, record),
           "agent_wheel": write_agent_wheel(folder)}
    manifest = {**_manifest(ctx, deployed, {p: files[p].name for p in listed}, len(x)),
                "bundle_id": bundle_id}
    out["device_guide"] = atomic_write_text(folder / GUIDE, device_guide(manifest))
    manifest["files"] = _listing(folder)  # DEVICE.md too: `edgekit deploy` copies what is listed
    out["bundle_manifest"] = atomic_write_json(folder / MANIFEST, manifest)
    return out


def _content_id(record: dict[str, Any], x: Any, outputs: dict[str, Any], labels: Any) -> str:
    """The bundle's id: a hash of what it deploys and records (the files' SHA-256, the
    reference's arrays), so the same run gives the same id and another run another one."""
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode())
    for array in (x, *(outputs[k] for k in sorted(outputs)), labels):
        if array is not None:
            digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()[:32]


def _listing(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file of the bundle but bundle.json itself: full SHA-256 and size."""
    return {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}


def _manifest(ctx: Context, deployed: str, models: dict[str, str], samples: int
              ) -> dict[str, Any]:
    from edgekit import __version__
    from edgekit.pipeline.agent_wheel import wheel_name

    engine = None
    if ctx.profile.runtime == "tensorrt":
        engine = {"script": "build_engine.sh", "config": "tensorrt_build.json",
                  "engine": Path(deployed).with_suffix(".engine").name}
    # runtimes: files that their suffix does not name the runtime of (the LCE .tflite)
    runtimes = {name: "lce" for precision, name in models.items() if precision == "lce"}
    return {
        "format": "edgekit-bundle", "version": 1, "edgekit_version": __version__,
        "target": {"profile": ctx.profile.name, "runtime": ctx.profile.runtime},
        "model": ctx.recipe.model, "deployed": deployed, "models": models,
        "runtimes": runtimes,
        "input": ctx.input_spec(),
        "reference": {"file": REFERENCE, "samples": samples, "task": ctx.task},
        "agent_wheel": wheel_name(), "engine": engine,
    }


# `pip install --user` fails inside a virtual environment, the usual place on a board: the
# guide makes one (with the system's packages visible: JetPack's TensorRT bindings live there)
VENV = "~/edgekit-env"
_RUNTIME_INSTALL = {
    "tensorrt": "JetPack provides TensorRT (`trtexec` in /usr/src/tensorrt/bin) and its Python "
                "bindings, which the environment above sees; running the engine from Python "
                "also needs `cuda-python` (`python3 -m pip install cuda-python`). To check the "
                "ONNX without TensorRT as well: `python3 -m pip install onnxruntime`.",
    "tflite": "`python3 -m pip install ai-edge-litert` (LiteRT, the TFLite runtime).",
    "onnxruntime": "`python3 -m pip install onnxruntime`.",
    # pip found no Linux aarch64/arm wheel of larq-compute-engine in any release (docs/lowbit.md)
    "lce": "Larq Compute Engine's runtime: LiteRT alone cannot run this file (custom ops "
           "LceQuantize, LceBconv2d). PyPI has no Linux ARM wheel of `larq-compute-engine`; "
           "build LCE for the board from larq/compute-engine and set EDGEKIT_LCE_PYTHON to a "
           "Python that imports `larq_compute_engine`. Without it, verify and bench stop "
           "with one line saying so.",
}


def device_guide(manifest: dict[str, Any]) -> str:
    """DEVICE.md: the exact commands, on the board, for this bundle's target."""
    target, runtime = manifest["target"]["profile"], manifest["target"]["runtime"]
    wheel, deployed = manifest["agent_wheel"], manifest["deployed"]
    engine = manifest["engine"]
    run_file = engine["engine"] if engine else deployed
    named = manifest.get("runtimes", {}).get(deployed)  # a runtime its suffix does not tell
    runtime = named or runtime
    run_file += f" --runtime {named}" if named else ""
    lines = [
        f"# Deploying {deployed} to {target} ({runtime})",
        "",
        "Everything here works from any directory, wherever this folder is copied; nothing "
        "needs torch. Full SHA-256 of every file: `bundle.json`.",
        "",
        "## From the workstation, in one command",
        "",
        "```sh",
        f"edgekit deploy RUN_DIR --remote user@board   # RUN_DIR holds this {FOLDER}/ folder",
        "```",
        "",
        "It copies this folder over SSH (host keys checked), "
        + ("builds the engine, " if engine else "")
        + "verifies, benchmarks (with power where the board has sensors) and adds the "
        "board's figures to the run's report.md. By hand, on the board:",
        "",
        "## 1. Install the agent",
        "",
        "```sh",
        f"python3 -m venv --system-site-packages {VENV}   # once; skip it inside your own venv",
        f". {VENV}/bin/activate",
        f"python3 -m pip install {wheel}   # edgekit itself, needs numpy only",
        "```",
        "",
        f"The runtime, in the same environment: {_RUNTIME_INSTALL[runtime]} Without "
        f"installing edgekit: `export PYTHONPATH=$PWD/{wheel}` and use `python3 -m edgekit` "
        "below.",
        "",
    ]
    step = 2
    if engine:
        lines += [f"## {step}. Build the TensorRT engine", "", "```sh", f"./{engine['script']}"
                  f"   # writes {engine['engine']} here; TRTEXEC=/path/to/trtexec overrides",
                  "```", "", f"The build settings are in `{engine['config']}`.", ""]
        step += 1
    lines += [
        f"## {step}. Verify: is the deployed file the trained model?", "", "```sh",
        f"python3 -m edgekit verify {run_file} --expected {REFERENCE} --json verify-device.json",
        "```", "",
        f"It runs the file in {runtime} on the {manifest['reference']['samples']} recorded test "
        "inputs and compares with the trained model's outputs (exit 1 when it does not match).",
        "",
        f"## {step + 1}. Benchmark", "", "```sh",
        f"python3 -m edgekit bench {run_file} --profile {target} --json bench-device.json",
        "```", "",
        f"## {step + 2}. Bring the figures back", "",
        "Copy `verify-device.json` and `bench-device.json` to the workstation and merge them "
        "into the run's report:", "", "```sh",
        "edgekit deploy RUN_DIR --results FOLDER_WITH_THE_JSON_FILES --host-name my-board",
        "```", "",
    ]
    return "\n".join(lines)
