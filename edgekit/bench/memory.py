"""Peak resident memory of one benchmark (load + runs), not of the whole process.

Linux keeps a high-water mark of resident memory (``VmHWM`` in /proc/self/status). Writing
"5" to /proc/self/clear_refs (kernel >= 4.0) resets it to the current RSS and touches nothing
else, so resetting it just before the model is loaded makes ``VmHWM`` after the last run the
peak of the benchmark alone: earlier work in the same process (training inside
``edgekit compress``) no longer counts. The reset is process-wide: ``getrusage``'s
``ru_maxrss`` read later in this process starts from it too.

Where the reset is refused or there is no /proc, the record says so in ``peak_rss_method``,
leaves the benchmark figures empty and gives the process's lifetime peak under a field
named for what it is.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

_MB = 2**20
WINDOW_METHOD = "VmHWM reset before load (/proc/self/clear_refs), read after the last run"


def _status_kib(status: Path, key: str) -> int | None:
    try:
        found = re.search(rf"^{key}:\s+(\d+) kB", status.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) if found else None


def _lifetime_peak_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / _MB  # macOS: bytes, Linux: KiB


class MemoryWindow:
    """``start()`` before the model is loaded; ``result()`` after the last run.

    The paths are this process's procfs files; they are parameters so a test can point
    them where the reset is refused.
    """

    def __init__(self, status: Path = Path("/proc/self/status"),
                 clear_refs: Path = Path("/proc/self/clear_refs")) -> None:
        self.status = Path(status)
        self.clear_refs = Path(clear_refs)
        self.before_kib: int | None = None
        self.refused = ""

    def start(self) -> None:
        try:
            self.clear_refs.write_text("5")  # "5": reset the peak only, no page-bit clearing
        except OSError as exc:
            self.refused = f"cannot reset VmHWM: {exc.strerror or exc}"
        self.before_kib = _status_kib(self.status, "VmRSS")

    def result(self) -> dict[str, Any]:
        """The memory fields of a result record (all sizes in MiB)."""
        before = self.before_kib / 1024 if self.before_kib is not None else None
        peak_kib = _status_kib(self.status, "VmHWM")
        if not self.refused and before is not None and peak_kib is not None:
            peak = peak_kib / 1024
            return {"rss_before_load_mb": before, "peak_rss_during_bench_mb": peak,
                    "peak_rss_increase_mb": peak - before, "process_lifetime_peak_rss_mb": None,
                    "peak_rss_method": WINDOW_METHOD}
        if peak_kib is not None:  # VmHWM not reset: the peak since the process started
            lifetime, how = peak_kib / 1024, "VmHWM"
        else:
            lifetime, how = _lifetime_peak_mb(), "getrusage ru_maxrss"
        reason = self.refused or "no /proc/self/status"
        return {"rss_before_load_mb": before, "peak_rss_during_bench_mb": None,
                "peak_rss_increase_mb": None, "process_lifetime_peak_rss_mb": lifetime,
                "peak_rss_method": f"benchmark peak unknown ({reason}); lifetime peak from {how}"}
