"""Channel groups torch-pruning maps wrongly, thinned by the module that owns them.

A module may own an inner channel group: channels several of its layers share in a way
DepGraph's index mapping gets wrong (ESPNetv2's EESP unit: a grouped 1x1 projection read by
depthwise branches summed hierarchically, concatenated and read by a grouped 1x1
expansion). Such a module offers ``inner_layers()``, ``inner_importance()`` (one score per
channel), ``inner_groups`` (its channels fall in that many equal groups, each losing as
many) and ``keep_inner(index)``. torch-pruning leaves those layers whole
(``graph.exclusions`` finds them); ``thin_inner`` removes the lowest-scored channels of
every such module down to a share of its width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def inner_units(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in model.modules() if callable(getattr(m, "keep_inner", None))]


def owned_layers(model: torch.nn.Module) -> set[str]:
    """Names of the layers whose output channels an inner group holds."""
    names = {m: n for n, m in model.named_modules()}
    return {names[layer] for unit in inner_units(model) for layer in unit.inner_layers()}


def inner_widths(model: torch.nn.Module) -> dict[torch.nn.Module, int]:
    return {unit: len(unit.inner_importance()) for unit in inner_units(model)}


def thin_inner(model: torch.nn.Module, share: float, round_to: int,
               skip: Iterable[str] = (), of: dict[torch.nn.Module, int] | None = None) -> int:
    """Keep about ``share`` of every unit's inner width (of the widths in ``of``, e.g. at
    the round's start, else of the current ones), a multiple of ``round_to`` and of its
    groups (never below one such multiple); units owning a layer in ``skip`` stay whole.
    Returns how many units were thinned."""
    import torch

    names = {m: n for n, m in model.named_modules()}
    skipped = set(skip)
    thinned = 0
    for unit in inner_units(model):
        if any(names[layer] in skipped for layer in unit.inner_layers()):
            continue
        scores = unit.inner_importance()
        width, groups = len(scores), int(unit.inner_groups)
        step = math.lcm(groups, max(1, round_to))
        reference = (of or {}).get(unit, width)
        keep = max(step, round(reference * share / step) * step)
        if keep >= width:
            continue
        per_group = width // groups
        best = scores.reshape(groups, per_group).topk(keep // groups, dim=1).indices
        offsets = torch.arange(groups).unsqueeze(1) * per_group
        unit.keep_inner((best.sort(dim=1).values + offsets).flatten())
        thinned += 1
    return thinned
