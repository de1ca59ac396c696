"""constraints.txt (the tested versions, `make setup` installs with it) agrees with the
ranges pyproject declares, so a bound moved in one is not forgotten in the other."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

requirements = pytest.importorskip("packaging.requirements")

ROOT = Path(__file__).resolve().parents[2]


def _pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_every_pinned_version_is_inside_pyprojects_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    pins = _pinned()
    checked = 0
    for text in declared:
        req = requirements.Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name == "edgekit" or (req.marker and not req.marker.evaluate()):
            continue
        assert name in pins, f"{name} is a dependency but constraints.txt does not pin it"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req.specifier}"
        checked += 1
    assert checked >= 20  # numpy, torch, nncf, onnxruntime, litert ... all of them
    assert "edgekit" not in pins
