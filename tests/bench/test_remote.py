"""Remote benchmarks against a real OpenSSH server started on 127.0.0.1 for these tests.

The server runs as the current user with generated host and user keys; the client checks
the host key against a known_hosts file built from the generated host key. The "remote"
side is this machine, so the agent runs with this interpreter (``--remote-python``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.bench.remote import (
    SSHOptions,
    SSHTarget,
    load_inventory,
    quote_command,
    run_remote,
)
from edgekit.core.errors import InvalidInputError, RemoteError
from tests.sshd import free_port, keygen

# Spaces, both quote kinds, a command substitution and a glob: all must arrive literally.
NASTY_NAME = "my model 'v1' \"fp32\" $(touch PWNED) *.onnx"


def _opts(sshd, **over) -> SSHOptions:
    base = {"known_hosts": str(sshd["known_hosts"]), "identity": str(sshd["identity"]),
            "remote_python": sys.executable, "connect_timeout_s": 10, "run_timeout_s": 240,
            "ssh_config": "/dev/null"}
    return SSHOptions(**{**base, **over})


def test_target_parsing_and_quoting():
    assert SSHTarget.parse("pi@rpi5.local:2222") == SSHTarget("rpi5.local", "pi", 2222)
    assert SSHTarget.parse("jetson") == SSHTarget("jetson", None, 22)
    assert SSHTarget.parse("u@[::1]:22").host == "::1"
    for bad in ("-oProxyCommand=x", "a b", "u@h:99999", "u@h;rm"):
        with pytest.raises(InvalidInputError):
            SSHTarget.parse(bad)
    argv = ["echo", NASTY_NAME]
    out = subprocess.run(["sh", "-c", quote_command(argv)], capture_output=True, text=True)
    assert out.stdout.strip() == NASTY_NAME


def test_ssh_options_always_check_host_keys():
    args = SSHOptions(known_hosts="/k").ssh_args(SSHTarget("h", "u", 2))
    assert "StrictHostKeyChecking=yes" in args and "UserKnownHostsFile=/k" in args
    assert not any("StrictHostKeyChecking=no" in a for a in args)
    assert args[-2:] == ["--", "u@h"]


@pytest.mark.ssh
@pytest.mark.slow
def test_remote_bench_with_a_hostile_file_name(sshd, onnx_model, tmp_path, monkeypatch):
    model = tmp_path / NASTY_NAME
    shutil.copy(onnx_model, model)
    monkeypatch.chdir(tmp_path)
    target = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    result = run_remote(target, model, ["--runs", "5", "--warmup", "1", "--power", "none",
                                        "--label", "a $(b) 'c'"], _opts(sshd))
    assert result["model"]["name"] == NASTY_NAME  # arrived literally, hash verified
    assert result["label"] == "a $(b) 'c'"
    assert result["remote"]["target"].endswith(f":{sshd['port']}")
    assert result["power"] == {"available": False, "reason": "disabled (--power none)"}
    # No command substitution ran anywhere: not here, not in the remote home or /tmp.
    for folder in (tmp_path, Path.home(), Path("/tmp")):
        assert not (folder / "PWNED").exists()


@pytest.mark.ssh
def test_wrong_host_key_is_refused(sshd, onnx_model, tmp_path):
    keygen(tmp_path / "other")
    other = (tmp_path / "other.pub").read_text().split()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd['port']} {other[0]} {other[1]}\n")
    target = SSHTarget("127.0.0.1", sshd["user"], sshd["port"])
    with pytest.raises(RemoteError, match="ssh failed"):
        run_remote(target, onnx_model, [], _opts(sshd, known_hosts=str(wrong)))
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(RemoteError, match="ssh failed"):  # unknown host: no blanket accept
        run_remote(target, onnx_model, [], _opts(sshd, known_hosts=str(empty)))


@pytest.mark.ssh
def test_connect_timeout_on_a_dead_port(sshd, onnx_model):
    target = SSHTarget("127.0.0.1", sshd["user"], free_port())
    started = time.monotonic()
    with pytest.raises(RemoteError):
        run_remote(target, onnx_model, [], _opts(sshd, connect_timeout_s=2))
    assert time.monotonic() - started < 30


@pytest.mark.ssh
@pytest.mark.slow
def test_inventory_runs_hosts_in_parallel_and_cli_writes_json(sshd, onnx_model, tmp_path):
    inventory = tmp_path / "hosts.toml"
    good = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    inventory.write_text(
        f'[[host]]\nname = "loop-a"\ntarget = "{good}"\nprofile = "x86-cpu"\n'
        f'[[host]]\nname = "loop-b"\ntarget = "{good}"\nargs = ["--threads", "1"]\n'
        f'[[host]]\nname = "dead"\ntarget = "{sshd["user"]}@127.0.0.1:{free_port()}"\n'
    )
    hosts = load_inventory(inventory, _opts(sshd))
    assert [h.name for h in hosts] == ["loop-a", "loop-b", "dead"]
    out = tmp_path / "fleet.json"
    run = subprocess.run(
        [sys.executable, "-m", "edgekit", "bench", str(onnx_model), "--inventory", str(inventory),
         "--known-hosts", str(sshd["known_hosts"]), "--identity", str(sshd["identity"]),
         "--remote-python", sys.executable, "--ssh-config", "/dev/null", "--runs", "5",
         "--warmup", "1", "--connect-timeout", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 1  # one host failed
    fleet = json.loads(out.read_text())
    assert fleet["loop-a"]["device"]["profile"] == "x86-cpu"
    assert fleet["loop-b"]["runtime"]["threads"] == 1
    assert "ssh failed" in fleet["dead"]["error"]
    assert "dead: FAILED" in run.stdout


def test_inventory_errors(tmp_path):
    bad = tmp_path / "hosts.toml"
    bad.write_text("[[host]]\nname = 'x'\n")
    with pytest.raises(InvalidInputError, match="target"):
        load_inventory(bad, SSHOptions())
    bad.write_text("not = [toml")
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_inventory(bad, SSHOptions())
