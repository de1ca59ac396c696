"""`edgekit deploy` against a real sshd on 127.0.0.1 whose "board" is a torch-free venv.

The board side is ``board_python`` (tests/board_env.py): numpy + onnxruntime + LiteRT
only, so everything it runs comes from the bundle (edgekit's own wheel included). What
cannot exist here is TensorRT: the Jetson case checks the honest fallback (no trtexec on
the board: the ONNX is verified in onnxruntime's reference kernels, and the report says
the engine was not built).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from edgekit.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bundle")]


@pytest.fixture(scope="module")
def pi_run(quick_compress):
    return quick_compress("raspberry-pi-5").out_dir


@pytest.fixture(scope="module")
def jetson_run(quick_compress):
    return quick_compress("jetson").out_dir


def _ssh_flags(sshd, board_python) -> list[str]:
    return ["--remote", f"{sshd['user']}@127.0.0.1:{sshd['port']}",
            "--known-hosts", str(sshd["known_hosts"]), "--identity", str(sshd["identity"]),
            "--ssh-config", "/dev/null", "--remote-python", str(board_python)]


def _no_torch_on_the_board(board_python, cwd) -> None:
    for module in ("torch", "onnx", "nncf", "edgekit"):
        out = subprocess.run([str(board_python), "-c", f"import {module}"], capture_output=True,
                             cwd=cwd)  # not the repository: python -c puts the cwd on sys.path
        assert out.returncode != 0, f"{module} is importable on the board"


@pytest.mark.ssh
def test_deploy_tflite_bundle_verifies_and_benchmarks_on_the_board(
        pi_run, sshd, board_python, tmp_path, capsys):
    _no_torch_on_the_board(board_python, tmp_path)
    board_dir = tmp_path / "on the board"  # a space: every argument must arrive literally
    code = main(["deploy", str(pi_run), *_ssh_flags(sshd, board_python), "--runs", "5",
                 "--power", "none", "--remote-dir", str(board_dir)])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]

    bundle = json.loads((pi_run / "bundle" / "bundle.json").read_text())
    for name, entry in bundle["files"].items():  # the copies are the bundle's files
        assert (board_dir / name).stat().st_size == entry["bytes"]
    manifest = json.loads((pi_run / "manifest.json").read_text())
    [record] = manifest["device_runs"].values()
    verify = record["verify"]
    assert verify["passed"] and verify["runtime"] == "litert" and verify["agreement"] >= 0.995
    assert verify["samples"] == json.loads(
        (pi_run / "bundle" / "bundle.json").read_text())["reference"]["samples"]
    assert set(record["bench"]) == {"int8", "fp32"}
    for label, result in record["bench"].items():
        assert result["runtime"]["name"] == "litert"
        assert result["model"]["name"] == f"model_{label}.tflite"
        assert result["model"]["sha256"] == bundle["files"][f"model_{label}.tflite"]["sha256"]
    assert (pi_run / "device" / next(iter(manifest["device_runs"])) / "record.json").is_file()

    report = (pi_run / "report.md").read_text()
    # the board as named (here its SSH destination), then the host and arch it reported
    assert f"## Measured on {record['board']}: host {record['hostname']}" in report
    assert record["verify"]["identity"]["file_sha256"] == bundle["files"][
        "model_int8.tflite"]["sha256"]  # checked against the run before it was merged
    assert "Verification PASSED" in report.split("## Measured on")[1]
    assert "this workstation" in report  # host figures stay, labelled as such
    assert "PASSED" in out.out and "report:" in out.out


@pytest.mark.ssh
def test_deploy_jetson_without_trtexec_checks_the_onnx_and_says_so(
        jetson_run, sshd, board_python, tmp_path, capsys):
    code = main(["deploy", str(jetson_run), *_ssh_flags(sshd, board_python), "--runs", "5",
                 "--power", "none", "--remote-dir", str(tmp_path / "board")])
    assert code == 0, capsys.readouterr().err[-2000:]
    manifest = json.loads((jetson_run / "manifest.json").read_text())
    [record] = manifest["device_runs"].values()
    assert record["engine_build"]["built"] is False
    assert "trtexec not found" in record["engine_build"]["error"]
    assert record["verify"]["runtime"] == "onnxruntime"
    assert record["verify"]["kernels"].startswith("reference")  # TensorRT's arithmetic
    report = (jetson_run / "report.md").read_text()
    assert "TensorRT engine NOT built" in report


def test_deploy_merges_results_made_by_hand(pi_run, board_python, tmp_path, capsys):
    """DEVICE.md's manual path: verify and bench on the board, copy the JSON back, merge."""
    bundle = pi_run / "bundle"
    wheel = next(bundle.glob("edgekit-*.whl"))
    env = {"PYTHONPATH": str(wheel), "PATH": "/usr/bin:/bin"}
    copied = tmp_path / "from-board"
    copied.mkdir()
    for argv in (["verify", "model_int8.tflite", "--expected", "reference.npz", "--json",
                  str(copied / "verify-device.json")],
                 ["bench", "model_int8.tflite", "--runs", "5", "--power", "none", "--json",
                  str(copied / "bench-device.json")]):
        done = subprocess.run([str(board_python), "-m", "edgekit", *argv], cwd=bundle, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    assert main(["deploy", str(pi_run), "--results", str(copied), "--host-name", "pi5"]) == 0
    manifest = json.loads((pi_run / "manifest.json").read_text())
    record = manifest["device_runs"]["pi5"]
    assert record["verify"]["passed"] and "model_int8.tflite" in record["bench"]
    assert "## Measured on" in (pi_run / "report.md").read_text()


def _board_json(bundle, copied, artifact: str, *, reference=None, extra=()) -> None:
    """verify-device.json and bench-device.json as DEVICE.md makes them on the board (run
    in-process here: the board-venv path is test_deploy_merges_results_made_by_hand's)."""
    copied.mkdir(exist_ok=True)
    reference = reference or bundle / "reference.npz"
    main(["verify", str(artifact), "--expected", str(reference), "--json",
          str(copied / "verify-device.json"), *extra])
    assert main(["bench", str(artifact), "--runs", "3", "--power", "none", "--json",
                 str(copied / "bench-device.json")]) == 0


def _refused(run, copied, capsys, *why: str) -> None:
    """deploy --results refuses in one line, exit 2, and writes nothing into the run."""
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["deploy", str(run), "--results", str(copied), "--host-name", "foreign"]) == 2
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith("edgekit: error: foreign: ")
    assert all(w in out.err for w in why), out.err
    assert "Traceback" not in out.err and "PASSED" not in out.out
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # manifest, report and device/ untouched


