"""Run the benchmark agent on another machine over SSH, using the system ``ssh`` binary.

Files are streamed through ``ssh HOST 'cat > PATH'`` rather than scp: scp's remote-path
handling differs between its SFTP mode (OpenSSH >= 9) and legacy mode (remote shell
expansion), while one ssh command line has one quoting rule, which every argument here
follows (``shlex.quote``). Host keys are always checked (``StrictHostKeyChecking=yes``);
pass ``known_hosts`` to use a specific file. The copy is verified by the SHA-256 the agent
reports for the model it measured.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.bench.results import validate_result
from edgekit.core.errors import InvalidInputError, RemoteError
from edgekit.core.io import sha256_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9a-fA-F:]+\])"
                     r"(?::(?P<port>\d{1,5}))?$")


@dataclass(frozen=True)
class SSHTarget:
    host: str
    user: str | None = None
    port: int = 22

    @classmethod
    def parse(cls, text: str) -> SSHTarget:
        """``user@host[:port]``; IPv6 hosts in brackets (``user@[::1]:2222``)."""
        match = _TARGET.match(text.strip())
        if not match or match["host"].startswith("-"):
            raise InvalidInputError(f"bad remote {text!r}; expected user@host[:port]")
        port = int(match["port"] or 22)
        if not 0 < port < 65536:
            raise InvalidInputError(f"bad port in {text!r}")
        return cls(host=match["host"].strip("[]"), user=match["user"], port=port)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


@dataclass(frozen=True)
class SSHOptions:
    known_hosts: str | None = None  # None: the user's default known_hosts files
    identity: str | None = None
    remote_python: str = "python3"  # may be several words, e.g. "env X=1 python3"
    connect_timeout_s: float = 10.0
    run_timeout_s: float = 900.0
    ssh_config: str | None = None  # e.g. "/dev/null" to ignore ~/.ssh/config

    def ssh_args(self, target: SSHTarget) -> list[str]:
        args = ["ssh", "-p", str(target.port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"ConnectTimeout={max(1, int(self.connect_timeout_s))}"]
        if self.ssh_config:
            args += ["-F", self.ssh_config]
        if self.known_hosts:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}",
                     "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity:
            args += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        return [*args, "--", target.destination]


def quote_command(argv: list[str]) -> str:
    """One remote shell command line in which every argument is a literal."""
    return " ".join(shlex.quote(a) for a in argv)


def run_ssh(target: SSHTarget, opts: SSHOptions, argv: list[str], *, timeout: float,
            stdin: Any = None, ok_codes: tuple[int, ...] = (0,)) -> str:
    """Run ``argv`` (every argument a literal) on ``target``; its stdout. RemoteError when
    ssh fails, the command times out or exits with a code not in ``ok_codes``."""
    command = [*opts.ssh_args(target), quote_command(argv)]
    try:
        out = subprocess.run(command, stdin=stdin, capture_output=True, timeout=timeout,
                             check=False)
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{target.destination}: timed out after {timeout:.0f} s running "
                          f"{argv[0]}") from None
    except OSError as exc:
        raise RemoteError(f"cannot run ssh: {exc}") from None
    err = out.stderr.decode(errors="replace").strip()
    if out.returncode == 255:
        raise RemoteError(f"{target.destination}: ssh failed: {_last_line(err)}")
    if out.returncode not in ok_codes:
        raise RemoteError(f"{target.destination}: {argv[0]} exited {out.returncode}: "
                          f"{_last_line(err)}")
    return out.stdout.decode(errors="replace")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def run_remote(
    target: SSHTarget | str, model_path: str | Path, agent_args: list[str],
    opts: SSHOptions | None = None, *, extra_files: dict[str, str | Path] | None = None,
) -> dict[str, Any]:
    """Copy the model (and ``extra_files``: flag -> path) over, run the agent, return its result.

    ``agent_args`` are ``edgekit bench`` flags for the remote run (no file paths); each
    extra file is copied and passed as ``flag REMOTE_PATH``.
    """
    target = SSHTarget.parse(target) if isinstance(target, str) else target
    opts = opts or SSHOptions()
    model_path = Path(model_path)
    if not model_path.is_file():
        raise InvalidInputError(f"model file {model_path} does not exist")
    timeout = opts.connect_timeout_s + 30
    workdir = run_ssh(target, opts, ["mktemp", "-d", "/tmp/edgekit-bench.XXXXXXXX"],
                   timeout=timeout).strip()
    if not workdir.startswith("/tmp/edgekit-bench."):
        raise RemoteError(f"{target.destination}: unexpected mktemp output {workdir!r}")
    try:
        remote_model = copy_file(target, opts, model_path, f"{workdir}/{model_path.name}")
        file_args: list[str] = []
        for i, (flag, local) in enumerate((extra_files or {}).items()):
            remote = copy_file(target, opts, Path(local), f"{workdir}/extra{i}-{Path(local).name}")
            file_args += [flag, remote]
        argv = [*shlex.split(opts.remote_python), "-m", "edgekit", "bench", remote_model,
                *agent_args, *file_args, "--json", "-"]
        # Exit 1 is the agent's "measured, but the reference check failed": keep the result.
        stdout = run_ssh(target, opts, argv, timeout=opts.run_timeout_s, ok_codes=(0, 1))
    finally:
        # The result matters more than the clean-up; /tmp is cleared on reboot anyway.
        with contextlib.suppress(RemoteError):
            run_ssh(target, opts, ["rm", "-rf", "--", workdir], timeout=timeout)
    try:
        result = validate_result(json.loads(stdout))
    except json.JSONDecodeError:
        raise RemoteError(f"{target.destination}: the agent printed no JSON result: "
                          f"{stdout[:200]!r}") from None
    if result["model"].get("sha256") != sha256_file(model_path):
        raise RemoteError(f"{target.destination}: the remote copy of {model_path.name} "
                          "differs from the local file")
    result["remote"] = {"target": f"{target.destination}:{target.port}"}
    return result


def copy_file(target: SSHTarget, opts: SSHOptions, local: Path, remote: str) -> str:
    """Stream ``local`` to the path ``remote`` on ``target``; returns ``remote``."""
    with open(local, "rb") as f:
        run_ssh(target, opts, ["sh", "-c", 'cat > "$1"', "sh", remote], stdin=f,
             timeout=opts.connect_timeout_s + opts.run_timeout_s)
    return remote


@dataclass(frozen=True)
class InventoryHost:
    name: str
    target: SSHTarget
    options: SSHOptions
    profile: str | None = None
    extra_args: list[str] = field(default_factory=list)


def load_inventory(path: str | Path, defaults: SSHOptions) -> list[InventoryHost]:
    """``[[host]]`` tables: name, target, and optionally profile, known_hosts, identity,
    remote_python, args (extra bench flags)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInputError(f"cannot read inventory {path}: {exc}") from None
    hosts = []
    for i, entry in enumerate(data.get("host", [])):
        if not isinstance(entry, dict) or "target" not in entry:
            raise InvalidInputError(f"{path.name}: host #{i + 1} needs a 'target'")
        overrides = {k: entry[k] for k in ("known_hosts", "identity", "remote_python")
                     if k in entry}
        hosts.append(InventoryHost(
            name=str(entry.get("name", entry["target"])),
            target=SSHTarget.parse(str(entry["target"])),
            options=replace(defaults, **overrides),
            profile=entry.get("profile"),
            extra_args=[str(a) for a in entry.get("args", [])],
        ))
    if not hosts:
        raise InvalidInputError(f"{path.name} lists no [[host]] entries")
    return hosts


def run_fleet(
    hosts: list[InventoryHost], model_path: str | Path, agent_args: list[str], *,
    workers: int = 8, extra_files: dict[str, str | Path] | None = None,
) -> dict[str, dict[str, Any]]:
    """Benchmark on every host in parallel; a failed host gives {"error": ...}, not an abort."""

    def one(host: InventoryHost) -> dict[str, Any]:
        args = [*agent_args, *host.extra_args]
        if host.profile:
            args += ["--profile", host.profile]
        try:
            return run_remote(host.target, model_path, args, host.options,
                              extra_files=extra_files)
        except RemoteError as exc:
            return {"error": str(exc)}

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        results = list(pool.map(one, hosts))
    return {h.name: r for h, r in zip(hosts, results, strict=True)}
