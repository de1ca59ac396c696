"""The activation observers of a prepared PT2E graph, for a range setting
(``edgekit.quantization.ranges``).

litert's PTQ specs give every per-tensor activation a ``HistogramObserver`` (the "mse"
setting); the others replace it with an observer of the same dtype, scheme and levels, so
``convert_pt2e`` writes their ranges into the file exactly as it writes the histogram's.
Weight observers (per-channel), the int32 bias's derived quantizers and the fixed ranges of
LOGISTIC/SOFTMAX are left as they are.
"""

from __future__ import annotations

import math

import torch
from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

from edgekit.quantization.ranges import PERCENTILE_OUTLIERS

PER_TENSOR = (torch.per_tensor_affine, torch.per_tensor_symmetric)


class BatchMeanObserver(MinMaxObserver):
    """The range as the mean over batches of each batch's min and max (``outliers`` 0) or
    of its ``outliers`` and 1 − ``outliers`` quantiles (nncf's MEAN_MINMAX, MEAN_QUANTILE)."""

    def __init__(self, *args, outliers: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outliers = outliers
        self.batches = 0
        self.low_sum = 0.0
        self.high_sum = 0.0

    def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
        if x_orig.numel() == 0:
            return x_orig
        flat = x_orig.detach().float().flatten()
        k = max(1, math.ceil(self.outliers * flat.numel()))  # kthvalue: no size limit
        low = flat.kthvalue(k).values if self.outliers else flat.min()
        high = flat.kthvalue(flat.numel() - k + 1).values if self.outliers else flat.max()
        self.batches += 1
        self.low_sum += float(low)
        self.high_sum += float(high)
        self.min_val.copy_(torch.tensor(self.low_sum / self.batches))
        self.max_val.copy_(torch.tensor(self.high_sum / self.batches))
        return x_orig


def _observer_for(ranges: str, old: HistogramObserver) -> torch.nn.Module:
    same = dict(dtype=old.dtype, qscheme=old.qscheme, quant_min=old.quant_min,
                quant_max=old.quant_max, eps=float(old.eps))
    if ranges == "minmax":
        return MinMaxObserver(**same)
    if ranges == "mean-minmax":
        return BatchMeanObserver(**same)
    if ranges == "percentile":
        return BatchMeanObserver(outliers=PERCENTILE_OUTLIERS, **same)
    raise ValueError(ranges)  # "mse" keeps the histogram; QuantConfig validated the name


def use_range_observers(prepared: torch.fx.GraphModule, ranges: str | None) -> int:
    """Give every per-tensor activation observer of ``prepared`` (not yet calibrated) the
    ``ranges`` setting; how many were replaced (0 for "mse" and None, the default)."""
    if ranges in (None, "mse"):
        return 0
    replaced = 0
    for name, module in list(prepared.named_children()):
        if type(module) is HistogramObserver and module.qscheme in PER_TENSOR:
            setattr(prepared, name, _observer_for(ranges, module))
            replaced += 1
    return replaced
