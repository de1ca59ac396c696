"""Per-layer latency of an ONNX file where it runs: onnxruntime's profiler on the optimized
graph onnxruntime actually executes (fused QLinearConv, layout reorders, the Q/DQ it left),
each node's kernel time averaged over runs and summed per model layer.

Layers are named from the node names ``torch.onnx.export`` writes, which carry the module
scope (``/features/features.5/block/block.1/block.1.0/Conv`` → ``features.5.block.1.0``),
and from the names nncf gives its quantizers (``.../features/5/block/1/0/conv2d/0__0.0/
QuantizeLinear`` → the same layer). onnxruntime keeps the scope in the nodes it fuses
(``.../Conv_token_85``); nodes it creates without one (layout transposes and reorders,
decomposed activations) are summed under ``UNATTRIBUTED``. So the per-layer figures show
where time goes; only their total is the file's whole cost.

Profiled runs are slower than plain ones (the profiler's own bookkeeping): compare layers
of files profiled alike, not these figures with ``edgekit bench``'s latency.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.core.errors import FormatError, InvalidInputError

UNATTRIBUTED = "(unattributed)"
_HOOK = re.compile(r"^\d+__\d+\.\d+$")  # nncf's "<port>__<hook>.<index>" segment


@dataclass(frozen=True)
class LayerTime:
    """Mean kernel time of one layer's nodes per run, and which ops they were."""

    layer: str
    us: float
    ops: tuple[str, ...]


def layer_of(node_name: str) -> str:
    """The model layer (dotted module path) an onnxruntime node name belongs to."""
    # onnxruntime names a float Gemm it fused with its activation "fused <gemm node>"
    parts = [p for p in node_name.removeprefix("fused ").split("/") if p]
    hook = next((i for i, p in enumerate(parts) if _HOOK.match(p)), None)
    if hook is not None and hook >= 2:  # nncf quantizer: .../<module>/<path>/<op>/0__0.0/Q
        start = next((i for i in range(hook - 1) if parts[i] == parts[0] and i > 0), None)
        if start is not None:
            return ".".join(parts[start:hook - 1])
        return ".".join(parts[:hook - 1])
    scope = parts[:-1]  # the last segment is the op (or onnxruntime's fused node name)
    path: list[str] = []
    previous = ""
    for segment in scope:
        path.append(segment[len(previous) + 1:] if previous and
                    segment.startswith(previous + ".") else segment)
        previous = segment
    return ".".join(path) or UNATTRIBUTED


def node_times(path: str | Path, *, runs: int = 20, threads: int = 1,
               warmup: int = 5) -> dict[str, tuple[str, float]]:
    """{node name: (op type, mean kernel µs per run)} of the optimized graph of ``path``,
    one batch-1 random input (dynamic sizes set to 1)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no such model file: {path}")
    if runs < 1:
        raise InvalidInputError(f"runs must be at least 1, got {runs}")
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable files
            raise FormatError(f"{path.name}: onnxruntime cannot load it: {exc}") from None
        feeds = _random_feeds(sess)
        for _ in range(warmup + runs):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        node = name[: -len("_kernel_time")]
        per_node.setdefault(node, []).append(float(event["dur"]))
        ops[node] = event["args"]["op_name"]
    # each node ran warmup + runs times in order; the first runs pay one-off costs (weight
    # packing, allocation): keep the last ``runs``
    return {node: (ops[node], float(np.mean(times[-runs:]))) for node, times in per_node.items()}


def layer_times(path: str | Path, *, runs: int = 20, threads: int = 1) -> list[LayerTime]:
    """Per-layer mean kernel time of ``path`` in onnxruntime, slowest first."""
    totals: dict[str, float] = {}
    kinds: dict[str, set[str]] = {}
    for node, (op, us) in node_times(path, runs=runs, threads=threads).items():
        layer = layer_of(node)
        totals[layer] = totals.get(layer, 0.0) + us
        kinds.setdefault(layer, set()).add(op)
    return sorted((LayerTime(layer, us, tuple(sorted(kinds[layer])))
                   for layer, us in totals.items()), key=lambda t: -t.us)


def block_of(layer: str) -> str:
    """The module holding a numbered child: ``features.4.block.1.0`` (conv) and
    ``features.4.block.1.2`` (its ReLU) are both ``features.4.block.1``. onnxruntime names
    an fp32 conv it fused with its activation after the activation, an int8 one after the
    conv, so the two files are compared block by block."""
    head, _, last = layer.rpartition(".")
    return head if head and last.isdigit() else layer


def compare_layers(fp32: str | Path, int8: str | Path, *, runs: int = 20, threads: int = 1,
                   rounds: int = 3) -> list[dict[str, object]]:
    """Rows {layer, fp32_us, int8_us, int8_over_fp32, fp32_ops, int8_ops} for every block
    (``block_of``) of either file, slowest int8 first. The two files are profiled in turn,
    ``rounds`` times, and each block's median is kept (a shared machine's load drifts)."""
    if rounds < 1:
        raise InvalidInputError(f"rounds must be at least 1, got {rounds}")
    samples: dict[str, dict[str, list[float]]] = {"fp32": {}, "int8": {}}
    ops: dict[str, dict[str, tuple[str, ...]]] = {"fp32": {}, "int8": {}}
    for _ in range(rounds):
        for key, path in (("fp32", fp32), ("int8", int8)):
            round_us: dict[str, float] = {}
            for t in layer_times(path, runs=runs, threads=threads):
                block = block_of(t.layer)
                round_us[block] = round_us.get(block, 0.0) + t.us
                ops[key][block] = tuple(sorted({*ops[key].get(block, ()), *t.ops}))
            for block, us in round_us.items():
                samples[key].setdefault(block, []).append(us)
    rows = []
    for layer in sorted(set(samples["fp32"]) | set(samples["int8"])):
        f = float(np.median(samples["fp32"][layer])) if layer in samples["fp32"] else 0.0
        q = float(np.median(samples["int8"][layer])) if layer in samples["int8"] else 0.0
        rows.append({"layer": layer, "fp32_us": round(f, 2), "int8_us": round(q, 2),
                     "int8_over_fp32": round(q / f, 3) if f > 0 else None,
                     "fp32_ops": ",".join(ops["fp32"].get(layer, ())),
                     "int8_ops": ",".join(ops["int8"].get(layer, ()))})
    return sorted(rows, key=lambda r: -float(r["int8_us"]))


def _random_feeds(sess: object) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in sess.get_inputs():  # type: ignore[attr-defined]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        if "float" not in spec.type:
            raise InvalidInputError(f"input {spec.name} is {spec.type}; layer timing feeds "
                                    "float inputs only")
        feeds[spec.name] = rng.random(shape, dtype=np.float32)
    return feeds
