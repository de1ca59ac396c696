"""Power from ``tegrastats`` output lines (every Jetson generation, no root needed).

Real line formats (rails are ``instant/average``)::

    Nano (JetPack 4):  ... thermal@38C POM_5V_IN 2132/2132 POM_5V_GPU 78/78 POM_5V_CPU 275/275
    Xavier NX (JP5):   ... VDD_IN 4500mW/4500mW VDD_CPU_GPU_CV 799mW/799mW VDD_SOC 1598mW/1598mW
    Orin (JP5/6):      ... VDD_IN 5263mW/5263mW VDD_CPU_GPU_CV 717mW/717mW VDD_SOC 1794mW/1794mW
    AGX Orin (JP5/6):  ... VDD_GPU_SOC 3176mW/3176mW VDD_CPU_CV 794mW/794mW VIN_SYS_5V0 ...

The instantaneous figure is used (the average runs over the whole tegrastats lifetime).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from edgekit.devices.power.base import PowerSampler, PowerUnavailable
from edgekit.devices.power.jetson import IGNORED_RAILS, INPUT_RAILS
from edgekit.devices.tools import ToolDirs, find_tool, where

# Only POM_/VDD_/VIN_ names, so "RAM 2639/7620MB" or "SWAP 0/3810MB" never match.
_RAIL = re.compile(r"\b((?:POM|VDD|VIN)_[A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?")


def parse_rails(line: str) -> dict[str, float]:
    """Instantaneous power of every rail in one tegrastats line, in milliwatts."""
    return {name: float(now) for name, now, _avg in _RAIL.findall(line)}


def total_watts(rails: dict[str, float]) -> float:
    """Board power: the input rail when present, else the sum of the module's rails."""
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name] / 1e3
    used = [v for k, v in rails.items() if not k.upper().startswith(IGNORED_RAILS)]
    if not used:
        raise PowerUnavailable("tegrastats line has no power rails")
    return sum(used) / 1e3


class TegrastatsSampler(PowerSampler):
    """Runs ``tegrastats --interval MS`` and timestamps each line as it arrives.

    The program is looked up in ``tool_dirs`` (None: PATH; see ``edgekit.devices.tools``).
    """

    name = "tegrastats"
    streaming = True
    OPTIONS: ClassVar[tuple[str, ...]] = ("command", "interval_ms", "tool_dirs")

    def __init__(self, command: Sequence[str] | None = None, interval_ms: int = 20, *,
                 tool_dirs: ToolDirs = None) -> None:
        self.command = list(command) if command else ["tegrastats", "--interval", str(interval_ms)]
        self.tool_dirs = tool_dirs
        self._proc: subprocess.Popen[str] | None = None
        self._samples: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def open(self) -> None:
        exe = find_tool(self.command[0], self.tool_dirs)
        if exe is None:
            raise PowerUnavailable(f"{self.command[0]!r} not found {where(self.tool_dirs)}")
        self.command[0] = exe  # the record names the program that actually ran
        try:
            self._proc = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            raise PowerUnavailable(f"cannot start {self.command[0]}: {exc}") from None
        self._thread = threading.Thread(target=self._read, name="edgekit-tegrastats", daemon=True)
        self._thread.start()
        if not self._first.wait(timeout=5):
            self.close()
            raise PowerUnavailable(f"no power line from {self.command[0]} within 5 s "
                                   f"{self.last_error}".strip())

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            stamp = time.perf_counter_ns()
            try:
                watts = total_watts(parse_rails(line))
            except PowerUnavailable as exc:
                self.last_error = f"({exc})"
                continue
            with self._lock:
                self._samples.append((stamp, watts))
            self._first.set()

    def read_watts(self) -> float:
        with self._lock:
            if not self._samples:
                raise PowerUnavailable("tegrastats produced no power line yet")
            return self._samples[-1][1]

    def drain(self) -> list[tuple[int, float]]:
        with self._lock:
            samples, self._samples = self._samples, []
        return samples

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def describe(self) -> dict[str, Any]:
        return {"sampler": self.name, "command": self.command}
