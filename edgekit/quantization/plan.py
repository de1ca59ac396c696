"""A precision plan: which layers stay float so that the int8 model is fast and within an
accuracy budget (``max_drop``, percentage points of the validation metric).

1. A layer whose int8 form was timed (or estimated) slower than its float form is float.
2. Then, while the whole plan's measured drop from the float model exceeds ``max_drop``,
   the int8 layer with the largest harm per MAC (``LayerSensitivity.harm_per_mac``: the
   output error it alone adds, over its MACs) goes float, and the plan is scored again on
   the validation data; at most ``max_steps`` such steps.

The latency figures come from the caller (this layer knows no runtime): onnxruntime's
per-layer profile of the exported files (``edgekit.bench.layer_latency.compare_layers``,
"measured"), a device model ("estimated"), or none (the plan is then accuracy-only).
Drops are measured on the PTQ model with the layers switched off in place
(``edgekit.quantization.qdq.layer_switch``), not on a model quantized again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import InvalidInputError
from edgekit.quantization.sensitivity import (
    DEFAULT_SAMPLES,
    LayerSensitivity,
    Scorer,
    calibrate_for,
    sensitivity,
)

if TYPE_CHECKING:
    import torch

    from edgekit.quantization.types import QdqQuantizedModel

DEFAULT_MAX_DROP = 0.5  # percentage points of the task's metric
DEFAULT_MAX_STEPS = 32


@dataclass(frozen=True)
class LayerLatency:
    """One layer's (or block's) time in float and in int8, and where the figures came
    from: "measured" (profiled in the runtime that runs the file) or "estimated"."""

    float_us: float
    int8_us: float
    source: str

    def __post_init__(self) -> None:
        if self.source not in ("measured", "estimated"):
            raise InvalidInputError(f"latency source must be measured or estimated, "
                                    f"not {self.source!r}")


@dataclass(frozen=True)
class PlanStep:
    """A plan tried: how many layers float, its drop and int8 MAC share, and its latency
    summed from the per-layer figures (None where none are known)."""

    kept_float: int
    added: str  # the layer this step made float ("" for the first plan)
    drop_pp: float
    int8_mac_share: float
    latency_us: float | None


@dataclass
class PrecisionPlan:
    """The chosen plan, the table the report prints, and the plans tried on the way."""

    keep_float: tuple[str, ...]
    max_drop: float
    metric: str
    float_metric: float
    int8_drop_pp: float  # every layer int8
    drop_pp: float  # this plan
    int8_mac_share: float
    within_budget: bool
    latency_source: str  # "measured", "estimated" or "unknown"
    samples: int  # validation samples scored: one changed answer is 100 / samples pp
    layers: list[dict[str, Any]] = field(default_factory=list)
    steps: list[PlanStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_of(layer: str, latency: Mapping[str, LayerLatency]) -> tuple[str, LayerLatency] | None:
    """The figures of ``layer`` or of the nearest block holding it (per-layer profiles
    time a conv with its activation, under their block's name), and that key."""
    parts = layer.split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in latency:
            return key, latency[key]
    return None


def plan_precision(
    model: torch.nn.Module,
    data: Any,
    target: str = "onnxruntime",
    *,
    max_drop: float = DEFAULT_MAX_DROP,
    latency: Mapping[str, LayerLatency] | None = None,
    keep_float: tuple[str, ...] = (),
    rows: list[LayerSensitivity] | None = None,
    quantized: QdqQuantizedModel | None = None,
    calib_data: Any = None,
    calibration_size: int = 300,
    samples: int = DEFAULT_SAMPLES,
    max_steps: int = DEFAULT_MAX_STEPS,
    seed: int = 0,
) -> PrecisionPlan:
    """Choose which layers of ``model`` stay float for ``target`` (see the module text).

    ``data``: validation data (as for ``sensitivity``); ``latency``: per-layer (or block)
    figures by module path; ``keep_float``: layers float whatever they cost (chosen by
    hand); ``rows``: ``sensitivity``'s rows, computed when not given.
    The plan's ``keep_float`` is what ``QuantConfig(keep_float=...)`` takes.
    """
    from edgekit.quantization.qdq.layer_switch import LayerSwitch

    if not max_drop >= 0:
        raise InvalidInputError(f"max_drop must be >= 0 percentage points, got {max_drop!r}")
    if max_steps < 0:
        raise InvalidInputError(f"max_steps must be >= 0, got {max_steps}")
    if quantized is None:
        quantized = calibrate_for(model, target, calib_data if calib_data is not None
                                  else data, calibration_size=calibration_size, seed=seed)
    if rows is None:
        rows = sensitivity(model, data, target, quantized=quantized, samples=samples,
                           seed=seed)
    latency = latency or {}
    scorer = Scorer(model, data, samples=samples, seed=seed)
    switch = LayerSwitch(quantized)
    by_layer = {r.layer: r for r in rows}
    unknown = [name for name in by_layer if name not in switch.quantizers]
    if unknown:
        raise InvalidInputError(f"sensitivity rows name layers the model lacks: {unknown}")

    def drop_of(kept: list[str]) -> float:
        with switch.kept_float(kept) as mixed:
            return round(scorer.float_metric - scorer.measure(mixed)[0], 4)

    def step(kept: list[str], added: str) -> PlanStep:
        return PlanStep(len(kept), added, drop_of(kept), _int8_share(rows, kept),
                        _latency_us(rows, kept, latency))

    by_hand = [r.layer for r in rows if _under(r.layer, keep_float)]
    missing = [k for k in keep_float if not any(_under(r.layer, (k,)) for r in rows)]
    if missing:
        raise InvalidInputError(f"keep_float names no weight-quantized layer: {missing}")
    kept = [r.layer for r in rows if r.layer in by_hand or (
        (found := latency_of(r.layer, latency)) is not None
        and found[1].int8_us > found[1].float_us)]
    steps = [step(kept, "")]
    int8_drop = drop_of([]) if kept else steps[0].drop_pp
    candidates = sorted((r for r in rows if r.layer not in kept),
                        key=lambda r: (-r.harm_per_mac, -r.metric_gain_pp))
    while steps[-1].drop_pp > max_drop and candidates and len(steps) <= max_steps:
        layer = candidates.pop(0).layer
        kept = [*kept, layer]
        steps.append(step(kept, layer))
    chosen = steps[-1]
    sources = {found[1].source for r in rows if (found := latency_of(r.layer, latency))}
    return PrecisionPlan(
        keep_float=tuple(kept), max_drop=max_drop, metric=scorer.metric_name,
        float_metric=round(scorer.float_metric, 4), int8_drop_pp=int8_drop,
        drop_pp=chosen.drop_pp, int8_mac_share=chosen.int8_mac_share,
        within_budget=chosen.drop_pp <= max_drop, samples=len(scorer.data),
        latency_source=("estimated" if "estimated" in sources else "measured")
        if sources else "unknown",
        layers=_layer_table(rows, kept, latency), steps=steps)


def _under(layer: str, modules: tuple[str, ...]) -> bool:
    """Whether ``layer`` is one of ``modules`` or inside one (keep_float's rule)."""
    return any(layer == m or layer.startswith(m + ".") for m in modules)


def _int8_share(rows: list[LayerSensitivity], kept: list[str]) -> float:
    total = sum(r.macs for r in rows)
    int8 = sum(r.macs for r in rows if r.layer not in kept)
    return round(int8 / total, 4) if total else 0.0


def _latency_us(rows: list[LayerSensitivity], kept: list[str],
                latency: Mapping[str, LayerLatency]) -> float | None:
    """The plan's time summed over the timed blocks: a block runs in float when any layer
    of it is kept float (an estimate from the per-block figures, not a timing of the file)."""
    blocks: dict[str, tuple[LayerLatency, bool]] = {}
    for r in rows:
        found = latency_of(r.layer, latency)
        if found is None:
            continue
        key, figures = found
        floated = blocks.get(key, (figures, False))[1] or r.layer in kept
        blocks[key] = (figures, floated)
    if not blocks:
        return None
    return round(sum(f.float_us if floated else f.int8_us
                     for f, floated in blocks.values()), 2)


def _layer_table(rows: list[LayerSensitivity], kept: list[str],
                 latency: Mapping[str, LayerLatency]) -> list[dict[str, Any]]:
    table = []
    for r in rows:
        found = latency_of(r.layer, latency)
        figures = found[1] if found else None
        table.append({"layer": r.layer, "precision": "float" if r.layer in kept else "int8",
                      "macs": r.macs, "metric_gain_pp": r.metric_gain_pp,
                      "error_reduction": r.error_reduction,
                      "float_us": figures.float_us if figures else None,
                      "int8_us": figures.int8_us if figures else None,
                      "latency": figures.source if figures else "unknown"})
    return table
