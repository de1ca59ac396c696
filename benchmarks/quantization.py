"""int8 QAT vs fp32 vs vendor PTQ for every zoo family; parity of the deployed files; speed.

Part 1, per family (small-input variants on mnist5k; ESPNet/ESPNetV2 on mnist5k_seg):
train fp32 briefly, then
  * edgekit QAT for TensorRT (nncf, QDQ ONNX) -> scored with onnxruntime's reference
    kernels, the arithmetic the file defines and TensorRT runs (int32 sums, no
    saturation); its score with onnxruntime's fused x86 kernels is kept beside it
    (``qat_onnx_fused``),
  * edgekit QAT for onnxruntime's CPU provider (uint8 activations, 7-bit weights) -> run
    with the fused x86 kernels it is made for (``qat_ort``),
  * edgekit QAT for TFLite (part B's ``quantize_for_tflite`` + ``export_tflite``) -> LiteRT,
  * vendor PTQ baselines on the same fp32 model: onnxruntime ``quantize_static`` (QDQ) in
    both of its documented CPU settings -- the default S8S8 (``ort_ptq``) and U8S8 after
    ``quant_pre_process``, with ``reduce_range`` where the CPU has no VNNI (``ort_ptq_u8s8``,
    the setting its documentation advises for x86) -- and litert-torch's PT2E PTQ
    (``vendor_ptq_tflite``: per-channel symmetric int8, its recommended quantizer config,
    calibrated on 256 training samples).
Accuracy (mIoU for segmentation) of each deployed file on the test subset, and parity of
each edgekit file with its trained fake-quant torch model (``edgekit.export.verify``).
Each QAT file is compared with fp32 and with each vendor PTQ file by a paired bootstrap over
the test samples (``edgekit.training.compare``; ``paired`` in each row): the metrics count the
differences whose 95% interval lies entirely below 0, i.e. more than test-set noise.

Part 2, speed in one run: MobileNetV2-224 and ShuffleNetV2-224 (3x224x224, 10 classes,
untrained weights, int8 by PTQ calibration on scikit-learn photo crops — latency does not
depend on the weights), batch 1, median latency at 1 and 2 threads in onnxruntime and
LiteRT: edgekit int8 vs fp32 and vs the vendor PTQ files (``ort_int8_vs_vendor``: the default
S8S8 file; ``ort_int8_vs_vendor_best``: the faster of the two vendor settings, model by model
and thread count by thread count). The CPU's ISA flags are recorded (``cpu_flags``): int8
speed on x86 depends on VNNI. Each file is timed as
``edgekit bench`` times it, in a process of its own (seeded random input bound once,
warm-up until steady, ``--speed-runs`` timed calls).

Budget (defaults): all 4,000 mnist5k training digits (for the segmentation nets all
1,343 mnist5k_seg canvases made of them), 10% of them held out to choose the best epoch
(fp32 and QAT; QAT's calibrated start is a candidate too, so QAT never validates worse than
its own PTQ); 6 fp32 epochs (Adam 3e-3, cosine), 2 QAT epochs (1e-4, chosen by
benchmarks/qat_recipe.py on digits this script does not score; nncf's bias correction off,
edgekit's default, chosen there too; ``--distill`` to distil from the fp32 model, off by
default as in edgekit); scored on all 1,000 test digits (328 test canvases). The
segmentation nets train 15 fp32 epochs at 1e-2 (``--seg-epochs``, FAMILY_LR) and 6 QAT
epochs at 1e-3 (``--seg-qat-epochs``, ``--seg-qat-lr``) with ENet class weights
(``TrainConfig.class_weights``'s default for segmentation; QAT uses them too). About 3-6 min
per family on a quiet 2-core CPU, 5-15 for the segmentation nets (their fp32 epochs take
10-20 s each).

    python benchmarks/quantization.py --json results/quantization.json --out results/quant
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# sibling modules in benchmarks/, on sys.path when run as a script
from _provenance import cpu_flags
from _quantization_outputs import (
    has_vnni,
    ort_out,
    ort_quantize_recommended,
    ort_quantize_static,
    tfl_out,
    torch_out,
)
from _quantization_summary import metrics, paired, row_line

from edgekit.quantization.types import DEFAULT_DISTILL  # torch-free module

SEGMENTATION = ("espnet", "espnetv2")
SPEED_MODELS = ("mobilenet_v2", "shufflenet_v2_x1_0")
# one model per zoo family (both MobileNetV3 sizes: h-swish/SE is where int8 breaks most);
# ``--families all`` runs every variant. The binary/ternary/hashed nets are not int8 targets
# (benchmarks/lowbit.py covers their export).
# fp32 learning rate where the default does not train (QAT uses the smaller of this and
# --qat-lr): SqueezeNet has no batch norm and its ReLUs die at 3e-3 (chance accuracy), as in
# benchmarks/zoo.py. The segmentation nets need 1e-2 and --seg-epochs (15): with the
# class-weighted loss and the decoder fix of 2026-11-23, 6 epochs at 1e-2 reach test mIoU
# ~0.2, 15 epochs ~0.6 (ESPNet) and ~0.4 (ESPNetv2); before, they stayed at the
# all-background solution (mIoU 0.08-0.11 at 3e-3 and 1e-2).
FAMILY_LR = {"squeezenet1_0": 3e-4, "squeezenet1_1": 3e-4, "espnet": 1e-2, "espnetv2": 1e-2}
REPRESENTATIVES = ("lenet5", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small",
                   "mobilenet_v3_large", "shufflenet_v1", "shufflenet_v2_x1_0",
                   "squeezenet1_1", "espnet", "espnetv2")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    p.add_argument("--out", required=True, help="directory for the ONNX/TFLite files")
    one_each = ",".join(REPRESENTATIVES)
    p.add_argument("--families", help="comma-separated zoo names, or 'all' for every variant "
                   f"(default: one per family: {one_each})")
    p.add_argument("--train-samples", type=int, default=4000, help="default: all of mnist5k")
    p.add_argument("--test-samples", type=int, default=1000, help="default: all of mnist5k")
    p.add_argument("--epochs", type=int, default=6, help="fp32 epochs (Adam, cosine)")
    p.add_argument("--seg-epochs", type=int, default=15,
                   help="fp32 epochs of the segmentation nets (default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-3, help="fp32 learning rate")
    p.add_argument("--qat-epochs", type=int, default=2)
    p.add_argument("--seg-qat-epochs", type=int, default=6,
                   help="QAT epochs of the segmentation nets (default: %(default)s)")
    p.add_argument("--distill", type=float, default=DEFAULT_DISTILL,
                   help="QuantConfig.distill: share of the QAT loss distilled from the fp32 "
                        "model (default: %(default)s)")
    p.add_argument("--qat-lr", type=float, default=1e-4,
                   help="QAT learning rate of the classification nets (default: %(default)s, "
                        "edgekit compress's recipe default; benchmarks/qat_recipe.py)")
    p.add_argument("--seg-qat-lr", type=float, default=1e-3,
                   help="QAT learning rate of the segmentation nets (default: %(default)s)")
    p.add_argument("--speed-runs", type=int, default=30)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--speed-models", default=",".join(SPEED_MODELS),
                   help="zoo names timed at 224 px (default: %(default)s)")
    p.add_argument("--update", action="store_true",
                   help="start from the --json file of an earlier run: keep its speed figures "
                        "and the rows of families not run now (their budget must match; "
                        "each row records its own fp32 epochs and lr in fp32_train)")
    p.add_argument("--reuse-files", action="store_true",
                   help="time files a previous run of this script left in --out")
    return p


def main() -> int:
    args = _parser().parse_args()

    import torch

    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tflite = _tflite_module()
    if args.families == "all":
        names = _families()
    elif args.families is not None:
        names = [n for n in args.families.split(",") if n]
    else:
        names = list(REPRESENTATIVES)
    result = _start_result(args, names, tflite is not None)
    # speed first, then family by family; the JSON is rewritten after each step so an
    # interrupted run keeps what it measured
    if not args.skip_speed:
        result["speed"] = _speed(out, tflite, args.speed_runs,
                                 args.speed_models.split(","), args.reuse_files)
        for key, ms in result["speed"].items():
            print(f"{key:<48} {ms:9.3f} ms" if isinstance(ms, float) else f"{key:<48} {ms}",
                  flush=True)
        _save(args.json, result)
    for name in names:
        t0 = time.perf_counter()
        try:
            row = _family(name, args, out, tflite)
        except Exception as exc:  # one family's failure is a result too; keep going
            row = {"model": name, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        result["families"].append(row)
        print(row_line(row), flush=True)
        _save(args.json, result)
    _save(args.json, result)
    print(json.dumps(result["metrics"], indent=2))
    return 0


def _start_result(args: argparse.Namespace, names: list[str], tflite_available: bool
                  ) -> dict[str, Any]:
    """The result header; with ``--update``, the earlier run's speed and other families."""
    from _provenance import run_info  # benchmarks/, on sys.path when run as a script

    result: dict[str, Any] = {
        **run_info("quantization", None, torch_threads=2),
        "budget": {k: getattr(args, k) for k in ("train_samples", "test_samples", "epochs",
                                                   "lr", "qat_epochs", "seg_qat_epochs",
                                                   "qat_lr", "seg_qat_lr", "distill",
                                                   "speed_runs")},
        "tflite_available": tflite_available, "families": [], "speed": {},
        "cpu_flags": cpu_flags(), "vendor_settings": vendor_settings()}
    if args.update and args.json and Path(args.json).is_file():
        earlier = json.loads(Path(args.json).read_text())
        if earlier.get("budget") != result["budget"]:
            raise SystemExit(f"--update: {args.json} was made with budget {earlier.get('budget')}")
        result["speed"] = earlier.get("speed", {})
        result["families"] = [r for r in earlier.get("families", []) if r["model"] not in names]
    return result


