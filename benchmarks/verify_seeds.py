"""False alarms and caught faults of verification across seeds, zoo families and targets.

Part 1, good models (``false_failures`` must be 0): ``edgekit.compress`` with its defaults
(mobilenet_v2 on mnist5k) for ``jetson`` (TensorRT's QDQ ONNX, checked in onnxruntime's
reference kernels), ``raspberry-pi-5`` (LiteRT .tflite) and ``x86-cpu`` (onnxruntime's
QDQ ONNX, its fused kernels) over seeds 0-9; then one model per zoo family
(``quantization.REPRESENTATIVES`` less mobilenet_v2, which part 1 already covers, plus
the low-bit family's ``xnor_convnet``) at 3 seeds. Each family's three seeds rotate over
the three targets (seed k of the i-th family on target (i + k) mod 3), so every family
meets every target once; ``--all-targets`` runs all three per seed instead. A target that
compress refuses for a model before any work (pre-flight, one line) is recorded as
``refused``, not as a failure of verification. A run's verdict is the workstation's
(``verify.json``: the deployed file against the trained torch model) and the board's
(``bundle_check``: the file against ``reference.npz``, numpy + the runtime only); a good
model failing either is a false failure.

Quick settings, to keep a run to a few minutes on a 2-core machine (a busy one does not
finish all 60 in an hour: the order, seed by seed with the families' seeds among the first
default ones, keeps a cut-short run covering both parts): the first
``--train-limit`` training samples (segmentation: ``--seg-train-limit`` canvases at 64 px),
``--epochs`` fp32 epochs, ``--qat-epochs`` QAT epochs, ``--bench-runs`` timed runs, no power
sampling. The three targets of one seed of the default share its fp32 training: the jetson
run trains, the other two start from its ``fp32/`` checkpoint (``weights=``, epochs 0);
QAT, export and both verifications are each target's own.

Part 2, planted faults (``_faults.judge_planted``) in every run's deployed file, ONNX and
TFLite alike: wrong weight scale, two layers' weights swapped, one weight row negated, the
same target's file from the default run of the next seed under this run's name
(``other_run``: default runs only) and the good file fed wrongly normalised inputs. Each is
judged as ``edgekit verify FILE --expected reference.npz`` judges it on a board. A weight
fault counts as caught when the verdict on the outputs fails with ``--allow-modified``
(the SHA-256 the reference lists refuses any edited file, which would make the count
trivially full; both are recorded). ``other_run`` counts as caught by either check, and
the row says which caught it. The counts are also split by file format, by task and for
the classifiers that learned (``has_learned``): a model left at chance by the quick
settings answers one class whatever is done to its weights.

Each run's record is written atomically to ``WORK/<model>-<target>-s<seed>.row.json``; a
run whose record exists is not repeated (nor its compress, once its manifest exists), so a
killed benchmark resumes where it stopped. Workers may share ``--work`` (a lock file per
run): ``--part``, ``--first-seed`` and ``--reverse`` give each a share of the plan, and
``--report-only`` writes the table and JSON from the records there.

    python benchmarks/verify_seeds.py --json docs/results/verify-seeds-DATE.json \\
        [--work runs/verify-seeds] [--seeds 10] [--family-seeds 3] [--all-targets]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _faults import judge_file, judge_planted
from _provenance import run_info
from quantization import FAMILY_LR, REPRESENTATIVES, SEGMENTATION

from edgekit.core.io import atomic_write_json

TARGETS = ("jetson", "raspberry-pi-5", "x86-cpu")
FORMATS = {"jetson": "onnx", "raspberry-pi-5": "tflite", "x86-cpu": "onnx"}
TASKS = ("classification", "segmentation")
LEARNED_ACCURACY = 0.2  # has_learned: twice chance for mnist5k's 10 classes
DEFAULT_MODEL = "mobilenet_v2"
LOWBIT = "xnor_convnet"  # the low-bit family's convolutional net
FAMILIES = (*(m for m in REPRESENTATIVES if m != DEFAULT_MODEL), LOWBIT)
SEGMENTATION_SIZE = 64  # the segmentation nets' small input (ModelSpec.small_input_size)


@dataclass
class Run:
    model: str
    target: str
    seed: int
    group: str  # "default" or "family"
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.model}-{self.target}-s{self.seed}"


def plan(args) -> list[Run]:
    """Default runs seed by seed, a seed of every family after each of the first
    ``--family-seeds`` default seeds: a run cut short still covers every family."""
    runs = []
    for seed in range(args.first_seed, args.seeds):
        if args.part != "families":
            runs += [Run(DEFAULT_MODEL, t, seed, "default") for t in TARGETS]
        if seed < args.family_seeds and args.part != "default":
            for i, model in enumerate(FAMILIES):
                targets = TARGETS if args.all_targets else (TARGETS[(i + seed) % 3],)
                runs += [Run(model, t, seed, "family") for t in targets]
    return runs


def quick_settings(run: Run, args, work: Path) -> dict[str, Any]:
    from edgekit.models import get_model_spec

    # one training thread: on a box shared beyond its cores, two threads' OpenMP spin-waits
    # slow an epoch many times over (docs/results.md, verification across seeds)
    settings = dict(qat_epochs=args.qat_epochs, bench_runs=args.bench_runs,
                    bench_power="none", seed=run.seed, epochs=args.epochs,
                    train_limit=args.train_limit, calibration_size=args.calibration,
                    threads=args.threads)
    if get_model_spec(run.model).task == "segmentation":
        settings.update(train_limit=args.seg_train_limit, input_size=SEGMENTATION_SIZE)
    if run.model in FAMILY_LR:
        settings["lr"] = FAMILY_LR[run.model]
    trained = work / Run(run.model, TARGETS[0], run.seed, run.group).name / "fp32"
    if run.group == "default" and run.target != TARGETS[0] and trained.is_dir():
        settings.update(weights=str(trained), epochs=0)
    return settings


def compress_one(run: Run, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The run's verdicts and figures, or why compress refused or failed."""
    import edgekit
    from edgekit.core.errors import EdgekitError

    if (out / "manifest.json").is_file():  # compress finished, its record was not written
        seconds = json.loads((out / "manifest.json").read_text())["duration_s"]
        return {"status": "ok", "seconds": seconds, **verdicts(out)}
    if out.exists():  # a run killed before it finished: start it afresh
        shutil.rmtree(out)
    started = time.perf_counter()
    try:
        edgekit.compress(run.model, run.target, out=out, overwrite=True,  # a stale .partial
                         third_party_log=True, log=lambda line: None, **settings)
    except EdgekitError as exc:
        # pre-flight refuses before writing anything; later stages write into .NAME.partial
        began = out.exists() or (out.parent / f".{out.name}.partial").exists()
        status = "error" if began else "refused"
        return {"status": status, "message": str(exc).splitlines()[0]}
    return {"status": "ok", "seconds": round(time.perf_counter() - started, 1),
            **verdicts(out)}


