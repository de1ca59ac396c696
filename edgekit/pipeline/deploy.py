"""`edgekit deploy RUN_DIR --remote user@board`: the bundle onto the board, and its figures back.

Over the benchmark's SSH layer (host keys checked, every argument a literal): copy
``RUN_DIR/bundle`` to the board and check the copies' SHA-256, build the TensorRT engine
there (Jetson targets), run ``edgekit verify --expected reference.npz`` and ``edgekit
bench`` with the bundle's own agent wheel on PYTHONPATH (the board needs numpy and the
runtime, never torch), then merge what the board measured into the run's manifest and
report, labelled with the board's name. ``import_results`` merges figures produced by hand
with DEVICE.md's commands.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.bench.remote import SSHOptions, SSHTarget, copy_file, run_ssh
from edgekit.bench.results import validate_result
from edgekit.core.errors import InvalidInputError, RemoteError
from edgekit.core.io import atomic_write_json, atomic_write_text, sha256_file
from edgekit.pipeline.bundle import FOLDER, MANIFEST, REFERENCE

Log = Callable[[str], None]


@dataclass(frozen=True)
class DeploySettings:
    """How the board measures: bench runs, power sampler, threads, where the bundle goes."""

    runs: int = 200
    power: str = "auto"
    threads: int | None = None
    remote_dir: str | None = None  # default: edgekit-bundles/<run name> in the remote home


@dataclass(frozen=True)
class Run:
    """A finished compress run: its folder, manifest and bundle manifest, checked."""

    folder: Path
    manifest: dict[str, Any]
    bundle: dict[str, Any]

    @classmethod
    def open(cls, folder: str | Path) -> Run:
        folder = Path(folder)
        manifest = _read_json(folder / "manifest.json", "an edgekit compress run")
        bundle = _read_json(folder / FOLDER / MANIFEST, "a run with a deploy bundle")
        for name, entry in bundle["files"].items():
            path = folder / FOLDER / name
            if not path.is_file() or sha256_file(path) != entry["sha256"]:
                raise InvalidInputError(f"{path} is missing or changed since compress wrote it "
                                        "(its SHA-256 differs from bundle.json)")
        return cls(folder, manifest, bundle)

    @property
    def runtime(self) -> str:
        return self.bundle["target"]["runtime"]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"{path.parent} is not {what} (no {path.name})") from None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from None


def deploy(run: Run, target: SSHTarget, opts: SSHOptions, settings: DeploySettings, *,
           profile: str | None = None, log: Log = print) -> dict[str, Any]:
    """Copy, build, verify and benchmark on one board; the record of what it measured."""
    where = target.destination
    folder = settings.remote_dir or f"edgekit-bundles/{run.folder.name}"
    timeout = opts.connect_timeout_s + opts.run_timeout_s
    log(f"{where}: copying {len(run.bundle['files'])} files to {folder}/")
    run_ssh(target, opts, ["mkdir", "-p", "--", folder], timeout=timeout)
    names = sorted(run.bundle["files"])
    for name in names:
        copy_file(target, opts, run.folder / FOLDER / name, f"{folder}/{name}")
    _check_copies(target, opts, folder, names, run.bundle["files"], timeout)
    agent = ["env", f"PYTHONPATH={folder}/{run.bundle['agent_wheel']}",
             *shlex.split(opts.remote_python), "-m", "edgekit"]
    record: dict[str, Any] = {"host": where, "when": _now(), "remote_dir": folder,
                              "profile": profile or run.bundle["target"]["profile"],
                              "edgekit_version": run.bundle["edgekit_version"]}
    files = dict(run.bundle["models"])  # precision -> file: both are benchmarked
    if run.runtime == "tensorrt":
        record["engine_build"] = _build_engine(target, opts, folder, run.bundle, timeout, log)
    deployed = next(k for k in ("lce", "int8", "fp32") if k in files)
    # files whose runtime their suffix does not tell (an LCE .tflite): named on the board
    named = {name: ["--runtime", rt] for name, rt in run.bundle.get("runtimes", {}).items()}
    if record.get("engine_build", {}).get("built"):  # the engine is what the Jetson runs
        files = {deployed: run.bundle["engine"]["engine"]}
    checked = files[deployed]
    log(f"{where}: verify {checked} against {REFERENCE}")
    record["verify"] = _agent_json(target, opts, [
        *agent, "verify", f"{folder}/{checked}", *named.get(checked, []),
        "--expected", f"{folder}/{REFERENCE}", "--json", "-"], timeout)
    record["hostname"] = record["verify"].get("host", "")
    record["bench"] = {}
    for label, name in files.items():
        log(f"{where}: benchmark {name} ({settings.runs} timed runs, power {settings.power})")
        args = [*agent, "bench", f"{folder}/{name}", *named.get(name, []),
                "--runs", str(settings.runs), "--power", settings.power,
                "--profile", record["profile"], "--json", "-"]
        if settings.threads:
            args += ["--threads", str(settings.threads)]
        result = _agent_json(target, opts, args, timeout)
        record["bench"][label] = result if "error" in result else validate_result(result)
        record["hostname"] = record["hostname"] or result.get("hostname", "")
    return record


def _check_copies(target: SSHTarget, opts: SSHOptions, folder: str, names: list[str],
                  files: dict[str, Any], timeout: float) -> None:
    out = run_ssh(target, opts, ["sha256sum", "--", *(f"{folder}/{n}" for n in names)],
                  timeout=timeout)
    got = {Path(line.split(maxsplit=1)[1].strip()).name: line.split()[0]
           for line in out.splitlines() if line.strip()}
    bad = [n for n in names if got.get(n) != files[n]["sha256"]]
    if bad:
        raise RemoteError(f"{target.destination}: the copies of {', '.join(bad)} differ from "
                          "the bundle (SHA-256)")


def _build_engine(target: SSHTarget, opts: SSHOptions, folder: str, bundle: dict[str, Any],
                  timeout: float, log: Log) -> dict[str, Any]:
    script = f"{folder}/{bundle['engine']['script']}"
    log(f"{target.destination}: building the TensorRT engine ({bundle['engine']['script']})")
    try:
        run_ssh(target, opts, ["sh", script], timeout=timeout)
    except RemoteError as exc:  # no trtexec, or the build failed: the ONNX is checked instead
        log(f"{target.destination}: engine not built: {exc}")
        return {"built": False, "error": str(exc)}
    return {"built": True, "engine": bundle["engine"]["engine"]}


def _agent_json(target: SSHTarget, opts: SSHOptions, argv: list[str], timeout: float
                ) -> dict[str, Any]:
    """The agent's JSON (exit 1 = ran but failed its check: the result still counts)."""
    try:
        out = run_ssh(target, opts, argv, timeout=timeout, ok_codes=(0, 1))
        return json.loads(out)
    except RemoteError as exc:
        return {"error": str(exc)}
    except ValueError:
        return {"error": f"the agent printed no JSON: {out[:200]!r}"}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def deploy_fleet(run: Run, hosts: list[Any], settings: DeploySettings, *, log: Log = print,
                 workers: int = 8) -> dict[str, dict[str, Any]]:
    """``deploy`` on every inventory host in parallel; a host that fails gives its error."""

    def one(host: Any) -> dict[str, Any]:
        try:
            return deploy(run, host.target, host.options, settings, profile=host.profile,
                          log=log)
        except RemoteError as exc:
            return {"host": host.target.destination, "when": _now(), "error": str(exc),
                    "profile": host.profile or run.bundle["target"]["profile"]}

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        records = list(pool.map(one, hosts))
    return {h.name: r for h, r in zip(hosts, records, strict=True)}


