"""Activation range setting for post-training int8, chosen on held-out calibration data.

Weights keep their per-channel min-max (symmetric) grid: the targets' kernels need it and
``edgekit.quantization.rounding`` rounds onto it. An activation's range is a trade: min-max
keeps every outlier and spends the 256 levels on them; a narrower range clips the
outliers and gives the bulk of the values a finer step. Which is better depends on the
network and on the target's arithmetic, so ``auto`` calibrates each setting on part of the
calibration crops and keeps the one whose model agrees best with the fp32 model on the
rest (ties: the smaller output error), then calibrates it on all of them.

* ``minmax``: the global min and max over the calibration inputs;
* ``mean-minmax``: per batch the min and max, averaged over the batches (nncf's own
  default for activations, so what the TensorRT and onnxruntime targets had before);
* ``percentile``: per batch the ``PERCENTILE_OUTLIERS`` and 1 − that quantiles, averaged
  over the batches (nncf's ``MEAN_QUANTILE``);
* ``mse``: the range whose quantization error (L2) over a histogram of the values is least
  (nncf's ``HISTOGRAM``, torchao's ``HistogramObserver``; the same search).

Each backend maps a setting to its own estimator (``qdq.scheme``, ``pt2e.range_observers``);
``None`` in ``QuantConfig.ranges`` leaves the backend's default (nncf: mean-minmax;
PT2E for TFLite: mse, litert's HistogramObserver).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

RANGE_SETTINGS = ("minmax", "mean-minmax", "percentile", "mse")
RANGE_CHOICES = ("auto", *RANGE_SETTINGS)
PERCENTILE_OUTLIERS = 1e-4  # nncf's default quantile outlier probability
HELD_OUT_SHARE = 0.25  # of the calibration inputs, held out to choose the setting
MIN_HELD_OUT = 8


@dataclass
class RangeTrial:
    setting: str
    agreement: float  # top-1 agreement with the fp32 model on the held-out inputs
    output_error: float  # mean squared output error / mean square of the fp32 output
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "agreement": round(self.agreement, 4),
                "output_error": round(self.output_error, 6), "seconds": round(self.seconds, 1)}


@dataclass
class RangeChoice:
    chosen: str | None  # None: the backend's default (too few inputs to hold any out)
    fit: int = 0  # calibration inputs each trial was calibrated on
    held_out: int = 0  # and scored on
    trials: list[RangeTrial] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "fit": self.fit, "held_out": self.held_out,
                "trials": [t.to_dict() for t in self.trials],
                **({"note": self.note} if self.note else {})}


def describe(choice: dict[str, Any]) -> str:
    """One line for the report: the setting used and, when chosen, what each trial scored."""
    if not choice.get("trials"):
        chosen = choice.get("chosen") or "the backend's default"
        return f"Activation ranges: {chosen}" + (
            f" ({choice['note']})." if choice.get("note") else ".")
    trials = "; ".join(f"{t['setting']} {t['agreement']:.4f} (output error "
                       f"{t['output_error']:.2g}, {t['seconds']:.0f} s)"
                       for t in choice["trials"])
    return (f"Activation ranges: {choice['chosen']}, chosen by top-1 agreement with fp32 on "
            f"{choice['held_out']} held-out calibration inputs after calibrating on "
            f"{choice['fit']}: {trials}.")


def split_calibration(calib: torch.Tensor, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit, held out): a seeded shuffle, ``HELD_OUT_SHARE`` of it (at least
    ``MIN_HELD_OUT``) held out; crops of one photo sit next to each other in the
    calibration order."""
    import torch

    order = torch.randperm(len(calib), generator=torch.Generator().manual_seed(seed))
    held = max(MIN_HELD_OUT, round(len(calib) * HELD_OUT_SHARE))
    return calib[order[held:]], calib[order[:held]]


def choose_ranges(build: Callable[[str, torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
                  reference: torch.nn.Module, calib: torch.Tensor, *, batch_size: int,
                  seed: int = 0, settings: tuple[str, ...] = RANGE_SETTINGS) -> RangeChoice:
    """Try each setting: ``build(setting, fit_inputs)`` returns the int8 model calibrated
    on the fit share, scored against ``reference`` (the fp32 model) on the held-out share.
    The best by top-1 agreement, then by output error. With fewer than
    ``2 * MIN_HELD_OUT`` inputs nothing is tried: the backend's default."""
    if len(calib) < 2 * MIN_HELD_OUT:
        return RangeChoice(chosen=None, note=f"{len(calib)} calibration inputs: too few to "
                           f"hold {MIN_HELD_OUT} out")
    fit, held = split_calibration(calib, seed)
    expected = _outputs(reference, held, batch_size)
    choice = RangeChoice(chosen="", fit=len(fit), held_out=len(held))
    for setting in settings:
        started = time.perf_counter()
        got = _outputs(build(setting, fit), held, batch_size)
        agreement, error = score_outputs(got, expected)
        choice.trials.append(RangeTrial(setting, agreement, error,
                                        time.perf_counter() - started))
    choice.chosen = max(choice.trials, key=lambda t: (t.agreement, -t.output_error)).setting
    return choice


def score_outputs(got: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(top-1 agreement, output MSE relative to the mean square of ``expected``)."""
    agreement = float((got.argmax(1) == expected.argmax(1)).float().mean())
    error = float(((got - expected) ** 2).mean() / (expected ** 2).mean().clamp_min(1e-12))
    return agreement, error


def _outputs(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             batch_size: int) -> torch.Tensor:
    import torch

    if isinstance(model, torch.nn.Module):
        model.eval()
    with torch.no_grad():
        return torch.cat([_logits(model(b)) for b in torch.split(x, batch_size)])


def _logits(out: Any) -> torch.Tensor:
    """The first tensor of a model's output (a tuple or dict output's first entry)."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.reshape(out.shape[0], -1).float()
