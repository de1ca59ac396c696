"""Models whose forward returns several outputs: a tuple ``(logits, aux)`` or a dict
``{"logits": ..., "features": ...}``, as detection-style heads, auxiliary classifiers and
Hugging Face-style model outputs do.

Every exporter and runtime here deals in one output tensor, so compress picks the
classification output once, before any work, and wraps the module in ``OneOutput``: the
deployed files then have that one output. Which output is taken is plain data
(``output_key``), recorded in the manifest and said in the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from edgekit.core.errors import InvalidInputError

# dict keys taken as the classification output when the user names none, in this order
LOGITS_KEYS = ("logits", "out")


def choose_output(output: Any, key: str | None) -> str | int | None:
    """Which part of ``output`` (one forward's result) is the classification output: None
    for a single tensor, an index into a tuple/list, a key of a dict. ``key``: the user's
    choice (``output_key``; a tuple's index as a string); without it, a tuple's first
    element or a dict's ``logits``/``out``. Raises one line naming the outputs otherwise."""
    if isinstance(output, torch.Tensor):
        if key is not None:
            raise InvalidInputError(f"output_key {key!r}: the model returns one tensor, "
                                    "not a tuple or dict; leave output_key unset")
        return None
    if isinstance(output, Mapping):
        chosen: str | int = key if key is not None else next(
            (k for k in LOGITS_KEYS if k in output), "")
        if chosen not in output:
            keys = ", ".join(repr(k) for k in output)
            how = f"has no key {key!r}" if key is not None else \
                f"has none of {', '.join(map(repr, LOGITS_KEYS))}"
            raise InvalidInputError(f"the model returns a dict with keys {keys} and it {how}:"
                                    " name the classification output with output_key= "
                                    "(--output-key)")
    elif isinstance(output, (tuple, list)):
        chosen = _index(key, len(output)) if key is not None else 0
    else:
        raise InvalidInputError(f"the model returns a {type(output).__name__}: compress "
                                "needs a tensor, a tuple of tensors or a dict of tensors")
    if not isinstance(output[chosen], torch.Tensor):
        raise InvalidInputError(f"the model's output {chosen!r} is a "
                                f"{type(output[chosen]).__name__}, not a tensor: name the "
                                "classification output with output_key= (--output-key)")
    return chosen


def describe_output(output: Any, chosen: str | int) -> str:
    """A line for the report: what the model returns and which part is deployed."""
    kind = "dict" if isinstance(output, Mapping) else type(output).__name__
    parts = ", ".join(repr(k) for k in output) if kind == "dict" else f"{len(output)} elements"
    return (f"the model returns a {kind} ({parts}); compress deploys output {chosen!r} "
            "(output_key chooses another): the files have that one output")


def _index(key: str, length: int) -> int:
    if not key.lstrip("-").isdigit() or not -length <= int(key) < length:
        raise InvalidInputError(f"output_key {key!r}: the model returns a tuple of {length} "
                                f"outputs; name one by its index, 0 to {length - 1}")
    return int(key) % length


class OneOutput(torch.nn.Module):
    """``model`` with its forward's ``chosen`` output only (an index or a dict key)."""

    def __init__(self, model: torch.nn.Module, chosen: str | int) -> None:
        super().__init__()
        self.model = model
        self.chosen = chosen

    # one named input, as compress feeds it: torch.export's dynamic batch dimension is
    # given per named argument, which *args would not match
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[self.chosen]