def import_results(run: Run, folder: str | Path, host_name: str) -> dict[str, Any]:
    """A record from JSON files the board wrote by hand (DEVICE.md): verify and bench."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"no folder {folder}")
    record: dict[str, Any] = {"host": host_name, "when": _now(), "remote_dir": "(by hand)",
                              "profile": run.bundle["target"]["profile"],
                              "edgekit_version": run.bundle["edgekit_version"], "bench": {}}
    for path in sorted(folder.glob("*.json")):
        data = _read_json(path, "a result")
        if "identity" in data or ("agreement" in data and "runtime" in data):
            record["verify"] = data
        elif "schema_version" in data:
            result = validate_result(data)
            record["bench"][result["model"]["name"]] = result
    if "verify" not in record and not record["bench"]:
        raise InvalidInputError(f"{folder} holds no `edgekit verify` or `edgekit bench` JSON")
    record["hostname"] = record.get("verify", {}).get("host", host_name)
    return record


def merge(run: Run, records: dict[str, dict[str, Any]]) -> Path:
    """Write each board's record under RUN/device/<name>/ and into manifest.json, then
    render report.md again with a "Measured on <board>" section per board. A record whose
    file, reference or bundle hashes are not this run's is refused before anything is
    written (InvalidInputError)."""
    from edgekit.pipeline.identity import check_record
    from edgekit.pipeline.report import render_report

    for name, record in records.items():
        check_record(run.bundle, record, name)
    manifest = dict(run.manifest)
    runs = dict(manifest.get("device_runs", {}))
    for name, record in records.items():
        key = re.sub(r"[^A-Za-z0-9._@-]+", "_", name)
        record = {**record, "board": name}  # as the user named it: the report's heading
        atomic_write_json(run.folder / "device" / key / "record.json", record)
        runs[key] = record
    manifest["device_runs"] = runs
    atomic_write_json(run.folder / "manifest.json", manifest)
    return atomic_write_text(run.folder / "report.md", render_report(manifest))


def passed(record: dict[str, Any]) -> bool:
    """Did the board run the bundle and verify the deployed file?"""
    return "error" not in record and bool(record.get("verify", {}).get("passed"))


def summary(record: dict[str, Any]) -> str:
    """One line per board for the console."""
    if "error" in record:
        return f"FAILED: {record['error']}"
    verify = record.get("verify", {})
    if not verify:
        parts = ["verify not run (no verify JSON)"]
    else:
        parts = [f"verify {'error: ' + verify['error'] if 'error' in verify else _verdict(verify)}"]
    for label, result in record.get("bench", {}).items():
        if "error" in result:
            parts.append(f"{label} bench error: {result['error']}")
        else:
            parts.append(f"{label} p50 {result['latency_ms']['p50']:.3f} ms "
                         f"({result['runtime']['name']})")
    return "; ".join(parts)


def _verdict(verify: dict[str, Any]) -> str:
    word = "PASSED" if verify.get("passed") else "FAILED"
    return f"{word} {verify['agreement'] * 100:.2f}% agreement on {verify['host']}"
