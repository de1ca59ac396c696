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
    assert f"## Measured on {record['hostname']}" in report
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