@pytest.fixture(scope="module")
def lenet5_pi_run(tmp_path_factory):
    """Another model's run for the same board: its bundle's files have the same names."""
    import edgekit
    from tests.conftest import QUICK_COMPRESS

    out = tmp_path_factory.mktemp("other-model") / "lenet5"
    return edgekit.compress("lenet5", "raspberry-pi-5", out=out, log=lambda _: None,
                            **QUICK_COMPRESS).out_dir


def test_deploy_refuses_results_of_another_models_bundle(pi_run, lenet5_pi_run, tmp_path,
                                                         capsys):
    other = lenet5_pi_run / "bundle"
    _board_json(other, tmp_path / "json", other / "model_int8.tflite")
    assert json.loads((tmp_path / "json" / "verify-device.json").read_text())["passed"]
    _refused(pi_run, tmp_path / "json", capsys, "reference.npz that is not this run's")


def test_deploy_refuses_a_reference_from_another_run(pi_run, lenet5_pi_run, tmp_path, capsys):
    """This run's file, verified against another run's reference (whose list names a file of
    the same name with other bytes, so verify needs --allow-modified to run it at all)."""
    ours, other = pi_run / "bundle", lenet5_pi_run / "bundle"
    copied = tmp_path / "json"
    _board_json(ours, copied, ours / "model_fp32.tflite", reference=other / "reference.npz",
                extra=["--allow-modified"])
    _refused(pi_run, copied, capsys, "reference.npz that is not this run's")
    # the bench result alone (this run's file) is not enough to smuggle a foreign verify in:
    (copied / "verify-device.json").unlink()
    # exit 1: merged, but nothing verified
    assert main(["deploy", str(pi_run), "--results", str(copied), "--host-name", "b"]) == 1
    assert "b" in json.loads((pi_run / "manifest.json").read_text())["device_runs"]


