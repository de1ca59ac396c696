"""Read-only probes of the machine state that makes a latency figure reproducible.

Every probe tolerates absence: a file or tool that is not there gives ``None``, never an
error, and nothing is ever written (no governor or clock changes). The sysfs and procfs
roots and the directories searched for tools (``tool_dirs``, see ``devices.tools``) are
parameters, so tests can point them at trees built in the layout of a real board.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

from edgekit.devices.tools import ToolDirs, find_tool


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip().rstrip("\x00")
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def cpu_model(proc_root: Path = Path("/proc")) -> str | None:
    """x86 "model name", else the ARM board/"Hardware"/"Model" line of /proc/cpuinfo."""
    text = _read(proc_root / "cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    for key in ("model name", "Model", "Hardware", "CPU part"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or None


def cpu_frequencies(sys_root: Path = Path("/sys")) -> list[dict[str, Any]]:
    """Governor and current/min/max frequency (kHz) of every CPU with cpufreq."""
    cpus = []
    base = sys_root / "devices/system/cpu"
    for folder in sorted(base.glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        freq = folder / "cpufreq"
        if not freq.is_dir():
            continue
        cpus.append({
            "cpu": int(folder.name[3:]),
            "governor": _read(freq / "scaling_governor"),
            "cur_khz": _int(_read(freq / "scaling_cur_freq")),
            "min_khz": _int(_read(freq / "scaling_min_freq")),
            "max_khz": _int(_read(freq / "scaling_max_freq")),
            "hw_max_khz": _int(_read(freq / "cpuinfo_max_freq")),
        })
    return cpus


def temperatures(sys_root: Path = Path("/sys")) -> dict[str, float]:
    """Thermal zones in degrees Celsius (sysfs reports millidegrees)."""
    temps: dict[str, float] = {}
    for zone in sorted((sys_root / "class/thermal").glob("thermal_zone*")):
        kind = _read(zone / "type") or zone.name
        milli = _int(_read(zone / "temp"))
        if milli is not None and -40_000 < milli < 150_000:  # drop offline sensors (-256 C)
            temps[f"{kind}" if kind not in temps else f"{kind}:{zone.name}"] = milli / 1e3
    return temps


def throttle_counts(sys_root: Path = Path("/sys")) -> dict[str, int]:
    """x86 thermal throttle counters per CPU (package + core); empty where absent."""
    counts: dict[str, int] = {}
    pattern = "cpu[0-9]*/thermal_throttle/*_count"
    for path in sorted((sys_root / "devices/system/cpu").glob(pattern)):
        value = _int(_read(path))
        if value is not None:
            counts[f"{path.parent.parent.name}/{path.name}"] = value
    return counts


def _run(cmd: list[str], tool_dirs: ToolDirs, timeout: float = 5.0) -> str | None:
    exe = find_tool(cmd[0], tool_dirs)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def parse_nvpmodel(text: str | None) -> tuple[str | None, int | None]:
    """(mode name, mode id) from ``nvpmodel -q`` output, e.g. "NV Power Mode: MAXN" then "0"."""
    name = mode_id = None
    for line in (text or "").splitlines():
        found = re.search(r"NV Power Mode:\s*(\S.*)", line)
        if found:
            name = found.group(1).strip()
        elif name is not None and mode_id is None and line.strip().isdigit():
            mode_id = int(line.strip())
    return name, mode_id


def jetson_state(sys_root: Path = Path("/sys"), proc_root: Path = Path("/proc"), *,
                 tool_dirs: ToolDirs = None) -> dict[str, Any]:
    """nvpmodel mode (``nvpmodel -q``, read-only) and whether clocks look pinned.

    ``jetson_clocks --show`` needs root, so "clocks pinned" is inferred read-only: every
    CPU's minimum frequency equals its hardware maximum, which is what jetson_clocks sets.
    """
    model = _read(proc_root / "device-tree/model")
    if not model or ("jetson" not in model.lower() and "nvidia" not in model.lower()):
        return {}
    cpus = cpu_frequencies(sys_root)
    pinned = bool(cpus) and all(c["min_khz"] and c["min_khz"] == c["hw_max_khz"] for c in cpus)
    mode, mode_id = parse_nvpmodel(_run(["nvpmodel", "-q"], tool_dirs))
    return {"board": model, "nvpmodel": mode, "nvpmodel_id": mode_id,
            "jetson_clocks_likely_on": pinned}


def raspberry_pi_throttled(*, tool_dirs: ToolDirs = None) -> str | None:
    """``vcgencmd get_throttled`` bit field (Raspberry Pi firmware), when the tool exists."""
    out = _run(["vcgencmd", "get_throttled"], tool_dirs)
    return out.split("=", 1)[-1] if out else None


def snapshot(sys_root: Path = Path("/sys"), proc_root: Path = Path("/proc"), *,
             tool_dirs: ToolDirs = None) -> dict[str, Any]:
    """The whole reproducibility record; ``temperatures_c`` is re-read after the run.

    ``tool_dirs``: where nvpmodel and vcgencmd are looked for (None: PATH; empty: nowhere).
    """
    sys_root, proc_root = Path(sys_root), Path(proc_root)
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(proc_root),
        "cpu_count": os.cpu_count(),
        "cpus": cpu_frequencies(sys_root),
        "board": _read(proc_root / "device-tree/model"),
        "jetson": jetson_state(sys_root, proc_root, tool_dirs=tool_dirs),
        "temperatures_c": temperatures(sys_root),
        "throttle_counts": throttle_counts(sys_root),
        "rpi_throttled": raspberry_pi_throttled(tool_dirs=tool_dirs),
        "nvidia_driver": _read(proc_root / "driver/nvidia/version"),
    }