FIGURES = ("passed", "agreement", "decisive", "decisive_agreement", "samples",
           "mean_error_steps", "max_error_steps", "tolerance_steps", "reason",
           "deployed_accuracy", "reference_accuracy")


def verdicts(out: Path) -> dict[str, Any]:
    """The workstation's verification (verify.json) and the board's check run here
    (the manifest's ``bundle_check``, which spells the error fields ``*_err_steps``)."""
    manifest = json.loads((out / "manifest.json").read_text())
    board = {k.replace("_err_", "_error_"): v
             for k, v in manifest["metrics"]["bundle_check"].items()}
    row = {"workstation": json.loads((out / "verify.json").read_text()), "board": board}
    row = {check: {k: report.get(k) for k in FIGURES} for check, report in row.items()}
    row["verified"] = bool(row["workstation"]["passed"]) and bool(row["board"]["passed"])
    return row


def run_all(args, work: Path) -> list[dict[str, Any]]:
    """Every planned run's record, made now unless it exists (``--report-only``: only
    those that exist)."""
    rows = []
    runs = plan(args)
    for run in reversed(runs) if args.reverse else runs:
        out = work / run.name
        record = out.parent / f"{run.name}.row.json"
        if record.is_file():
            rows.append(json.loads(record.read_text()))
            continue
        if args.report_only or not claim(work / f"{run.name}.lock"):
            continue
        row = {"model": run.model, "target": run.target, "seed": run.seed,
               "group": run.group}
        row.update(compress_one(run, out, quick_settings(run, args, work)))
        if row["status"] == "ok":
            row["faults"] = judge_planted(out / "bundle")
        atomic_write_json(record, row)
        rows.append(row)
        print(line(row), flush=True)
    add_other_run_faults(rows, work)
    return rows