def vendor_settings() -> dict[str, Any]:
    """What each onnxruntime vendor file is, on this CPU (ort_ptq / ort_vendor and
    ort_ptq_u8s8 / ort_vendor_u8s8)."""
    reduce = not has_vnni(cpu_flags())
    return {"ort_ptq": "quantize_static QDQ, defaults (S8S8), per_channel=True",
            "ort_ptq_u8s8": "quant_pre_process, then quantize_static QDQ, activation QUInt8, "
                            f"weight QInt8, per_channel=True, reduce_range={reduce} "
                            "(onnxruntime's advice for x86 "
                            f"{'without' if reduce else 'with'} VNNI)",
            # LiteRT's advice: per-channel int8 and a representative data set of "around
            # ~100-500 samples" of the training or validation data (TFLite post-training
            # quantization guide, tensorflow/lite/g3doc/performance/post_training_quantization.md)
            "litert_ptq": "litert-torch PT2E, get_symmetric_quantization_config("
                          "is_per_channel=True), 256 training samples (32 photo crops for "
                          "the speed files)"}


def _save(path: str | None, result: dict[str, Any]) -> None:
    result["metrics"] = metrics(result["families"], result["speed"])
    if path:
        from edgekit.core.io import atomic_write_json

        atomic_write_json(path, result)


