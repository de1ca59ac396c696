"""Binary, ternary and hashed nets on mnist5k: accuracy vs fp32 twin, storage, export agreement.

Per low-bit model: train it and its fp32 twin (same topology, float layers, ReLU for sign)
with the same budget (epochs, batch, optimizer, learning rate, seed); test accuracy on the
1,000 mnist5k test digits; size on disk of its ``.ekz`` file (bits1/tern2/hashed records)
against the same model with every tensor raw fp32; the file is reloaded and its
accuracy re-measured; the materialized model is exported to ONNX (float, and with
weights rewritten to int8 + DequantizeLinear where exact) and run in onnxruntime, and to
TFLite and run in the LiteRT interpreter; agreement = share of test predictions (argmax)
equal to the PyTorch low-bit model's. HashedNets at compression 1/8 and 1/64 are compared
with a dense MLP with as many weights ("equivalent size", the paper's baseline) and with
the full-size dense net.

LCE (``edgekit.export.lce``): each binary net is written with Larq Compute Engine's 1-bit
ops and verified with ``edgekit.export.verify`` in LCE's interpreter (``make lce-env``) on
the test split (``<model>_lce_verify_agreement``); its whole file is compared with the fp32
``.tflite`` of the same model (``<model>_lce_file_ratio``, first/last layers included). The
ternary bireal_net goes the same path as int8 weights holding {-1, 0, +1} (LCE has no
ternary op): ``bireal_net_twn_int8_file_ratio``. Only file sizes and agreement: this host
runs LCE's reference kernels, whose timing says nothing about speed on ARM.

Headline metrics: ``lce_verify_agreement`` (lowest over the binary nets), ``lce_file_ratio``
(bireal_net), ``binary_storage_ratio`` / ``ternary_storage_ratio`` (whole ``.ekz`` files of
bireal_net with binary / ternary weights against the same container all-fp32).

    python benchmarks/lowbit.py --json results/lowbit.json [--epochs 6] [--no-tflite]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

# label -> (registered model, low-bit args, learning rate); the twin adds weights="fp32"
PAIRS = {
    "binary_mlp": ("binary_mlp", {}, 1e-2),
    "xnor_convnet": ("xnor_convnet", {}, 3e-3),
    "ternary_lenet5": ("ternary_lenet5", {}, 3e-3),
    "ttq_resnet8": ("ttq_resnet8", {}, 3e-3),
    "bireal_net": ("bireal_net", {}, 3e-3),
    "bireal_net_twn": ("bireal_net", {"weights": "twn"}, 3e-3),
}
LCE_BINARY = ("binary_mlp", "xnor_convnet", "bireal_net")  # LceBconv2d files, verified in LCE
LCE_INT8 = ("bireal_net_twn",)  # ternary: int8 weights, no LCE op
HASHED = {"hashed_1_8": 1 / 8, "hashed_1_64": 1 / 64}
HASHED_LR = 3e-3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write results (flat metrics) here")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: the machine is shared)")
    parser.add_argument("--only", nargs="+", choices=[*PAIRS, *HASHED],
                        help="measure only these (a quick check of the script)")
    parser.add_argument("--no-tflite", action="store_true", help="skip TFLite export")
    args = parser.parse_args(argv)

    import torch

    from edgekit.calibration import load_dataset

    torch.set_num_threads(args.threads)
    train_data = load_dataset("mnist5k", split="train")
    test_data = load_dataset("mnist5k", split="test")
    metrics: dict[str, float] = {}
    rows: list[tuple] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pairs = {k: v for k, v in PAIRS.items() if not args.only or k in args.only}
        hashed = {k: v for k, v in HASHED.items() if not args.only or k in args.only}
        twins: dict[str, object] = {}  # bireal_net's fp32 twin serves both weight kinds
        for label, (name, extra, lr) in pairs.items():
            low = _trained(name, extra, lr, args.epochs, train_data)
            if name not in twins:
                twins[name] = _trained(name, {**extra, "weights": "fp32"}, lr, args.epochs,
                                       train_data)
            _measure(label, low, twins[name], test_data, work, metrics, rows,
                     not args.no_tflite)
            if label in (*LCE_BINARY, *LCE_INT8) and not args.no_tflite:
                metrics.update(_lce(label, low, test_data, work, metrics))
        if hashed:
            full = _trained("hashed_mlp", {"weights": "fp32"}, HASHED_LR, args.epochs,
                            train_data)
            metrics["hashed_full_dense_acc"] = _accuracy(full, test_data)
        from edgekit.models.lowbit.nets import dense_equivalent_hidden

        for label, compression in hashed.items():
            low = _trained("hashed_mlp", {"compression": compression}, HASHED_LR, args.epochs,
                           train_data)
            hidden = dense_equivalent_hidden(1000, compression)
            small = _trained("hashed_mlp", {"weights": "fp32", "hidden": hidden}, HASHED_LR,
                             args.epochs, train_data)
            _measure(label, low, small, test_data, work, metrics, rows, not args.no_tflite)
            metrics[f"{label}_dense_equiv_acc"] = metrics.pop(f"{label}_fp32_acc")
            del metrics[f"{label}_acc_drop_pp"]
            metrics[f"{label}_minus_dense_equiv_pp"] = round(
                100 * (metrics[f"{label}_acc"] - metrics[f"{label}_dense_equiv_acc"]), 2)
            metrics[f"{label}_dense_equiv_hidden"] = hidden
            metrics[f"{label}_dense_equiv_params"] = sum(p.numel() for p in small.parameters())
            metrics[f"{label}_params"] = sum(p.numel() for p in low.parameters())
    for alias, key in (("binary_storage_ratio", "bireal_net_storage_ratio"),
                       ("xnor_storage_ratio", "xnor_convnet_storage_ratio"),
                       ("ternary_storage_ratio", "bireal_net_twn_storage_ratio"),
                       ("lce_file_ratio", "bireal_net_lce_file_ratio")):
        if key in metrics:
            metrics[alias] = metrics[key]
    lce_agreements = [metrics[f"{m}_lce_verify_agreement"] for m in LCE_BINARY
                      if f"{m}_lce_verify_agreement" in metrics]
    if lce_agreements:
        metrics["lce_verify_agreement"] = min(lce_agreements)
    agreements = [v for k, v in metrics.items() if k.endswith("_agreement")]
    metrics["export_agreement_min"] = min(agreements)
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    _print_table(rows, metrics)
    if args.json:
        from _provenance import run_info  # benchmarks/, on sys.path when run as a script

        from edgekit.core.io import atomic_write_json

        atomic_write_json(args.json, {
            **run_info("lowbit", argv, torch_threads=args.threads),
            "epochs": args.epochs,
            "metrics": metrics,
        })
    return 0


def _trained(name, extra, lr, epochs, data):
    import torch

    from edgekit.models import create_model
    from edgekit.training import TrainConfig, train

    torch.manual_seed(0)  # same initial weights in every run, whatever ran before
    model = create_model(name, **extra)
    started = time.perf_counter()
    train(model, data, TrainConfig(epochs=epochs, batch_size=64, lr=lr, optimizer="adam",
                                   seed=0, progress=False))
    model.train_seconds = time.perf_counter() - started
    return model.eval()


def _accuracy(model, data) -> float:
    from edgekit.training import evaluate

    return evaluate(model, data)["accuracy"]


def _predict(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(1).numpy()


def _measure(label, low, twin, test, work, metrics, rows, tflite: bool) -> None:
    from edgekit.lowbit import materialize
    from edgekit.lowbit.storage import load_lowbit, save_lowbit, storage_report

    acc, twin_acc = _accuracy(low, test), _accuracy(twin, test)
    report = storage_report(low)
    path = save_lowbit(low, work / f"{label}.ekz")
    reloaded_acc = _accuracy(load_lowbit(path), test)
    reference = _predict(low, test.x)
    m = {
        "acc": acc, "fp32_acc": twin_acc, "acc_drop_pp": round(100 * (twin_acc - acc), 2),
        "reloaded_acc": reloaded_acc, "ekz_bytes": path.stat().st_size,
        "fp32_ekz_bytes": report.fp32_file_bytes, "storage_ratio": round(report.ratio, 2),
        "layer_storage_ratio": round(report.lowbit_layer_ratio, 2),
        "train_seconds": round(low.train_seconds, 1),
        "fp32_train_seconds": round(twin.train_seconds, 1),
    }
    m.update(_export_agreement(label, materialize(low), test.x, reference, work, tflite))
    metrics.update({f"{label}_{k}": v for k, v in m.items()})
    rows.append((label, acc, twin_acc, m["storage_ratio"], m["layer_storage_ratio"],
                 m.get("onnx_agreement"), m.get("qdq_onnx_agreement"), m.get("tflite_agreement")))


def _export_agreement(label, plain, x, reference, work, tflite: bool) -> dict[str, float]:
    import onnxruntime as ort

    from edgekit.export.onnx import export_onnx
    from edgekit.lowbit.onnx_qdq import weights_to_qdq

    out: dict[str, float] = {}
    onnx_path, qdq_path = work / f"{label}.onnx", work / f"{label}_qdq.onnx"
    export_onnx(plain, onnx_path, input_shape=x.shape[1:])
    out["qdq_weights"] = len(weights_to_qdq(onnx_path, qdq_path))
    for key, path in (("onnx", onnx_path), ("qdq_onnx", qdq_path)):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        logits = session.run(None, {session.get_inputs()[0].name: x})[0]
        out[f"{key}_agreement"] = float((logits.argmax(1) == reference).mean())
        out[f"{key}_bytes"] = path.stat().st_size
    if tflite:
        from edgekit.export.tflite import export_tflite, run_tflite

        tfl_path = work / f"{label}.tflite"
        export_tflite(plain, tfl_path, calibration=x[:16])
        out["tflite_agreement"] = float((run_tflite(tfl_path, x).argmax(1) == reference).mean())
        out["tflite_bytes"] = tfl_path.stat().st_size
    return out


def _lce(label, low, test, work, metrics) -> dict[str, float]:
    """The LCE file of ``low``: verified in LCE's interpreter, its size against the fp32
    .tflite that ``_export_agreement`` wrote for the same model."""
    from edgekit.export.lce import export_lce
    from edgekit.export.verify import verify

    artifact = export_lce(low, work / f"{label}_lce.tflite")
    report = verify(artifact.path, low, test, runtime="lce", batch_size=256)
    size = artifact.path.stat().st_size
    key = "lce" if artifact.precision == "binary" else "int8"
    out = {f"{label}_{key}_bytes": size,
           f"{label}_{key}_file_ratio": round(metrics[f"{label}_tflite_bytes"] / size, 2),
           f"{label}_{key}_verify_agreement": report.agreement}
    print(f"{label}: {artifact.precision} file {size:,} bytes; {report.summary()}")
    return out


def _print_table(rows, metrics) -> None:
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    head = ("model", "acc %", "fp32/dense %", "file x", "layers x", "onnx agr %",
            "qdq agr %", "tflite agr %")
    print(" | ".join(head))
    for label, acc, twin, ratio, layer, a1, a2, a3 in rows:
        print(" | ".join([label, pct(acc), pct(twin), f"{ratio:.1f}", f"{layer:.1f}",
                          pct(a1), pct(a2), pct(a3)]))
    if "hashed_full_dense_acc" in metrics:
        print(f"full-size dense 784-1000-10: {pct(metrics['hashed_full_dense_acc'])} %")
    for key in ("lce_verify_agreement", "lce_file_ratio", "binary_storage_ratio",
                "ternary_storage_ratio", "bireal_net_twn_int8_file_ratio"):
        if key in metrics:
            print(f"{key} = {metrics[key]}")
    print(f"export_agreement_min = {metrics['export_agreement_min']:.4f}; "
          f"total {metrics['total_seconds']} s")


if __name__ == "__main__":
    raise SystemExit(main())