def claim(lock: Path) -> bool:
    """Whether this process may make the run: its lock file is new, or was left by a
    process that is gone (a worker beside this one holds the others)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text() or 0), 0)
            return False  # its worker is alive
        except (ProcessLookupError, ValueError):
            lock.unlink(missing_ok=True)
            return claim(lock)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def add_other_run_faults(rows: list[dict[str, Any]], work: Path) -> None:
    """``other_run`` for each default run: the next seed's deployed file of the same target
    (the last seed takes the first's), judged against this run's reference."""
    ok = {(r["target"], r["seed"]): r for r in rows
          if r["group"] == "default" and r["status"] == "ok"}
    for (target, seed), row in ok.items():
        others = sorted(s for t, s in ok if t == target and s != seed)
        if not others or "other_run" in row["faults"]:
            continue
        other_seed = next((s for s in others if s > seed), others[0])
        bundle = work / Run(DEFAULT_MODEL, target, seed, "default").name / "bundle"
        other = work / Run(DEFAULT_MODEL, target, other_seed, "default").name / "bundle"
        deployed = json.loads((other / "bundle.json").read_text())["deployed"]
        judged = judge_file((other / deployed).read_bytes(), bundle)
        row["faults"]["other_run"] = {**judged, "other_seed": other_seed}
        atomic_write_json(work / f"{Run(DEFAULT_MODEL, target, seed, 'default').name}.row.json",
                          row)


def has_learned(row: dict[str, Any]) -> bool:
    """A classifier whose trained model beats chance twice over (top-1 >= 0.2 of 10 classes)
    on the test split. One that did not (a few quick epochs can leave it there) answers
    the same class for every input, so no fault that leaves that answer is visible in its
    outputs. Segmentation nets are counted apart (by task), not here."""
    accuracy = row["workstation"].get("reference_accuracy")
    return row["model"] not in SEGMENTATION and accuracy is not None \
        and accuracy >= LEARNED_ACCURACY


def caught(name: str, fault: dict[str, Any]) -> bool:
    """See the module docstring: the verdict for edits, either check for another run."""
    if name == "other_run":
        return fault["verdict_failed"] or fault["identity_failed"]
    return fault["verdict_failed"]


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line a run, the board's check (the verdict a device gives)."""
    lines = ["| model | target | seed | verified | agreement | decisive (agreement) | "
             "samples | mean / max error, steps | faults caught |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        head = f"| {row['model']} | {row['target']} | {row['seed']} |"
        if row["status"] != "ok":
            lines.append(f"{head} {row['status']}: {row['message']} | | | | | |")
            continue
        board = row["board"]
        faults = [caught(n, f) for n, f in row.get("faults", {}).items()
                  if "not_planted" not in f]
        decisive = board["decisive_agreement"]
        lines.append(
            f"{head} {'yes' if row['verified'] else '**NO**'} | {board['agreement']:.4f} | "
            f"{board['decisive']} ({'-' if decisive is None else f'{decisive:.4f}'}) | "
            f"{board['samples']} | {board['mean_error_steps']:.3f} / "
            f"{board['max_error_steps']:.2f} | {sum(faults)}/{len(faults)} |")
    return "\n".join(lines)


def line(row: dict[str, Any]) -> str:
    head = f"{row['model']:<20} {row['target']:<15} seed {row['seed']}"
    if row["status"] != "ok":
        return f"{head}  {row['status'].upper()}: {row['message']}"
    board = row["board"]
    faults = {n: f for n, f in row.get("faults", {}).items() if "not_planted" not in f}
    missed = [n for n, f in faults.items() if not caught(n, f)]
    return (f"{head}  {'verified' if row['verified'] else 'FALSE FAILURE'}  "
            f"agreement {board['agreement']:.4f} ({board['decisive']} decisive) "
            f"mean {board['mean_error_steps']:.3f} max {board['max_error_steps']:.2f} steps  "
            f"faults {len(faults) - len(missed)}/{len(faults)}"
            f"{' missed ' + ','.join(missed) if missed else ''}  {row['seconds']} s")


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    from edgekit.models import get_model_spec

    kinds: dict[str, list[bool]] = {}  # by fault, by file format and by task
    not_planted = 0
    for row in ok:
        for name, fault in row.get("faults", {}).items():
            if "not_planted" in fault:
                not_planted += 1
                continue
            for key in (name, FORMATS[row["target"]], get_model_spec(row["model"]).task):
                kinds.setdefault(key, []).append(caught(name, fault))
    learned = [caught(n, f) for r in ok if has_learned(r)
               for n, f in r.get("faults", {}).items() if "not_planted" not in f]
    by_fault = [v for k, v in kinds.items() if k not in (*FORMATS.values(), *TASKS)]
    planted = sum(len(v) for v in by_fault)
    found = sum(sum(v) for v in by_fault)
    metrics: dict[str, Any] = {
        "runs": len(ok),
        "runs_default": sum(r["group"] == "default" for r in ok),
        "runs_family": sum(r["group"] == "family" for r in ok),
        "refused": sum(r["status"] == "refused" for r in rows),
        "errors": sum(r["status"] == "error" for r in rows),
        "false_failures": sum(not r["verified"] for r in ok),
        "false_failures_workstation": sum(not r["workstation"]["passed"] for r in ok),
        "false_failures_board": sum(not r["board"].get("passed") for r in ok),
        "min_decisive_agreement": min((r["board"]["decisive_agreement"] for r in ok
                                       if r["board"]["decisive_agreement"] is not None),
                                      default=None),
        "max_mean_error_steps": max((r["board"]["mean_error_steps"] for r in ok),
                                    default=None),
        "planted_faults": planted,
        "planted_faults_caught": found,
        "planted_faults_caught_fraction": round(found / planted, 4) if planted else None,
    }
    for name, results in sorted(kinds.items()):
        metrics[f"{name}_planted"] = len(results)
        metrics[f"{name}_caught"] = sum(results)
    metrics["faults_not_planted"] = not_planted  # files without weights the fault edits
    metrics["runs_classification_at_chance"] = sum(
        get_model_spec(r["model"]).task == "classification" and not has_learned(r) for r in ok)
    metrics["planted_faults_learned"] = len(learned)
    metrics["planted_faults_caught_learned"] = sum(learned)
    other = [r["faults"]["other_run"] for r in ok if "other_run" in r.get("faults", {})]
    metrics["other_run_caught_by_verdict"] = sum(f["verdict_failed"] for f in other)
    metrics["other_run_caught_by_identity"] = sum(f["identity_failed"] for f in other)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write results (flat `metrics`) here")
    parser.add_argument("--work", type=Path, default=Path("runs/verify-seeds"))
    parser.add_argument("--seeds", type=int, default=10, help="seeds of the default model")
    parser.add_argument("--family-seeds", type=int, default=3)
    parser.add_argument("--all-targets", action="store_true",
                        help="every family on all three targets at each seed")
    parser.add_argument("--train-limit", type=int, default=1500)
    parser.add_argument("--seg-train-limit", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--bench-runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="training threads")
    # workers can share --work: each run has its own record and lock file
    parser.add_argument("--part", choices=("all", "default", "families"), default="all")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--reverse", action="store_true",
                        help="take the plan from its end (a second worker beside the first)")
    parser.add_argument("--report-only", action="store_true",
                        help="start no run: summarise the records in --work")
    args = parser.parse_args(argv)
    info = run_info("verify_seeds", argv, torch_threads=args.threads)
    rows = run_all(args, args.work)
    metrics = {**summary(rows), "runs_planned": len(plan(args))}
    print(f"\n{table(rows)}\n")
    print(json.dumps(metrics, indent=1))
    if args.json:
        settings = {k: getattr(args, k) for k in (
            "train_limit", "seg_train_limit", "epochs", "qat_epochs", "calibration",
            "bench_runs", "threads", "all_targets")}
        atomic_write_json(args.json, {"run_info": info, "settings": settings,
                                      "metrics": metrics, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
