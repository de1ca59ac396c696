"""An external power meter given as a command that prints the current power in watts."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Any, ClassVar

from edgekit.devices.power.base import PowerSampler, PowerUnavailable


class ExternalMeterSampler(PowerSampler):
    """Runs ``command`` once per sample; its last non-empty output line must be watts.

    The command is split with shlex and run without a shell. Each sample costs a process
    start, so the rate is modest (the result reports it).
    """

    name = "external"
    OPTIONS: ClassVar[tuple[str, ...]] = ("command",)

    def __init__(self, command: str | Sequence[str] | None = None, timeout_s: float = 5.0) -> None:
        if isinstance(command, str):
            command = shlex.split(command)
        self.command = list(command or [])
        self.timeout_s = timeout_s

    def open(self) -> None:
        if not self.command:
            raise PowerUnavailable("no meter command given (--power-command)")

    def read_watts(self) -> float:
        try:
            out = subprocess.run(
                self.command, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PowerUnavailable(f"meter command failed: {exc}") from None
        lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
        if out.returncode != 0 or not lines:
            raise PowerUnavailable(
                f"meter command exited {out.returncode} with no reading: {out.stderr.strip()[:200]}"
            )
        try:
            watts = float(lines[-1].strip().split()[0])
        except ValueError:
            raise PowerUnavailable(f"meter printed {lines[-1][:60]!r}, not watts") from None
        if not 0 <= watts < 1e5:
            raise PowerUnavailable(f"meter reading {watts} W is out of range")
        return watts

    def describe(self) -> dict[str, Any]:
        return {"sampler": self.name, "command": self.command}
