"""Where PTQ's activation error comes from: each activation quantizer's SQNR on a real
ImageNet network, per target and range setting.

EfficientNet-Lite0 (``pretrained.py``'s package and weights) is quantized post-training
for each target's scheme (``tensorrt``: nncf QDQ, signed int8; ``tflite``: PT2E, int8
with zero points) with weights rounded to nearest, calibrated on ``--samples`` crops, and
run on as many other crops. Every per-tensor activation quantizer's input x and its
quantized output q are compared: SQNR = 10·log10(Σx² / Σ(q−x)²), and the share of values
outside its range. The table lists the worst quantizers and the fake-quant model's top-1
agreement with fp32 on the same crops.

    python benchmarks/ptq_layers.py --json docs/results/ptq-layers-DATE.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _provenance import run_info
from pretrained import PREPROCESS, pretrained

TARGETS = ("tensorrt", "tflite")


class _Sqnr:
    """Running Σx², Σ(q−x)² and clipped count of one quantizer."""

    def __init__(self) -> None:
        self.signal = self.noise = 0.0
        self.clipped = self.values = 0

    def add(self, x, q, step: float) -> None:
        x, q = x.detach().double(), q.detach().double()
        self.signal += float((x * x).sum())
        self.noise += float(((q - x) ** 2).sum())
        self.clipped += int(((q - x).abs() > step / 2 + 1e-6 * step).sum())
        self.values += x.numel()

    def row(self, name: str) -> dict:
        db = 10 * math.log10(self.signal / self.noise) if self.noise > 0 else float("inf")
        return {"quantizer": name, "sqnr_db": round(db, 2),
                "clipped_share": self.clipped / max(1, self.values)}


def nncf_sqnr(qm, x, batch_size: int) -> dict[str, _Sqnr]:
    """Forward hooks on nncf's activation quantizers (its post-hooks)."""
    import torch
    from nncf.torch.function_hook.hook_storage import decode_hook_name
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import SymmetricQuantizer

    stats: dict[str, _Sqnr] = {}
    handles = []
    for name, module in get_hook_storage(qm.model).named_hooks():
        if decode_hook_name(name)[0] != "post_hooks" or not isinstance(module,
                                                                        SymmetricQuantizer):
            continue
        op = decode_hook_name(name)[1]
        stats[op] = _Sqnr()

        def hook(mod, args, out, op=op):
            step = float(mod.scale.detach().abs().max()) / (mod.level_high)
            stats[op].add(args[0], out, step)

        handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        for batch in torch.split(x, batch_size):
            qm(batch)
    for h in handles:
        h.remove()
    return stats


def pt2e_sqnr(qm, x, batch_size: int) -> dict[str, _Sqnr]:
    """The converted graph run node by node: every per-tensor quantize→dequantize pair."""
    import torch

    stats: dict[str, _Sqnr] = {}
    pending: dict = {}

    class Run(torch.fx.Interpreter):
        """Keeps each quantize node's float input until its dequantize has run (the
        interpreter frees a value after its last user)."""

        def run_node(self, n):
            target = str(n.target)
            if "quantize_per_tensor" in target and "dequantize" not in target:
                scale = n.args[1]
                scale = float(self.env[scale] if isinstance(scale, torch.fx.Node) else scale)
                pending[n] = (n.args[0].name, self.env[n.args[0]], scale)
            out = super().run_node(n)
            if "dequantize_per_tensor" in target and n.args[0] in pending:
                name, x_float, scale = pending.pop(n.args[0])
                stats.setdefault(name, _Sqnr()).add(x_float, out, scale)
            return out

    with torch.no_grad():
        for batch in torch.split(x, batch_size):
            Run(qm.model).run(batch)
    return stats


def measure(target: str, ranges: str, model, calib, x, expected, batch_size: int) -> dict:
    import torch

    from edgekit.quantization import QuantConfig, quantize

    started = time.perf_counter()
    qm = quantize(model, QuantConfig(target=target, mode="ptq", epochs=0, ranges=ranges,
                                     calibration_size=len(calib), batch_size=batch_size),
                  calib_data=calib)
    stats = (nncf_sqnr if target == "tensorrt" else pt2e_sqnr)(qm, x, batch_size)
    with torch.no_grad():
        got = torch.cat([qm(b) for b in torch.split(x, batch_size)])
    rows = sorted((s.row(name) for name, s in stats.items()), key=lambda r: r["sqnr_db"])
    return {"target": target, "ranges": ranges, "quantizers": len(rows),
            "top1_agreement": float((got.argmax(1) == expected.argmax(1)).float().mean()),
            "seconds": round(time.perf_counter() - started, 1), "worst": rows[:8],
            "median_sqnr_db": rows[len(rows) // 2]["sqnr_db"]}


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgekit.calibration import Preprocess, load_splits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("runs/pretrained/crops-1000"))
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--ranges", nargs="+", default=["minmax", "mean-minmax", "mse"])
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    info = run_info("ptq_layers", argv, torch_threads=0)
    train, test = load_splits(args.folder, preprocess=Preprocess(
        input_size=224, mean=tuple(PREPROCESS["mean"]), std=tuple(PREPROCESS["std"])), seed=0)
    calib = torch.as_tensor(train.x[: args.samples])
    x = torch.as_tensor(test.x[: args.samples])
    model = pretrained("efficientnet_lite0")
    with torch.no_grad():
        expected = torch.cat([model(b) for b in torch.split(x, args.batch_size)])
    results = []
    for target in args.targets:
        for ranges in args.ranges:
            results.append(measure(target, ranges, model, calib, x, expected, args.batch_size))
            r = results[-1]
            print(f"\n{target} {ranges}: top-1 agreement {r['top1_agreement']:.3f}, "
                  f"{r['quantizers']} quantizers, median SQNR {r['median_sqnr_db']} dB, "
                  f"{r['seconds']} s", flush=True)
            for w in r["worst"]:
                print(f"  {w['quantizer']:<48} {w['sqnr_db']:6.2f} dB  "
                      f"clipped {100 * w['clipped_share']:.3f}%")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        metrics = {f"{r['target']}_{r['ranges']}_top1_agreement": r["top1_agreement"]
                   for r in results}
        metrics.update({f"{r['target']}_{r['ranges']}_worst_sqnr_db": r["worst"][0]["sqnr_db"]
                        for r in results})
        args.json.write_text(json.dumps({"run": info, "metrics": metrics, "results": results},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
