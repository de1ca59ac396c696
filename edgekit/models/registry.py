"""The model registry: register variants by name, build them, count their size.

A variant is a builder function ``fn(*, num_classes, in_channels, input_size, **variant_args)``
registered with its :class:`ModelSpec` defaults. :func:`create_model` validates the
arguments, builds the model and records every argument it used in
``model.edgekit_config`` so that ``create_model(**model.edgekit_config)`` rebuilds it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.core.registry import Registry

TASKS = ("classification", "segmentation")
_BASE_ARGS = ("num_classes", "in_channels", "input_size")
# Inputs of at most this size (28 px digits, 64 px segmentation canvases) take the
# ``small_defaults`` of a spec; families also reduce downsampling below 64 px.
SMALL_DEFAULTS_UPTO = 64


@dataclass(frozen=True)
class ModelSpec:
    """What a registered variant is and its default arguments.

    ``input_size``/``num_classes``/``in_channels`` are the defaults (ImageNet-like for
    most families); ``small_input_size`` is the size used for the cheap variant trained
    on mnist5k (28 px digits, 64 px segmentation canvases). ``paper`` holds published
    sizes, e.g. ``{"params": 3.4e6, "macs": 300e6}``, for the variant arguments in
    ``paper_args`` (empty: the defaults) at ``input_size`` px. ``small_defaults`` replace
    the variant defaults when a model is built for an input of 64 px or less (cheap
    variants for digits and 64 px canvases; any argument passed explicitly wins).
    """

    name: str
    family: str
    task: str
    num_classes: int
    in_channels: int
    input_size: int
    paper: dict[str, float] | None
    description: str
    small_input_size: int = 28
    min_input_size: int = 17
    input_multiple: int = 1
    variant_defaults: dict[str, Any] = field(default_factory=dict)
    paper_args: dict[str, Any] = field(default_factory=dict)
    small_defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Entry:
    spec: ModelSpec
    build: Callable[..., Any]


MODELS: Registry[_Entry] = Registry("model", listed_by="edgekit models")


def register_model(*, family: str, task: str = "classification", num_classes: int = 1000,
                   in_channels: int = 3, input_size: int = 224,
                   paper: dict[str, float] | None = None, description: str = "",
                   small_input_size: int | None = None, min_input_size: int = 17,
                   input_multiple: int = 1, paper_args: dict[str, Any] | None = None,
                   small_defaults: dict[str, Any] | None = None,
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a builder under its function name with its spec."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        params = inspect.signature(fn).parameters
        missing = [a for a in _BASE_ARGS if a not in params]
        if missing:
            raise TypeError(f"model builder {fn.__name__} lacks arguments {missing}")
        defaults = {k: p.default for k, p in params.items()
                    if k not in _BASE_ARGS and p.default is not inspect.Parameter.empty}
        small = small_input_size or (64 if task == "segmentation" else 28)
        spec = ModelSpec(fn.__name__, family, task, num_classes, in_channels, input_size, paper,
                         description or (fn.__doc__ or "").strip().split("\n")[0], small,
                         min_input_size, input_multiple, defaults, dict(paper_args or {}),
                         dict(small_defaults or {}))
        if set(spec.small_defaults) - set(defaults):
            raise TypeError(f"small_defaults of {fn.__name__} name unknown arguments")
        MODELS.register(fn.__name__)(_Entry(spec, fn))
        return fn

    return add


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return MODELS.names(pattern)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registered model (UnknownNameError if none)."""
    return MODELS.get(name).spec


def create_model(name: str, *, num_classes: int | None = None, in_channels: int | None = None,
                 input_size: int | None = None, **variant_args: Any) -> Any:
    """Build a registered model; unset arguments take the spec defaults.

    ``input_size`` is the resolution the model is built for: below 64 px the
    classification families reduce early downsampling, and up to 64 px variant arguments
    not given take ``spec.small_defaults`` (see docs/models.md).
    """
    entry = MODELS.get(name)
    spec = entry.spec
    config: dict[str, Any] = {
        "num_classes": _positive_int("num_classes", num_classes, spec.num_classes),
        "in_channels": _positive_int("in_channels", in_channels, spec.in_channels),
        "input_size": _positive_int("input_size", input_size, spec.input_size),
    }
    size = config["input_size"]
    if size < spec.min_input_size:
        raise InvalidInputError(
            f"{name} needs input_size >= {spec.min_input_size}, got {size}")
    if size % spec.input_multiple:
        raise InvalidInputError(
            f"{name} needs input_size to be a multiple of {spec.input_multiple}, got {size}")
    unknown = sorted(set(variant_args) - set(spec.variant_defaults))
    if unknown:
        accepted = ", ".join(sorted(spec.variant_defaults)) or "none"
        raise InvalidInputError(
            f"{name} does not take {', '.join(unknown)} (variant arguments: {accepted})")
    config.update(spec.variant_defaults)
    if size <= SMALL_DEFAULTS_UPTO:
        config.update(spec.small_defaults)
    config.update(variant_args)
    model = entry.build(**config)
    model.edgekit_config = {"name": name, **config}
    return model


def _positive_int(name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def count_params(model: Any) -> int:
    """Number of parameters (trainable or not) of a torch module."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: Any, input_size: int | None = None, in_channels: int | None = None) -> int:
    """Multiply-accumulates of one forward pass on a 1 x C x S x S input.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2): convolutions,
    matmuls and linears; element-wise ops, pooling and BN are not counted, as in the
    papers. Sizes default to the model's ``edgekit_config``, else 224 px and 3 channels.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    config = getattr(model, "edgekit_config", {})
    size = input_size or config.get("input_size", 224)
    channels = in_channels or config.get("in_channels", 3)
    first = next(model.parameters(), None)
    device = first.device if first is not None else "cpu"
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, channels, size, size, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def layer_macs(model: Any, example: Any) -> dict[str, int]:
    """Multiply-accumulates of each Conv/Linear (by module path) for one sample of
    ``example``; their sum is what ``count_macs`` counts for these CNNs, at a fraction of its
    cost (pruning's targets and the precision plan's int8 share both read it)."""
    import torch
    from torch import nn

    macs: dict[str, int] = {}

    def record(name: str) -> Any:
        def hook(module: Any, inputs: Any, output: torch.Tensor) -> None:
            # weight[0] holds one output channel's taps (ConvTranspose: one input channel's)
            seen = inputs[0] if isinstance(module, nn.ConvTranspose2d) else output
            per_sample = seen.numel() // max(1, seen.shape[0])
            macs[name] = macs.get(name, 0) + int(per_sample * module.weight[0].numel())
        return hook

    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
             if isinstance(m, kinds)]
    was = model.training
    try:
        with torch.no_grad():
            model.eval()(example[:1])
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return macs
