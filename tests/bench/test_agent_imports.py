"""The device-side path (`edgekit bench MODEL`) runs with numpy + the runtime only.

The agent runs in a fresh interpreter in which importing torch, nncf, onnx, litert_torch or
tensorrt raises ImportError (a meta-path blocker), so any import of them on the path fails
the run; afterwards sys.modules is checked as well. This stands in for a board's venv with
only numpy and the runtime installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BLOCKED = ["torch", "nncf", "onnx", "litert_torch", "tensorrt", "matplotlib", "jax"]

AGENT = """
import importlib.abc, json, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked on the device path: {{name}}")
        return None
sys.meta_path.insert(0, Blocker())
from edgekit.cli import main
code = main({argv!r})
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(BLOCKED))
print("LOADED=" + json.dumps(loaded), file=sys.stderr)
sys.exit(code)
"""


def _run_agent(argv: list[str]) -> subprocess.CompletedProcess[str]:
    code = AGENT.format(blocked=BLOCKED, argv=argv)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def _check(out: subprocess.CompletedProcess[str]) -> dict:
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = [ln for ln in out.stderr.splitlines() if ln.startswith("LOADED=")]
    assert loaded == ["LOADED=[]"]
    return json.loads(out.stdout)


def test_onnx_agent_imports_no_torch_nncf_or_onnx(onnx_model):
    result = _check(_run_agent(["bench", str(onnx_model), "--runs", "5", "--warmup", "1",
                                "--power", "none", "--json", "-"]))
    assert result["runtime"]["name"] == "onnxruntime"
    assert result["power"] == {"available": False, "reason": "disabled (--power none)"}


@pytest.mark.slow
def test_tflite_agent_imports_no_torch_nncf_or_onnx(tflite_model):
    result = _check(_run_agent(["bench", str(tflite_model), "--runs", "5", "--warmup", "1",
                                "--json", "-"]))
    assert result["runtime"]["name"] == "litert"