def _families() -> list[str]:
    from edgekit.models import get_model_spec, list_models

    names = list_models()
    return [n for n in names if get_model_spec(n).task == "classification"
            and get_model_spec(n).family != "lowbit"
            and not n.endswith("_cls")] + [n for n in SEGMENTATION if n in names]


def _tflite_module() -> Any:
    try:
        import edgekit.export.tflite as tflite
        import edgekit.quantization.pt2e.quantize  # noqa: F401
    except ImportError as exc:  # part B's module missing: report TFLite columns as missing
        print(f"TFLite columns missing: {exc}")
        return None
    return tflite


def data_splits(name: str, train_samples: int = 4000, test_samples: int = 1000
                ) -> tuple[Any, Any, Any]:
    """Train, validation (10% of the training digits, to pick the best epoch) and test sets
    of zoo model ``name``, at its small input size (benchmarks/qat_recipe.py uses them too)."""
    from edgekit.calibration import load_splits
    from edgekit.models import get_model_spec

    spec = get_model_spec(name)
    train_ds, test_ds = load_splits("mnist5k_seg" if spec.task == "segmentation" else "mnist5k",
                                    input_size=spec.small_input_size, channels=1)
    train_ds, val_ds = train_ds.subset(train_samples, seed=0).split(0.1, seed=0)
    return train_ds, val_ds, test_ds.subset(test_samples, seed=0)


