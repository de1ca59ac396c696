"""Post-training weight rounding for int8: GPTQ-style rounding and bias correction.

Rounding every weight to its nearest int8 level is what plain min-max PTQ does; on deep
networks the rounding errors of the early layers add up (a real ImageNet network lost one
top-1 decision in seven to weight rounding alone, before any activation was quantized).
Two remedies, both computed here on the BatchNorm-folded fp32 model before the target's
quantizer sees it:

* **rounding by layer-output error** (the AdaRound/AdaQuant family's objective, solved
  greedily as GPTQ does): each conv/linear row is rounded one input column at a time, and
  the rounding error of a column is spread over the columns not yet rounded through the
  inverse Hessian ``(X Xᵀ)⁻¹`` of the layer's calibration inputs, so the layer's *output*
  error is what is minimised, not each weight's;
* **bias correction**: what the rounding still shifts in each output channel's mean (on
  the calibration inputs, with every earlier layer rounded too) goes back into the bias,
  a few passes so that corrections of early layers reach the later ones.

The result is an ordinary fp32 module whose weights already lie on the target's int8 grid
(per output channel, symmetric, scale ``max|w| / levels``, the row's largest weight kept
on the top level so the target's own min-max quantizer finds the same scale) and rounds to
them exactly: nothing downstream needs to know about it, for any backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

ROUNDING_METHODS = ("nearest", "gptq")
# positions of a layer's input kept per sample for its Hessian: enough for the 9- to
# 1,152-wide rows of the zoo's and ImageNet nets' layers, and memory bounded by the batch
MAX_POSITIONS = 256
DAMPING = 0.01  # share of the mean Hessian diagonal added to it (GPTQ's default)
GPTQ_BLOCK = 128  # columns rounded before the rest of the row is updated (GPTQ's)
# calibration inputs the Hessians and the bias correction are measured on: 64 inputs give
# 16,384 positions per layer, 14x the widest row (1,152), where 300 cost 2.6 s each at
# 224 px (EfficientNet-Lite0, docs/results.md)
ROUNDING_SAMPLES = 64


@dataclass(frozen=True)
class RoundingConfig:
    """``method``: "nearest" (plain rounding) or "gptq" (by layer-output error);
    ``bias_passes``: passes of bias correction (0: none); ``samples``: at most this many
    calibration inputs (a seeded draw) measure the Hessians and the bias shifts."""

    method: str = "gptq"
    bias_passes: int = 2
    samples: int = ROUNDING_SAMPLES

    def __post_init__(self) -> None:
        if self.method not in ROUNDING_METHODS:
            raise InvalidInputError(f"rounding method must be one of {ROUNDING_METHODS}, "
                                    f"not {self.method!r}")
        if not isinstance(self.bias_passes, int) or self.bias_passes < 0:
            raise InvalidInputError(f"bias_passes must be an integer >= 0, "
                                    f"got {self.bias_passes!r}")
        if not isinstance(self.samples, int) or self.samples < 1:
            raise InvalidInputError(f"samples must be an integer >= 1, got {self.samples!r}")


@dataclass
class RoundingReport:
    layers: int = 0
    rows_pinned: int = 0  # rows whose largest weight was moved back onto the top level
    samples: int = 0  # calibration inputs the Hessians and bias shifts were measured on
    bias_shift: list[float] = field(default_factory=list)  # mean |correction| per pass

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "rows_pinned": self.rows_pinned,
                "samples": self.samples, "bias_shift": self.bias_shift}


def refine_weights(folded: torch.nn.Module, calib: torch.Tensor, config: Any,
                   scheme: Any) -> dict[str, Any]:
    """Apply ``config.rounding`` and ``config.bias_correction`` (a ``QuantConfig``) to the
    BatchNorm-folded ``folded`` in place, on the levels of ``scheme`` (a ``QuantScheme``);
    the report as plain data, empty when the config asks for plain rounding."""
    import time

    if config.rounding == "nearest" and not config.bias_correction:
        return {}
    started = time.perf_counter()
    report = round_weights(folded, calib, RoundingConfig(config.rounding,
                                                         int(config.bias_correction)),
                           lambda layer: levels_for(layer, scheme.weight_bits))
    return {"method": config.rounding, "bias_correction": config.bias_correction,
            **report.to_dict(), "seconds": round(time.perf_counter() - started, 1)}


def levels_for(layer: torch.nn.Module, weight_bits: int) -> int:
    """A layer's int8 levels each side: 127, or 63 for 7-bit weights (the onnxruntime
    scheme), which depthwise convs never get."""
    groups = getattr(layer, "groups", 1)
    depthwise = groups > 1 and groups == layer.in_channels
    return 127 if weight_bits == 8 or depthwise else (1 << (weight_bits - 1)) - 1


def round_weights(model: torch.nn.Module, calib: torch.Tensor, config: RoundingConfig,
                  levels: Callable[[torch.nn.Module], int], *, batch_size: int = 16
                  ) -> RoundingReport:
    """Put the weights of every Conv2d/Linear of ``model`` (BatchNorm already folded, in
    place) on their int8 grid of ``levels(layer)`` levels each side, rounded by
    ``config.method``, then correct the biases on ``calib``. Returns what was done."""
    import torch

    layers = _weighted_layers(model)
    report = RoundingReport(layers=len(layers))
    if len(calib) > config.samples:
        keep = torch.randperm(len(calib), generator=torch.Generator().manual_seed(0))
        calib = calib[keep[:config.samples].sort().values]
    report.samples = len(calib)
    originals = {name: layer.weight.detach().clone() for name, layer in layers.items()}
    with torch.no_grad():
        hessians = _hessians(model, calib, layers, batch_size) if config.method == "gptq" \
            else {}
        for name, layer in layers.items():
            n = levels(layer)
            if name in hessians:
                rounded, pinned = _gptq(layer, hessians.pop(name), n)
            else:
                rounded, pinned = _nearest(_rows(layer), n), 0
            report.rows_pinned += pinned
            layer.weight.copy_(rounded.reshape(layer.weight.shape))
    for _ in range(config.bias_passes):
        report.bias_shift.append(_correct_biases(model, calib, layers, originals, batch_size))
    return report


def _weighted_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    import torch

    return {name: m for name, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.numel()}


def _groups(layer: torch.nn.Module) -> int:
    return getattr(layer, "groups", 1)


def _rows(layer: torch.nn.Module) -> torch.Tensor:
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


def _scales(rows: torch.Tensor, levels: int) -> torch.Tensor:
    import torch

    peak = rows.abs().amax(dim=1, keepdim=True)
    return torch.where(peak > 0, peak / levels, torch.ones_like(peak))


def _nearest(rows: torch.Tensor, levels: int) -> torch.Tensor:
    s = _scales(rows, levels)
    return (rows / s).round().clamp(-levels, levels) * s


class _Calls:
    """Watches the conv2d/linear calls of a forward (whatever module code makes them:
    static 'same' padding, functional calls) and hands each, with its input and output, to
    ``seen(name, layer, input, output, args)``."""

    def __init__(self, layers: dict[str, torch.nn.Module],
                 seen: Callable[..., None]) -> None:
        self.by_weight = {id(m.weight): (name, m) for name, m in layers.items()}
        self.seen = seen

    def __enter__(self) -> _Calls:
        import torch
        import torch.nn.functional as F
        from torch.overrides import TorchFunctionMode

        watched = {F.conv2d: "conv2d", torch.conv2d: "conv2d", F.linear: "linear"}
        calls = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                if func in watched and len(args) > 1 and id(args[1]) in calls.by_weight:
                    name, layer = calls.by_weight[id(args[1])]
                    calls.seen(name, layer, args[0], out, (args, kwargs))
                return out

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)


def _batches(calib: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for i in range(0, len(calib), batch_size):
        yield calib[i:i + batch_size]


def _hessians(model: torch.nn.Module, calib: torch.Tensor, layers: dict[str, Any],
              batch_size: int) -> dict[str, torch.Tensor]:
    """name -> the layer's ``X Xᵀ`` per group ([groups, D, D]) over the calibration
    inputs (D: inputs of one output row), averaged over the positions used."""
    import torch

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    generator = torch.Generator().manual_seed(0)

    def seen(name, layer, x, out, call) -> None:
        cols = _columns(layer, x, call, generator)  # [groups, D, positions]
        h = torch.einsum("gdp,gep->gde", cols, cols)
        sums[name] = sums[name] + h if name in sums else h
        counts[name] = counts.get(name, 0) + cols.shape[-1]

    model.eval()
    with torch.no_grad(), _Calls(layers, seen):
        for batch in _batches(calib, batch_size):
            model(batch)
    return {name: sums[name] / counts[name] for name in sums}


def _columns(layer: torch.nn.Module, x: torch.Tensor, call: Any,
             generator: torch.Generator) -> torch.Tensor:
    """The layer's input as the columns its rows multiply: [groups, D, positions], at most
    MAX_POSITIONS positions per sample."""
    import torch
    import torch.nn.functional as F

    g = _groups(layer)
    if isinstance(layer, torch.nn.Linear):
        cols = x.reshape(-1, x.shape[-1]).T  # [in, positions]
        return cols[None]
    args, kwargs = call
    params = dict(zip(("stride", "padding", "dilation", "groups"), args[3:], strict=False))
    params.update({k: v for k, v in kwargs.items() if k in params or k in
                   ("stride", "padding", "dilation")})
    kh, kw = layer.weight.shape[-2:]
    padding = params.get("padding", 0)
    if isinstance(padding, str):  # "same" (stride 1) / "valid"
        padding = (0, 0) if padding == "valid" else ((kh - 1) // 2, (kw - 1) // 2)
    patches = F.unfold(x, (kh, kw), dilation=params.get("dilation", 1), padding=padding,
                       stride=params.get("stride", 1))  # [N, C*kh*kw, L]
    n, _, positions = patches.shape
    if positions > MAX_POSITIONS:
        keep = torch.randperm(positions, generator=generator)[:MAX_POSITIONS]
        patches = patches[:, :, keep]
    d = patches.shape[1] // g
    patches = patches.reshape(n, g, d, -1).permute(1, 2, 0, 3)  # [g, D, N, L]
    return patches.reshape(g, d, -1)


def _gptq(layer: torch.nn.Module, hessian: torch.Tensor, levels: int
          ) -> tuple[torch.Tensor, int]:
    """(the layer's rows rounded column by column, the error spread over the rest through
    the inverse Hessian; rows pinned). Rows of one group share its Hessian."""
    import torch

    rows = _rows(layer).clone()
    scales = _scales(rows, levels)
    g = hessian.shape[0]
    out_per_group = rows.shape[0] // g
    w = rows.reshape(g, out_per_group, -1)  # [g, R, D]
    s = scales.reshape(g, out_per_group, 1)
    h = hessian.clone()
    dead = torch.diagonal(h, dim1=1, dim2=2) == 0
    h[torch.diag_embed(dead)] = 1.0
    w[dead[:, None, :].expand_as(w)] = 0.0  # an input that is always 0 needs no weight
    diag = torch.diagonal(h, dim1=1, dim2=2)
    h += torch.diag_embed(DAMPING * diag.mean(dim=1, keepdim=True).expand_as(diag))
    inverse = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)),
                                    upper=True)  # [g, D, D]
    q = torch.zeros_like(w)
    for start in range(0, w.shape[-1], GPTQ_BLOCK):  # GPTQ's lazy batch updates
        end = min(start + GPTQ_BLOCK, w.shape[-1])
        block, errors = w[:, :, start:end], torch.zeros_like(w[:, :, start:end])
        inv = inverse[:, start:end, start:end]
        for i in range(end - start):
            column = block[:, :, i]
            rounded = (column / s[..., 0]).round().clamp(-levels, levels) * s[..., 0]
            q[:, :, start + i] = rounded
            errors[:, :, i] = (column - rounded) / inv[:, i, i][:, None]
            block[:, :, i + 1:] -= errors[:, :, i, None] * inv[:, i, i + 1:][:, None, :]
        w[:, :, end:] -= errors @ inverse[:, start:end, end:]  # the rest, in one product
    q = q.reshape_as(rows)
    return _pin_peaks(q, rows_before=_rows(layer), scales=scales, levels=levels)


def _pin_peaks(q: torch.Tensor, *, rows_before: torch.Tensor, scales: torch.Tensor,
               levels: int) -> tuple[torch.Tensor, int]:
    """Every row's largest |weight| on the top level, so the target's min-max quantizer
    computes the same scale; a row where that moved more than one level is rounded to
    nearest instead."""
    import torch

    steps = (q / scales).round()
    top = steps.abs().amax(dim=1)
    live = rows_before.abs().amax(dim=1) > 0
    short = live & (top < levels)
    pinned = 0
    for r in torch.nonzero(short).flatten().tolist():
        if top[r] >= levels - 1:
            j = int(steps[r].abs().argmax())
            steps[r, j] = levels if steps[r, j] > 0 else -levels
            pinned += 1
        else:
            steps[r] = (rows_before[r] / scales[r]).round().clamp(-levels, levels)
    return steps * scales, pinned


def _correct_biases(model: torch.nn.Module, calib: torch.Tensor, layers: dict[str, Any],
                    originals: dict[str, torch.Tensor], batch_size: int) -> float:
    """Give each layer back, through its bias, the mean its output channels lost to its own
    rounding, measured on the inputs it gets with every layer rounded (so the
    corrections of earlier layers are in them); the mean |shift|."""
    import torch

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def seen(name, layer, x, out, call) -> None:
        args, kwargs = call
        exact = _call_with_weight(layer, originals[name], args, kwargs)
        channel = 1 if isinstance(layer, torch.nn.Conv2d) else out.ndim - 1
        lost = (exact - out).double().transpose(0, channel).reshape(out.shape[channel], -1)
        sums[name] = sums[name] + lost.sum(1) if name in sums else lost.sum(1)
        counts[name] = counts.get(name, 0) + lost.shape[1]

    model.eval()
    with torch.no_grad(), _Calls(layers, seen):
        for batch in _batches(calib, batch_size):
            model(batch)
    shifts = []
    with torch.no_grad():
        for name, layer in layers.items():
            if name not in sums:
                continue
            shift = (sums[name] / counts[name]).float()
            if layer.bias is None:
                layer.bias = torch.nn.Parameter(torch.zeros_like(shift))
            layer.bias += shift
            shifts.append(float(shift.abs().mean()))
    return sum(shifts) / max(1, len(shifts))


def _call_with_weight(layer: torch.nn.Module, weight: torch.Tensor, args: tuple,
                      kwargs: dict[str, Any]) -> torch.Tensor:
    """The watched call again, with ``weight`` in place of the layer's."""
    import torch

    func = torch.nn.functional.linear if isinstance(layer, torch.nn.Linear) \
        else torch.nn.functional.conv2d
    return func(args[0], weight, *args[2:], **kwargs)
