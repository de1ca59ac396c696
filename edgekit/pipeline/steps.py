"""The steps `edgekit compress` reports progress by, in order: the "[2/6]" labels come from
this one list, so adding a step renumbers every line."""

from __future__ import annotations

STEPS = ("data", "model", "quantize", "export", "verify", "benchmark")


def step(name: str) -> str:
    """The progress label of step ``name``, e.g. ``[3/6]`` for ``quantize``."""
    return f"[{STEPS.index(name) + 1}/{len(STEPS)}]"