def train_fp32(name: str, train_ds: Any, val_ds: Any, *, epochs: int, lr: float,
               **model_args: Any) -> tuple[Any, Any]:
    """The fp32 model and its TrainResult; initial weights seeded 0, so every run (and
    every script) that trains ``name`` on the same data gets the same model.
    ``model_args`` go to ``create_model`` (e.g. a width other than the small default)."""
    import torch

    from edgekit.models import create_model, get_model_spec
    from edgekit.training import TrainConfig, train

    torch.manual_seed(0)  # torch seeds its global generator differently in every process
    model = create_model(name, num_classes=train_ds.num_classes, in_channels=1,
                         input_size=get_model_spec(name).small_input_size, **model_args)
    fit = train(model, train_ds, TrainConfig(epochs=epochs, lr=lr, batch_size=64,
                                             progress=False), val_data=val_ds)
    return model.eval(), fit


@dataclass
class _Family:
    """One family's run: its data, its fp32 model, the QAT options, and the row it fills."""

    name: str
    out: Path
    model: Any
    train_ds: Any
    val_ds: Any
    test_ds: Any
    calib: np.ndarray
    qcfg: dict[str, Any]
    row: dict[str, Any]
    preds: dict[str, np.ndarray] = field(default_factory=dict)  # argmax, for the pairs

    def score(self, key: str, logits: np.ndarray) -> None:
        from edgekit.training.compare import score

        ds = self.test_ds
        self.preds[key] = logits.argmax(1)
        self.row[key] = score(self.preds[key], ds.y, task=ds.task, num_classes=ds.num_classes)


def _family(name: str, args: argparse.Namespace, out: Path, tflite: Any) -> dict[str, Any]:
    from edgekit.models import get_model_spec

    spec = get_model_spec(name)
    seg = spec.task == "segmentation"
    train_ds, val_ds, test_ds = data_splits(name, args.train_samples, args.test_samples)
    lr = FAMILY_LR.get(name, args.lr)
    epochs = args.seg_epochs if seg else args.epochs
    model, fit = train_fp32(name, train_ds, val_ds, epochs=epochs, lr=lr)
    shape = tuple(train_ds.input_shape)
    row: dict[str, Any] = {"model": name, "task": spec.task, "input": list(shape),
                           "metric": "miou" if seg else "accuracy",
                           "fp32_train": {"epochs": epochs, "lr": lr,
                                          "class_weighted": fit.class_weights is not None,
                                          "best_epoch": fit.best_epoch,
                                          "seconds": round(fit.seconds, 1)}}
    qcfg = dict(epochs=args.seg_qat_epochs if seg else args.qat_epochs,
                lr=min(args.seg_qat_lr if seg else args.qat_lr, lr), distill=args.distill,
                calibration_size=256, batch_size=64)
    fam = _Family(name, out, model, train_ds, val_ds, test_ds, train_ds.subset(256, seed=1).x,
                  qcfg, row)
    fam.score("fp32", torch_out(model, test_ds.x))
    row["qat_train"] = {k: qcfg[k] for k in ("epochs", "lr", "distill")}
    _onnx_columns(fam, shape)
    if tflite is not None:
        _tflite_columns(fam, tflite)
    row["paired"] = paired(fam.preds, test_ds)
    return row


