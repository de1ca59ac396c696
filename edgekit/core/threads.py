"""How many CPU threads edgekit's own compute (training, QAT) should use.

``os.cpu_count()`` counts the machine, not what this process may use: a CPU affinity mask
(``taskset``, a cpuset) or a cgroup CPU quota (``docker --cpus``, Kubernetes limits) gives
it fewer. More torch threads than usable cores makes them wait on each other, and a
waiting OpenMP thread spins, burning the time the others need. The sysfs and procfs
roots are parameters so tests can use trees laid out like a real machine's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from edgekit.core.errors import InvalidInputError


def available_cpus(*, sys_root: Path = Path("/sys"), proc_root: Path = Path("/proc")) -> int:
    """The CPUs this process may really use: its affinity mask, capped by the cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(sys_root=sys_root, proc_root=proc_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))  # 1.5 CPUs of time: two threads still help
    return max(1, cpus)


def cgroup_cpu_quota(
    *, sys_root: Path = Path("/sys"), proc_root: Path = Path("/proc")
) -> float | None:
    """CPUs' worth of time the cgroup quota allows (1.5 for 150000/100000); None: no quota.

    Quotas nest, so the process's own cgroup and each ancestor count; the smallest wins.
    """
    root = sys_root / "fs/cgroup"
    limit: Callable[[Path], float | None]
    if (root / "cgroup.controllers").is_file():  # cgroup v2, unified hierarchy at the root
        mount, own, limit = root, _own_cgroup(proc_root, ""), _v2_quota
    else:  # cgroup v1: the cpu controller has its own hierarchy
        mount, own, limit = root / "cpu", _own_cgroup(proc_root, "cpu"), _v1_quota
    parts = [p for p in own.split("/") if p]
    # Without a cgroup namespace the path names folders the mount does not show: skipped.
    quotas = [limit(mount.joinpath(*parts[:n])) for n in range(len(parts), -1, -1)]
    return min((q for q in quotas if q is not None), default=None)


def training_threads(requested: int | None) -> int:
    """``requested`` (the user's --threads) if given, else every CPU available to us."""
    if requested is None:
        return available_cpus()
    if requested < 1:
        raise InvalidInputError(f"threads must be >= 1, got {requested}")
    return requested


def quiet_openmp_env() -> None:
    """Make waiting OpenMP threads sleep instead of spin, unless the user chose otherwise.

    By default a worker that finishes its share of a parallel region busy-waits for the
    next one (libgomp: ~300k spins, a few ms). On an idle machine that saves a wake-up; with
    other CPU-bound processes running it burns the cores they need and the OS preempts the
    thread holding up everyone else. PASSIVE makes waiting threads block on a futex.
    OpenMP reads this once, when the library loads, so this must run before torch (and
    its bundled OpenMP) is imported: the CLI calls it first thing.

    torch's pip wheels bundle GNU libgomp (``torch/lib/libgomp.so.1``). libgomp reads
    OMP_WAIT_POLICY: PASSIVE sets its spin count to 0 unless GOMP_SPINCOUNT is set, so
    GOMP_SPINCOUNT is left alone (a user's value still wins). LLVM/Intel libomp also read
    OMP_WAIT_POLICY (PASSIVE: KMP_BLOCKTIME 0), so one variable serves both.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroup(proc_root: Path, controller: str) -> str:
    """The process's cgroup path for ``controller`` ("" is v2's "0::/path" line); "/" if unknown."""
    for line in (_read(proc_root / "self/cgroup") or "").splitlines():
        fields = line.split(":", 2)  # "ID:CONTROLLERS:PATH"
        # "".split(",") == [""], so controller "" matches v2's empty controller list
        if len(fields) == 3 and controller in fields[1].split(","):
            return fields[2] or "/"
    return "/"


def _v2_quota(folder: Path) -> float | None:
    """cpu.max is "QUOTA PERIOD" or "max PERIOD" (no limit)."""
    quota, _, period = (_read(folder / "cpu.max") or "").partition(" ")
    return _ratio(quota, period)


def _v1_quota(folder: Path) -> float | None:
    """cpu.cfs_quota_us is -1 when there is no limit."""
    return _ratio(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))


def _ratio(quota: str | None, period: str | None) -> float | None:
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:  # "max", missing or malformed: no limit here
        return None
    return q / p if q > 0 and p > 0 else None
