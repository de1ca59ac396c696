"""tests/skip_policy.py: a skip for a missing package fails the run, one for hardware does not.

Each case runs a real pytest in a subprocess on a tiny test file, with and without xdist.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.skip_policy import hardware_reason

ROOT = Path(__file__).resolve().parents[2]

MISSING_PACKAGE = """
import pytest
pytest.importorskip("edgekit_no_such_package")

def test_never_runs():
    assert False
"""
HARDWARE = """
import pytest

@pytest.mark.skipif(True, reason="needs a CUDA GPU")
def test_gpu():
    assert False

def test_engine():
    pytest.importorskip("tensorrt")

def test_runs():
    assert 1 + 1 == 2
"""
MISSING_AT_RUN_TIME = """
import pytest

def test_uses_an_optional_package():
    pytest.importorskip("edgekit_no_such_package")
"""


def _pytest(tmp_path: Path, files: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    for name, body in files.items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.skip_policy", "-p", "no:cacheprovider",
         "-q", "--rootdir", str(tmp_path), *args, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_missing_package_fails_the_run(tmp_path, xdist):
    run = _pytest(tmp_path, {"test_missing.py": MISSING_PACKAGE, "test_hw.py": HARDWARE},
                  *xdist)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "NOT ALLOWED" in run.stdout and "edgekit_no_such_package" in run.stdout
    assert "allowed, no CUDA GPU here" in run.stdout


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_run_time_skip_for_a_package_fails_the_run(tmp_path, xdist):
    run = _pytest(tmp_path, {"test_late.py": MISSING_AT_RUN_TIME, "test_hw.py": HARDWARE},
                  *xdist)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "NOT ALLOWED: test_late.py::test_uses_an_optional_package" in run.stdout


def test_hardware_skips_alone_pass_and_are_listed(tmp_path):
    run = _pytest(tmp_path, {"test_hw.py": HARDWARE}, "-n", "2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "allowed, no CUDA GPU here: test_hw.py::test_gpu" in run.stdout
    assert "allowed, no tensorrt here: test_hw.py::test_engine" in run.stdout
    assert "NOT ALLOWED" not in run.stdout


def test_on_a_device_machine_hardware_skips_fail_too(tmp_path):
    run = _pytest(tmp_path, {"test_hw.py": HARDWARE}, "--require-hardware")
    assert run.returncode == 1 and "NOT ALLOWED: test_hw.py::test_gpu" in run.stdout


def test_a_failure_keeps_its_own_exit_status(tmp_path):
    run = _pytest(tmp_path, {"test_x.py": "def test_x():\n    assert False\n",
                             "test_missing.py": MISSING_PACKAGE})
    assert run.returncode == 1 and "1 failed" in run.stdout


def test_which_reasons_the_allow_list_covers():
    # today's hardware skips in this suite (grep for skip/importorskip under tests/)
    assert hardware_reason("tensorrt is not installable here (NVIDIA index only)") == "TensorRT"
    assert hardware_reason("a real trtexec is installed on this host") == "TensorRT"
    assert hardware_reason("needs a CUDA GPU") == "CUDA GPU"
    assert hardware_reason("could not import 'tensorrt': No module named 'tensorrt'") \
        == "tensorrt"
    # a package that fails to import is a broken install even when its error names CUDA
    assert hardware_reason("could not import 'nncf': libcudart.so: CUDA missing") is None
    assert hardware_reason("could not import 'torch_pruning': No module named 'x'") is None
    assert hardware_reason("OpenSSH server/client not installed (run "
                           "scripts/setup-system.sh)") is None