def _qat_onnx(fam: _Family, key: str, target: str) -> Path:
    """QAT for ``target``, exported as NAME.TARGET.int8.onnx; its parity in the row."""
    from edgekit.export.onnx import export_onnx
    from edgekit.export.verify import verify
    from edgekit.quantization import QuantConfig, quantize

    qm = quantize(fam.model, QuantConfig(target=target, **fam.qcfg), train_data=fam.train_ds,
                  val_data=fam.val_ds)
    path = fam.out / f"{fam.name}.{target}.int8.onnx"
    export_onnx(qm, path)
    report = verify(path, qm, fam.test_ds, threshold=0.0)  # the kernels fit for the target
    # 0: QAT kept its calibrated start; None: no QAT epochs
    fam.row[f"{key}_best_epoch"] = qm.history.best_epoch if qm.history else None
    fam.row[f"parity_{key.removeprefix('qat_')}"] = report.agreement
    fam.row[f"{key.removeprefix('qat_')}_error_steps_max"] = report.max_error_steps
    return path


def _onnx_columns(fam: _Family, shape: tuple[int, ...]) -> None:
    """The TensorRT and onnxruntime QAT files, and onnxruntime's own PTQ file."""
    from edgekit.export.onnx import export_onnx

    x, name, out = fam.test_ds.x, fam.name, fam.out
    onnx_path = _qat_onnx(fam, "qat_onnx", "tensorrt")
    fam.score("qat_onnx", ort_out(onnx_path, x, reference=True))
    fam.score("qat_onnx_fused", ort_out(onnx_path, x))
    fam.score("qat_ort", ort_out(_qat_onnx(fam, "qat_ort", "onnxruntime"), x))
    fp32_onnx = out / f"{name}.fp32.onnx"
    export_onnx(fam.model, fp32_onnx, input_shape=shape)
    try:
        ptq_onnx = ort_quantize_static(fp32_onnx, out / f"{name}.ort_ptq.onnx", fam.calib)
        fam.score("ort_ptq", ort_out(ptq_onnx, x))
        fam.score("ort_ptq_reference", ort_out(ptq_onnx, x, reference=True))
    except Exception as exc:
        fam.row["ort_ptq_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    try:  # the setting onnxruntime's documentation advises for this CPU
        u8s8 = ort_quantize_recommended(fp32_onnx, out / f"{name}.ort_ptq_u8s8.onnx", fam.calib,
                                        vnni=has_vnni(cpu_flags()))
        fam.score("ort_ptq_u8s8", ort_out(u8s8, x))
    except Exception as exc:
        fam.row["ort_ptq_u8s8_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]


def _tflite_columns(fam: _Family, tflite: Any) -> None:
    """The TFLite QAT file (XNNPACK and builtin kernels) and litert's own PTQ file."""
    from edgekit.export.litert_ops import float_compute_ops
    from edgekit.export.verify import verify
    from edgekit.quantization import QuantConfig, quantize

    x, row, calib = fam.test_ds.x, fam.row, fam.calib
    tq = quantize(fam.model, QuantConfig(target="tflite", **fam.qcfg), train_data=fam.train_ds,
                  val_data=fam.val_ds)
    tfl_path = fam.out / f"{fam.name}.int8.tflite"
    tflite.export_tflite(tq, tfl_path, calibration=calib)
    report = verify(tfl_path, tq, fam.test_ds, threshold=0.0)
    row["qat_tflite_best_epoch"] = tq.history.best_epoch if tq.history else None
    fam.score("qat_tflite", tfl_out(tflite, tfl_path, x))
    row["parity_tflite"] = report.agreement
    row["tflite_error_steps_max"] = report.max_error_steps
    # LiteRT's builtin kernels (what runs where XNNPACK does not): a second opinion
    builtin = np.concatenate([tflite.run_tflite(tfl_path, x[i:i + 128], threads=2,
                                                xnnpack=False)
                              for i in range(0, len(x), 128)])
    row["parity_tflite_builtin"] = float(
        (builtin.argmax(1) == torch_out(tq.model, x).argmax(1)).mean())
    inner = [op for op, why in float_compute_ops(tfl_path) if not why.startswith("I/O")]
    row["tflite_float_ops"] = len(inner)
    try:  # a baseline the vendor cannot build is a result, not a failed family
        vendor = tflite.vendor_ptq_tflite(fam.model, fam.out / f"{fam.name}.litert_ptq.tflite",
                                          calibration=calib)
        fam.score("litert_ptq", tfl_out(tflite, vendor.path, x))
    except Exception as exc:
        row["litert_ptq_error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]


def _speed(out: Path, tflite: Any, runs: int, models: list[str], reuse: bool
           ) -> dict[str, Any]:
    from edgekit.calibration import calibration_crops

    calib = calibration_crops(32, size=224, channels=3)
    speed: dict[str, Any] = {}
    for name in models:
        files, errors = _speed_files(name, out, tflite, calib, reuse)
        speed.update({f"{name}.{key}.error": text for key, text in errors.items()})
        for threads in (1, 2):
            for key, path in files.items():
                ms = _median_ms(path, threads, runs)
                speed[f"{name}.{key}.t{threads}_ms"] = round(ms, 3)
    return speed


def _speed_files(name: str, out: Path, tflite: Any, calib: np.ndarray, reuse: bool
                 ) -> tuple[dict[str, Path], dict[str, str]]:
    """The files of ``name`` that could be made, and why each other one could not (e.g.
    an export a tool refuses: recorded, the rest still timed)."""
    from edgekit.export.onnx import export_onnx
    from edgekit.models import create_model
    from edgekit.quantization import QuantConfig, quantize

    model = create_model(name, num_classes=10, in_channels=3, input_size=224).eval()
    ptq = dict(mode="ptq", calibration_size=32, batch_size=8)
    makers = {
        "ort_fp32": lambda p: export_onnx(model, p, input_shape=(3, 224, 224)).path,
        "ort_int8": lambda p: export_onnx(quantize(model, QuantConfig(
            target="onnxruntime", **ptq), calib_data=calib), p).path,
        "ort_vendor": lambda p: ort_quantize_static(out / f"{name}-224.fp32.onnx", p, calib),
        "ort_vendor_u8s8": lambda p: ort_quantize_recommended(
            out / f"{name}-224.fp32.onnx", p, calib, vnni=has_vnni(cpu_flags())),
    }
    if tflite is not None:
        makers.update({
            "tflite_fp32": lambda p: tflite.export_tflite(model, p, calibration=calib).path,
            "tflite_int8": lambda p: tflite.export_tflite(quantize(model, QuantConfig(
                target="tflite", **ptq), calib_data=calib), p, calibration=calib).path,
            "tflite_vendor": lambda p: tflite.vendor_ptq_tflite(model, p,
                                                                calibration=calib).path,
        })
    suffix = {"ort_fp32": "fp32.onnx", "ort_int8": "int8.onnx", "ort_vendor": "ort_ptq.onnx",
              "ort_vendor_u8s8": "ort_ptq_u8s8.onnx",
              "tflite_fp32": "fp32.tflite", "tflite_int8": "int8.tflite",
              "tflite_vendor": "litert_ptq.tflite"}
    files, errors = {}, {}
    for key, make in makers.items():
        path = out / f"{name}-224.{suffix[key]}"
        try:
            files[key] = path if reuse and path.is_file() else make(path)
        except Exception as exc:
            errors[key] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return files, errors


def _median_ms(path: Path, threads: int, runs: int) -> float:
    """Median latency of one batch-1 call, timed by ``edgekit bench`` in a process of its own
    (the runtime's runner, seeded random input bound once, warm-up until steady, ``runs``
    timed calls). In this process, after the nncf and litert conversions that made the
    files, the 2-thread medians came out up to 1.7x slower than in a fresh one (2026-11-24),
    where the earlier hand-rolled loop and ``edgekit bench`` agreed within 2%."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "bench.json"
        done = subprocess.run(
            [sys.executable, "-m", "edgekit", "bench", str(path), "--threads", str(threads),
             "--runs", str(runs), "--power", "none", "--json", str(result)],
            capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"edgekit bench {path.name} failed: {last}")
        return float(json.loads(result.read_text())["latency_ms"]["p50"])


if __name__ == "__main__":
    raise SystemExit(main())