def test_deploy_refuses_a_modified_file(pi_run, tmp_path, capsys):
    bundle = pi_run / "bundle"
    changed = tmp_path / "board" / "model_int8.tflite"
    changed.parent.mkdir()
    data = bytearray((bundle / "model_int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle (weights)
    changed.write_bytes(bytes(data))
    copied = tmp_path / "json"
    copied.mkdir()
    capsys.readouterr()
    code = main(["verify", str(changed), "--expected", str(bundle / "reference.npz"), "--json",
                 str(copied / "verify-device.json")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "is not the file reference.npz lists" in err
    _refused(pi_run, copied, capsys, "modified")  # the failed verify is not merged either
    _board_json(bundle, copied, changed, extra=["--allow-modified"])  # ran anyway
    _refused(pi_run, copied, capsys, "ran a modified file")


def test_deploy_results_name_each_board_as_the_user_did(pi_run, tmp_path, capsys):
    """Three boards (here: one host, three names) give three distinct headings, each with
    the host and architecture the board reported; this x86 host under a Raspberry Pi
    profile is flagged."""
    import platform
    import socket

    bundle = pi_run / "bundle"
    _board_json(bundle, tmp_path / "json", bundle / "model_int8.tflite")
    boards = ["pi-kitchen", "pi-garage", "pi-lab"]
    for board in boards:
        assert main(["deploy", str(pi_run), "--results", str(tmp_path / "json"),
                     "--host-name", board]) == 0
    report = (pi_run / "report.md").read_text()
    host = f"host {socket.gethostname()} ({platform.machine()})"
    headings = [line for line in report.splitlines() if line.startswith("## Measured on ")]
    for board in boards:
        assert f"## Measured on {board}: {host}" in headings
    assert len(set(headings)) == len(headings) >= 3
    if platform.machine() != "aarch64":
        assert report.count(f"**Warning:** the board reported a {platform.machine()} CPU, "
                            "but profile raspberry-pi-5 describes an aarch64 device") >= 3


def test_deploy_results_of_a_jetson_run_without_an_engine_say_so(jetson_run, tmp_path):
    """Made by hand where no trtexec ran: the ONNX verified and timed, not an engine."""
    bundle = jetson_run / "bundle"
    _board_json(bundle, tmp_path / "json", bundle / "model_int8.onnx")
    assert main(["deploy", str(jetson_run), "--results", str(tmp_path / "json"),
                 "--host-name", "orin-lab"]) == 0
    section = (jetson_run / "report.md").read_text().split("## Measured on orin-lab")[1]
    assert "TensorRT engine not built: these figures are of the ONNX file" in section


def test_deploy_refuses_what_is_not_a_run_or_a_changed_bundle(pi_run, tmp_path, capsys):
    assert main(["deploy", str(tmp_path), "--results", str(tmp_path), "--host-name", "x"]) == 2
    assert "is not an edgekit compress run" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(pi_run, copy)
    with open(copy / "bundle" / "model_int8.tflite", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\0" * 8)
    assert main(["deploy", str(copy), "--remote", "u@h"]) == 2
    err = capsys.readouterr().err
    assert "changed since compress" in err and err.count("\n") == 1
    assert main(["deploy", str(copy)]) == 2  # no board named


@pytest.mark.ssh
def test_deploy_inventory_reports_each_board_and_a_dead_one(pi_run, sshd, board_python,
                                                            tmp_path, capsys):
    from tests.sshd import free_port

    inventory = tmp_path / "boards.toml"
    good = f"{sshd['user']}@127.0.0.1:{sshd['port']}"
    inventory.write_text(
        f'[[host]]\nname = "pi-a"\ntarget = "{good}"\nprofile = "raspberry-pi-5"\n'
        f'remote_python = "{board_python}"\n'
        f'[[host]]\nname = "dead"\ntarget = "{sshd["user"]}@127.0.0.1:{free_port()}"\n')
    code = main(["deploy", str(pi_run), "--inventory", str(inventory), "--runs", "5",
                 "--power", "none", "--known-hosts", str(sshd["known_hosts"]),
                 "--identity", str(sshd["identity"]), "--ssh-config", "/dev/null",
                 "--connect-timeout", "3", "--remote-dir", str(tmp_path / "board")])
    out = capsys.readouterr().out
    assert code == 1  # one board could not be reached
    runs = json.loads((pi_run / "manifest.json").read_text())["device_runs"]
    assert runs["pi-a"]["verify"]["passed"] and "error" in runs["dead"]
    assert "pi-a: verify PASSED" in out and "dead: FAILED" in out
