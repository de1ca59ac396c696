"""Runtime runners behind one protocol (see ``base.Runner``), chosen by name or file suffix."""

from edgekit.bench.runners.base import RUNNERS, Runner, TensorSpec, open_runner, runner_class

__all__ = ["RUNNERS", "Runner", "TensorSpec", "open_runner", "runner_class"]
