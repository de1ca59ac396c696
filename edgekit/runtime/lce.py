"""Larq Compute Engine's interpreter (runtime ``lce``), run in its own Python environment.

The ``larq-compute-engine`` package imports TensorFlow when imported (its ``__init__``
loads the converter), which is far heavier than edgekit's runtime extras, so it lives in a
separate virtual environment (``make lce-env``) and runs as a subprocess
(``lce_worker.py``): ``$EDGEKIT_LCE_PYTHON``, else ``.venv-lce/bin/python`` of the checkout.
On x86 LCE runs its reference binary kernels: the outputs are right, the timing is no
measure of speed (LCE's optimized kernels are for 32/64-bit ARM).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import BenchError, MissingBackendError
from edgekit.runtime.base import Runner, TensorSpec

LCE_PYTHON_ENV = "EDGEKIT_LCE_PYTHON"
WORKER = Path(__file__).with_name("lce_worker.py")


def lce_python() -> Path:
    """The Python that has larq-compute-engine (raises MissingBackendError if none)."""
    named = os.environ.get(LCE_PYTHON_ENV)
    path = Path(named) if named else Path(__file__).resolve().parents[2] / ".venv-lce/bin/python"
    if not path.is_file():
        raise MissingBackendError(
            f"Larq Compute Engine's interpreter needs its own environment: {path} does not "
            f"exist (in an edgekit checkout `make lce-env` builds it; elsewhere, a board "
            f"included, set {LCE_PYTHON_ENV} to a Python that imports larq_compute_engine)")
    return path


class _Stream:
    """A pipe numpy does not take for a file (its .npy reader/writer would call
    fromfile/tofile, which need a file position)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def read(self, n: int) -> bytes:
        return self.raw.read(n)

    def write(self, data: bytes) -> None:
        self.raw.write(data)


class LceRunner(Runner):
    name = "lce"
    suffixes = ()  # an LCE file is a .tflite: the runtime is named, never guessed

    def load(self) -> None:
        # LCE's optimized bconv kernels are for ARM; elsewhere its reference ones, checked here
        self._kernels = "optimized" if platform.machine().lower().startswith(("aarch64", "arm")) \
            else "reference"
        self._proc = subprocess.Popen([str(lce_python()), str(WORKER), str(self.path),
                                       self._kernels],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        try:
            shape = self._read()
            self._version = bytes(self._read()).decode()
        except BenchError:
            raise BenchError(f"LCE cannot load {self.path.name}: {self._stderr()}") from None
        self._shape = tuple(int(d) for d in shape)
        self._outputs: list[np.ndarray] = []

    def _read(self) -> np.ndarray:
        try:
            return np.lib.format.read_array(_Stream(self._proc.stdout), allow_pickle=False)
        except (EOFError, ValueError, OSError):
            raise BenchError("the LCE worker stopped") from None

    def _stderr(self) -> str:
        """The worker's last stderr line (its exception), once it has stopped."""
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        lines = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit {self._proc.wait()}"

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec("input", (None, *self._shape[1:]), np.dtype(np.float32))]

    def set_inputs(self, arrays: list[np.ndarray]) -> None:
        self._x = np.ascontiguousarray(arrays[0], dtype=np.float32)

    def run(self) -> None:
        try:
            np.lib.format.write_array(_Stream(self._proc.stdin), self._x, allow_pickle=False)
            self._proc.stdin.flush()
        except OSError:
            raise BenchError(f"LCE failed on {self.path.name}: {self._stderr()}") from None
        try:
            self._outputs = [self._read()]
        except BenchError:
            raise BenchError(f"LCE failed on {self.path.name}: {self._stderr()}") from None

    def outputs(self) -> list[np.ndarray]:
        return self._outputs

    def info(self) -> dict[str, Any]:
        return {**super().info(), "version": getattr(self, "_version", ""),
                "kernels": f"LCE {getattr(self, '_kernels', 'reference')} bconv"}

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
