"""A pytest plugin that fails the run on any skip not caused by missing hardware.

A test that skips itself because nncf, LiteRT or torch-pruning did not install is a part that
went untested, and a green run must not hide that. Every skip is listed with its reason at
the end of the run; one outside the allow-list below turns an otherwise passing run into a
failure (exit status 1). Loaded from tests/conftest.py. With pytest-xdist the workers'
reports reach the controller's hooks (collection skips too), and only the controller decides.
"""

from __future__ import annotations

import re

import pytest

# Machines the suite runs on cannot have these; each pattern is matched against the reason.
HARDWARE_REASONS: dict[str, re.Pattern[str]] = {
    "TensorRT": re.compile(r"\btensorrt\b|\btrtexec\b", re.IGNORECASE),
    "CUDA GPU": re.compile(r"\bcuda\b|\bgpu\b", re.IGNORECASE),
    "Jetson sysfs": re.compile(r"\bjetson\b|\bsysfs\b", re.IGNORECASE),
}
# An importorskip is allowed only for these modules, whatever its error message says (a
# package failing to import can mention CUDA in its traceback and is still a broken install).
HARDWARE_MODULES = frozenset({"tensorrt", "pycuda", "cuda"})
_IMPORT_SKIP = re.compile(r"could not import '([\w.]+)'")


def hardware_reason(reason: str) -> str | None:
    """The allow-list entry that covers a skip reason, or None when it is not covered."""
    imported = _IMPORT_SKIP.search(reason)
    if imported:
        module = imported.group(1).split(".")[0]
        return module if module in HARDWARE_MODULES else None
    return next((name for name, pattern in HARDWARE_REASONS.items() if pattern.search(reason)),
                None)


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class SkipPolicy:
    """Collects every skip (collection and test phases) and judges them at the end."""

    def __init__(self, require_hardware: bool) -> None:
        self.require_hardware = require_hardware
        self.skips: list[tuple[str, str]] = []

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append((report.nodeid, _reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def refused(self) -> list[tuple[str, str]]:
        return [(node, why) for node, why in self.skips
                if self.require_hardware or hardware_reason(why) is None]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.refused() and exitstatus in (pytest.ExitCode.OK,
                                             pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skips:
            return
        terminalreporter.section("skips (tests/skip_policy.py)")
        for node, why in self.skips:
            allowed = None if self.require_hardware else hardware_reason(why)
            verdict = f"allowed, no {allowed} here" if allowed else "NOT ALLOWED"
            terminalreporter.line(f"{verdict}: {node or '(collection)'}: {why}")
        refused = self.refused()
        if refused:
            terminalreporter.line(
                f"{len(refused)} skip(s) NOT ALLOWED: install what they name (make setup, "
                "scripts/setup-system.sh); this run fails", red=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-hardware", action="store_true",
                     help="fail on every skip, hardware ones too (on a TensorRT/CUDA machine)")


def pytest_configure(config: pytest.Config) -> None:
    # xdist workers forward their reports to the controller, which alone judges the run
    if not _is_worker(config):
        policy = SkipPolicy(config.getoption("--require-hardware"))
        config.pluginmanager.register(policy, "edgekit-skip-policy")
