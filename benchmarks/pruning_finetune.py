"""Fine-tuning settings for channel pruning to 50% of the MACs: accuracy only, one family.

The same data, dense training and seeds as ``benchmarks/pruning.py``'s accuracy part (which
also QATs and verifies int8 files); here each setting is a pruned copy of one dense model,
scored against the dense model given the same extra epochs at the same rate. A setting is
``key=value`` pairs: ``ft`` (extra epochs), ``ft_lr``, ``steps`` (prune rounds), ``scope``
(global/local), ``imp`` (l2/l1/taylor/bn_scale), ``distill`` (share of the loss).

    python benchmarks/pruning_finetune.py --family mobilenet_v2 \\
        --settings "ft=4,ft_lr=1e-3;ft=4,ft_lr=3e-3;ft=8,ft_lr=3e-3,steps=2" --json PATH
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

from _provenance import cpu_flags
from quantization import FAMILY_LR, data_splits, train_fp32


def _setting(text: str) -> dict[str, Any]:
    kv = dict(pair.split("=", 1) for pair in text.split(",") if pair)
    return {"ft": int(kv.get("ft", 4)), "ft_lr": float(kv.get("ft_lr", 1e-3)),
            "steps": int(kv.get("steps", 2)), "scope": kv.get("scope", "global"),
            "imp": kv.get("imp", "l2"), "distill": float(kv.get("distill", 0.5))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="mobilenet_v2")
    p.add_argument("--settings", required=True, help="';'-separated settings (see above)")
    p.add_argument("--epochs", type=int, default=6, help="dense fp32 epochs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write results (flat `metrics` object) here")
    args = p.parse_args()

    import torch
    from _provenance import run_info

    from edgekit.pruning import ChannelPruneConfig, prune_and_finetune
    from edgekit.training import TrainConfig, evaluate, train

    torch.set_num_threads(args.threads)
    train_ds, val_ds, test_ds = data_splits(args.family, 4000, 1000)
    dense, _ = train_fp32(args.family, train_ds, val_ds, epochs=args.epochs,
                          lr=FAMILY_LR.get(args.family, 3e-3))
    baselines: dict[tuple[int, float], tuple[float, float]] = {}
    rows = []
    for text in args.settings.split(";"):
        s = _setting(text)
        ft = TrainConfig(epochs=s["ft"], lr=s["ft_lr"], batch_size=64, progress=False)
        if (s["ft"], s["ft_lr"]) not in baselines:  # the dense model, same extra epochs
            base = copy.deepcopy(dense)
            torch.manual_seed(1)
            train(base, train_ds, ft, val_data=val_ds)
            baselines[s["ft"], s["ft_lr"]] = (evaluate(base, test_ds)["accuracy"],
                                              evaluate(base, val_ds)["accuracy"])
        pruned = copy.deepcopy(dense)
        torch.manual_seed(1)
        config = ChannelPruneConfig(keep_macs=0.5, steps=s["steps"],
                                    epochs_per_step=max(1, s["ft"] // s["steps"]),
                                    scope=s["scope"], importance=s["imp"],
                                    distill=s["distill"])
        t0 = time.perf_counter()
        result = prune_and_finetune(pruned, train_ds, config, train_config=ft,
                                    val_data=val_ds, teacher=dense)
        acc, val_acc = (evaluate(pruned, d)["accuracy"] for d in (test_ds, val_ds))
        dense_acc, dense_val = baselines[s["ft"], s["ft_lr"]]
        rows.append({"setting": text, **s, "dense": dense_acc, "pruned": acc,
                     "drop_pp": round(100 * (dense_acc - acc), 2),
                     "val_drop_pp": round(100 * (dense_val - val_acc), 2),
                     "macs_ratio": round(result.macs_ratio, 3),
                     "seconds": round(time.perf_counter() - t0)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'setting':<52} {'MACs':>6} {'dense':>6} {'pruned':>6} {'drop pp':>8} "
          f"{'val drop':>8}")
    for r in rows:
        print(f"{r['setting']:<52} {r['macs_ratio']:6.3f} {r['dense']:6.3f} {r['pruned']:6.3f} "
              f"{r['drop_pp']:8.2f} {r['val_drop_pp']:8.2f}")
    if args.json:
        from edgekit.core.io import atomic_write_json

        metrics = {f"{r['setting']}.drop_pp": r["drop_pp"] for r in rows}
        metrics["best_drop_pp"] = min(r["drop_pp"] for r in rows)
        atomic_write_json(Path(args.json), {
            **run_info("pruning_finetune", None, torch_threads=args.threads),
            "cpu_flags": cpu_flags(), "family": args.family, "rows": rows,
            "metrics": metrics})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
