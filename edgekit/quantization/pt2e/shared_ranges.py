"""One range update per forward for a quantizer that several tensors share (TFLite QAT).

A concat runs in int8 with one scale for its inputs and its output, so PT2E gives them one
shared fake-quant, called at each of those places in the graph. Its moving-average
observer moves 1% toward each tensor it is called with. With tensors of different ranges
it settles between them, and the widest is clipped (two branches whose ranges were 10x
apart ended near half of the wider one's; docs/results.md, "One-off checks"), and the
deployed file keeps the learned range. Here the observer gathers the min and max of all
its call sites and moves once per forward, toward their union, as it would for a single
tensor.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.fx import GraphModule
from torchao.quantization.pt2e.fake_quantize import FakeQuantize
from torchao.quantization.pt2e.observer import MovingAverageMinMaxObserver


class SharedMovingAverageMinMaxObserver(MovingAverageMinMaxObserver):
    """A moving-average min/max observer called ``sites`` times per forward.

    It moves the range once per forward, on the last call, toward the min and max of all
    ``sites`` tensors. The fake-quant calls before it use the range of the previous
    forward. Installed on existing observers by ``share_ranges_per_forward``, which sets
    ``sites``. The buffers are the same, so ``convert_pt2e`` reads the range as usual.
    """

    sites = 1
    _seen = 0
    _low: torch.Tensor | None = None
    _high: torch.Tensor | None = None

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        if x_orig.numel() == 0:
            return x_orig
        low, high = torch.aminmax(x_orig.detach().to(self.min_val.dtype))
        if self._seen:
            low, high = torch.minimum(low, self._low), torch.maximum(high, self._high)
        self._seen += 1
        if self._seen < self.sites:
            self._low, self._high = low, high
            return x_orig
        self._seen, self._low, self._high = 0, None, None
        super().forward(torch.stack([low, high]))
        return x_orig


def share_ranges_per_forward(prepared: GraphModule) -> int:
    """Make each fake-quant that the graph calls at several sites observe their union.

    Returns how many observers were changed. Run it after the fused fake-quants were
    replaced by plain ``FakeQuantize`` modules (the fused kernel never calls its observer).
    """
    sites: Counter[FakeQuantize] = Counter()
    for node in prepared.graph.nodes:
        if node.op == "call_module":
            module = prepared.get_submodule(node.target)
            if type(module) is FakeQuantize:
                sites[module] += 1
    changed = 0
    for fake_quant, count in sites.items():
        observer = fake_quant.activation_post_process
        if count > 1 and type(observer) is MovingAverageMinMaxObserver:
            observer.__class__ = SharedMovingAverageMinMaxObserver
            observer.sites = count
            changed += 1
    return changed
