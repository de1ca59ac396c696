"""nncf's C++ extension is cached per Python environment, and its first build is announced."""

from __future__ import annotations

import os
import sys

import pytest

from edgekit.quantization.qdq.extension_cache import environment_cache_dir, use_environment_cache


def test_each_environment_gets_its_own_folder(monkeypatch):
    here = environment_cache_dir()
    monkeypatch.setattr(sys, "prefix", "/opt/other-env")
    other = environment_cache_dir()
    assert other != here and other.parent == here.parent
    assert other.name.startswith("env-other-env-")


def test_a_users_folder_wins_and_the_first_build_is_announced(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert use_environment_cache() == tmp_path
    assert "nncf compiles its C++ extension for this environment once" in capsys.readouterr().err
    built = tmp_path / "nncf" / "quantized_functions_cpu" / "2.13.0+cpu"
    built.mkdir(parents=True)
    (built / "quantized_functions_cpu.so").write_bytes(b"")  # what a finished build leaves
    use_environment_cache()
    assert capsys.readouterr().err == ""


def test_qat_builds_the_extension_in_this_environments_folder(quantized_net):
    """The session's real nncf QAT ran through edgekit: its build is where edgekit put it."""
    pytest.importorskip("nncf")
    folder = os.environ.get("TORCH_EXTENSIONS_DIR")
    assert folder is not None  # set by edgekit before nncf's first build (or by the user)
    from pathlib import Path

    assert any(Path(folder).glob("nncf/*/*/*.so")), folder
