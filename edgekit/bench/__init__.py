"""The on-device benchmark harness: runners, timing, power, results, remote runs, reports."""

from edgekit.bench.api import BenchConfig, benchmark, benchmark_runner
from edgekit.bench.results import SCHEMA_VERSION, load_results, validate_result
from edgekit.bench.timing import TimingConfig

__all__ = [
    "SCHEMA_VERSION",
    "BenchConfig",
    "TimingConfig",
    "benchmark",
    "benchmark_runner",
    "load_results",
    "validate_result",
]
