"""Deep Compression end to end on mnist5k: prune → k-means share → Huffman, in one .ekz file.

Per model (LeNet-300-100, LeNet-5, SqueezeNet 1.1 small-input): train dense, then compress
(iterative std-threshold pruning with retraining, weight sharing with centroid fine-tuning)
while a copy of the same dense model gets the *same* further training calls without
masks or sharing (the dense baseline with the same budget). The compressed model's
accuracy is measured on the model rebuilt from the written ``.ekz`` file. Ratio = fp32
dense bytes ÷ file bytes on disk (header and tables included).

Also measured: coded index/gap streams vs their empirical entropy (tables excluded), vs
``zstd -19`` and ``xz -9`` of the same streams; the rANS codec on the same model; decode
speed of the file into dense fp32 tensors (MB of output per second, one thread); the ONNX
rebuilt from the file in onnxruntime vs the compressed torch model.

    python benchmarks/deep_compression.py --json results/deep_compression.json --out runs/dc
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Per-model recipes. Qualities are the paper's threshold multipliers (× layer std);
# per-layer values follow the sensitivity of each layer (first conv layers are sensitive).
RECIPES = {
    "lenet300_100": {
        "pretrain": 20, "lr": 1e-3,
        "prune": {"quality": 2.8, "steps": 5, "retrain_epochs": 6,
                  "layer_quality": {"fc2.weight": 2.2, "fc3.weight": 1.6}},
        "retrain_lr": 1e-3, "weight_decay": 1e-4, "small_dtype": "f2",
        "share": {"fc_bits": 5, "conv_bits": 8}, "finetune": 5, "finetune_lr": 2e-4,
    },
    "lenet5": {
        "pretrain": 8, "lr": 1e-3,
        "prune": {"quality": 2.8, "steps": 4, "retrain_epochs": 3,
                  "layer_quality": {"features.0.weight": 0.4, "features.2.weight": 1.6,
                                    "fc2.weight": 1.4}},
        "retrain_lr": 1e-3, "small_dtype": "f2",
        "share": {"fc_bits": 5, "conv_bits": 8}, "finetune": 3, "finetune_lr": 2e-4,
    },
    "squeezenet1_1": {
        "pretrain": 6, "lr": 2e-3,
        "prune": {"quality": 0.9, "steps": 2, "retrain_epochs": 2}, "retrain_lr": 1e-3,
        "small_dtype": "f2",
        "share": {"fc_bits": 6, "conv_bits": 6}, "finetune": 2, "finetune_lr": 2e-4,
    },
}


def _decode_mb_per_s(data: bytes, dense_bytes: int, repeats: int) -> tuple[float, float]:
    """(MB/s per CPU-second of this thread, MB/s wall clock), medians of ``repeats``.

    Decoding is single-threaded; on a shared machine the thread's CPU time is what one
    dedicated core would take, while wall time also counts waiting for a core.
    """
    from edgekit.deep_compression.ekz import parse_ekz

    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        parse_ekz(data).tensors()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return (dense_bytes / statistics.median(cpu) / 1e6,
            dense_bytes / statistics.median(wall) / 1e6)


def run_model(name: str, recipe: dict, out: Path, *, log: Callable[[str], None]) -> dict:
    from edgekit.calibration import load_dataset

    start = time.perf_counter()
    train_data = load_dataset("mnist5k", split="train")
    test_data = load_dataset("mnist5k", split="test")
    model, shared, density, trained = _compress(name, recipe, train_data, test_data, log=log)
    f = _measure_files(name, recipe, out, model, shared, test_data, log=log)
    summary = f["summary"]
    return {
        "model": name, "recipe": recipe, **trained,
        "compressed_acc_from_file": f["compressed_acc"],
        "acc_drop_pp": 100 * (trained["baseline_acc"] - f["compressed_acc"]),
        "weights_kept_pct": f["weights_kept_pct"],
        "prune_density": density,
        "dense_fp32_bytes": summary["dense_fp32_bytes"], "file_bytes": summary["file_bytes"],
        "header_bytes": summary["header_bytes"], "ratio": summary["ratio"],
        "rans_file_bytes": f["rans_file_bytes"],
        "rans_ratio": summary["dense_fp32_bytes"] / f["rans_file_bytes"],
        "streams_huffman": f["streams_huffman"], "streams_rans": f["streams_rans"],
        "decode_mb_per_s": f["decode_mb_per_s"], "decode_mb_per_s_wall": f["decode_mb_per_s_wall"],
        "onnx_max_abs_diff": f["onnx_max_abs_diff"],
        "onnx_acc": f["onnx_acc"],
        "layers": f["layers"], "table": f["table"],
        "seconds": time.perf_counter() - start,
    }


def _compress(name: str, recipe: dict, train_data: Any, test_data: Any, *,
              log: Callable[[str], None]) -> tuple[Any, Any, float, dict[str, Any]]:
    """Train dense, prune and share (the model, its shared layers, the pruned density); a
    copy of the dense model gets the same further training without masks or sharing.
    Returns the epochs and the test accuracies at each stage too."""
    import torch

    from edgekit.deep_compression.prune import PruneConfig, prune
    from edgekit.deep_compression.share import ShareConfig, finetune_shared, share_weights
    from edgekit.models import create_model
    from edgekit.training import TrainConfig, evaluate, train

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1, input_size=28)
    base = TrainConfig(epochs=recipe["pretrain"], lr=recipe["lr"], progress=False)
    train(model, train_data, base)
    dense_acc = evaluate(model, test_data)["accuracy"]
    log(f"{name}: dense after {recipe['pretrain']} epochs: {dense_acc:.4f}")
    baseline = copy.deepcopy(model)

    prune_cfg = PruneConfig(**recipe["prune"])
    decay = recipe.get("weight_decay", 0.0)  # for the baseline's extra epochs as well
    retrain = TrainConfig(lr=recipe["retrain_lr"], weight_decay=decay, progress=False)
    pruned = prune(model, train_data, prune_cfg, train_config=retrain, log=log)
    pruned_acc = evaluate(model, test_data)["accuracy"]
    shared = share_weights(model, ShareConfig(**recipe["share"]))
    quantized_acc = evaluate(model, test_data)["accuracy"]
    ft = TrainConfig(lr=recipe["finetune_lr"], weight_decay=decay, progress=False)
    shared = finetune_shared(model, shared, train_data, epochs=recipe["finetune"],
                             train_config=ft)

    # The dense baseline gets exactly the same train() calls, without masks or sharing.
    for step in range(1, prune_cfg.steps + 1):
        train(baseline, train_data, dataclasses.replace(
            retrain, epochs=prune_cfg.retrain_epochs, seed=retrain.seed + step))
    if recipe["finetune"]:
        train(baseline, train_data, dataclasses.replace(ft, epochs=recipe["finetune"]))
    baseline_acc = evaluate(baseline, test_data)["accuracy"]
    total_epochs = (recipe["pretrain"] + prune_cfg.steps * prune_cfg.retrain_epochs
                    + recipe["finetune"])
    return model, shared, pruned.density, {
        "total_epochs": total_epochs, "dense_acc_pretrain": dense_acc,
        "baseline_acc": baseline_acc, "pruned_acc": pruned_acc,
        "quantized_acc_before_finetune": quantized_acc}


def _measure_files(name: str, recipe: dict, out: Path, model: Any, shared: Any,
                   test_data: Any, *, log: Callable[[str], None]) -> dict[str, Any]:
    """Write the Huffman and rANS files; the accuracy of the model rebuilt from the file, its
    streams, decode speed, and the ONNX rebuilt from it in onnxruntime."""
    import torch

    from edgekit.deep_compression.ekz import load_ekz
    from edgekit.deep_compression.ekz.pack import pack_model
    from edgekit.deep_compression.ekz.report import (
        file_summary,
        format_table,
        layer_table,
        stream_stats,
    )
    from edgekit.export.ekz import ekz_model, ekz_to_onnx
    from edgekit.training import evaluate

    small = recipe.get("small_dtype", "f4")
    path = pack_model(model, out / f"{name}.ekz", shared=shared, codec="huffman",
                      small_dtype=small)
    rans_path = pack_model(model, out / f"{name}.rans.ekz", shared=shared, codec="rans",
                           small_dtype=small)
    ekz = load_ekz(path)
    summary = file_summary(ekz)
    rebuilt = ekz_model(path)
    compressed_acc = evaluate(rebuilt, test_data)["accuracy"]
    streams = stream_stats(ekz)
    rans_streams = stream_stats(load_ekz(rans_path))
    torch.set_num_threads(1)
    mb_s, mb_s_wall = _decode_mb_per_s(path.read_bytes(), int(summary["dense_fp32_bytes"]),
                                       repeats=30)

    onnx_path = ekz_to_onnx(path, out / f"{name}.onnx")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"input": test_data.x})
    with torch.no_grad():
        torch_out = rebuilt(torch.from_numpy(test_data.x)).numpy()

    table = format_table(ekz)
    log(table)
    layers = layer_table(ekz)
    kept = sum(r["weights"] * r["kept_pct"] / 100 for r in layers if r["kind"] == "dc")
    shared_weights = sum(r["weights"] for r in layers if r["kind"] == "dc")
    return {
        "summary": summary, "compressed_acc": compressed_acc,
        "weights_kept_pct": 100 * kept / shared_weights,
        "rans_file_bytes": rans_path.stat().st_size,
        "streams_huffman": streams, "streams_rans": rans_streams,
        "decode_mb_per_s": mb_s, "decode_mb_per_s_wall": mb_s_wall,
        "onnx_max_abs_diff": float(np.abs(onnx_out - torch_out).max()),
        "onnx_acc": float(np.mean(onnx_out.argmax(1) == test_data.y)),
        "layers": layers, "table": table,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write results (flat `metrics` + details) here")
    parser.add_argument("--out", required=True, help="directory for the .ekz/.onnx files")
    parser.add_argument("--models", default=",".join(RECIPES))
    parser.add_argument("--recipe", type=json.loads, default={}, metavar="JSON",
                        help='override recipe keys per model, e.g. \'{"lenet5": {"finetune": 4}}\'')
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every epoch count (smoke runs: 0.2)")
    args = parser.parse_args(argv)

    import torch

    from edgekit.core.io import atomic_write_json

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for name in args.models.split(","):
        recipe = copy.deepcopy(RECIPES[name])
        recipe.update(args.recipe.get(name, {}))
        if args.scale != 1.0:
            for key in ("pretrain", "finetune"):
                recipe[key] = max(1, round(recipe[key] * args.scale))
            recipe["prune"]["retrain_epochs"] = max(
                1, round(recipe["prune"]["retrain_epochs"] * args.scale))
        rows[name] = run_model(name, recipe, out, log=lambda s: print(s, flush=True))
        r = rows[name]
        print(f"{name}: ratio {r['ratio']:.1f}x (rANS {r['rans_ratio']:.1f}x), acc "
              f"{r['compressed_acc_from_file']:.4f} vs baseline {r['baseline_acc']:.4f} "
              f"({r['acc_drop_pp']:+.2f} pp drop), kept {r['weights_kept_pct']:.1f}%, "
              f"decode {r['decode_mb_per_s']:.0f} MB/s (CPU time; wall "
              f"{r['decode_mb_per_s_wall']:.0f}), {r['seconds']:.0f} s", flush=True)

    metrics = {}
    short = {"lenet300_100": "lenet300", "lenet5": "lenet5", "squeezenet1_1": "squeezenet"}
    for name, r in rows.items():
        metrics[f"{short[name]}_ratio"] = r["ratio"]
        metrics[f"{short[name]}_acc_drop_pp"] = r["acc_drop_pp"]
        metrics[f"{short[name]}_rans_ratio"] = r["rans_ratio"]
        metrics[f"{short[name]}_baseline_acc"] = r["baseline_acc"]
        metrics[f"{short[name]}_compressed_acc"] = r["compressed_acc_from_file"]
        metrics[f"{short[name]}_kept_pct"] = r["weights_kept_pct"]
    lenets = [r for n, r in rows.items() if n.startswith("lenet")] or list(rows.values())
    # Over the LeNet files: coded bits of all index+gap streams / their entropy, and
    # coded bytes (with tables) / what zstd -19 and xz -9 make of the same streams.
    def total(key, codec="streams_huffman"):
        return sum(r[codec][key] for r in lenets)

    def over_entropy(codec):  # each codec's file picks its own gap widths, so own streams
        return ((total("idx_bits", codec) + total("gap_bits", codec))
                / (total("idx_entropy", codec) + total("gap_entropy", codec)))

    metrics["index_bits_over_entropy"] = over_entropy("streams_huffman")
    metrics["rans_index_bits_over_entropy"] = over_entropy("streams_rans")
    metrics["vs_zstd19"] = total("with_tables_bytes") / total("zstd19_bytes")
    metrics["vs_xz9"] = total("with_tables_bytes") / total("xz9_bytes")
    metrics["decode_mb_per_s"] = min(r["decode_mb_per_s"] for r in rows.values())
    metrics["decode_mb_per_s_wall"] = min(r["decode_mb_per_s_wall"] for r in rows.values())
    print(json.dumps(metrics, indent=2))
    if args.json:
        from _provenance import run_info  # benchmarks/, on sys.path when run as a script

        atomic_write_json(args.json, {**run_info("deep_compression", None),
                                      "metrics": metrics, "models": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
