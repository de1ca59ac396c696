"""The runtime layer: one runner per runtime (onnxruntime, LiteRT, TensorRT, torch) behind one
protocol (``base.Runner``), chosen by name or file suffix (``registry``). numpy only at import:
``verify``, ``bench`` and the board agent all run deployed files through it."""

from edgekit.runtime.base import Runner, TensorSpec
from edgekit.runtime.registry import RUNNERS, open_runner, runner_class

__all__ = ["RUNNERS", "Runner", "TensorSpec", "open_runner", "runner_class"]
