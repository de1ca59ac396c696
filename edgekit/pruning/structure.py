"""Save a channel-pruned model and rebuild it, without unpickling anything.

A pruned model's state dict no longer fits the zoo constructor. ``save_pruned`` writes one
``.safetensors`` file whose header holds the dense model's config (``edgekit_config``, or
none for a user module) and the pruned structure: the channel attributes of every layer
torch-pruning resizes (Conv in/out/groups, BatchNorm features, Linear features, ...).
``load_pruned`` builds the dense model (zoo config, or the caller's module/factory),
shrinks each of those layers to the stored sizes (``apply_structure``), then loads the
weights (strict). The tensors' own shapes come from the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import CheckpointError
from edgekit.core.io import atomic_path

if TYPE_CHECKING:
    import torch

FORMAT = "edgekit-pruned"
VERSION = 1
_KEY = "edgekit_pruned"
# the attributes torch-pruning changes, per layer type (class name -> attributes)
_ATTRS = {
    "Conv1d": ("in_channels", "out_channels", "groups"),
    "Conv2d": ("in_channels", "out_channels", "groups"),
    "Conv3d": ("in_channels", "out_channels", "groups"),
    "ConvTranspose2d": ("in_channels", "out_channels", "groups"),
    "BatchNorm1d": ("num_features",),
    "BatchNorm2d": ("num_features",),
    "Linear": ("in_features", "out_features"),
    "GroupNorm": ("num_channels", "num_groups"),
    "PReLU": ("num_parameters",),
}


def pruned_structure(model: torch.nn.Module) -> dict[str, Any]:
    """Layer name -> the channel attributes of that layer (JSON-able)."""
    layers = {}
    for name, module in model.named_modules():
        attrs = _ATTRS.get(type(module).__name__)
        if attrs:
            layers[name] = {"type": type(module).__name__,
                            **{a: int(getattr(module, a)) for a in attrs}}
    return {"format": FORMAT, "version": VERSION, "layers": layers}


def save_pruned(model: torch.nn.Module, path: str | os.PathLike[str], *,
                base_config: Mapping[str, Any] | None = None,
                metrics: Mapping[str, Any] | None = None) -> Path:
    """Write ``path`` (.safetensors) atomically: weights + structure + the dense config."""
    from safetensors.torch import save_file

    base = dict(base_config) if base_config is not None else \
        getattr(model, "edgekit_config", None)
    header = {"structure": pruned_structure(model), "base_config": base,
              "metrics": dict(metrics) if metrics else None}
    try:
        meta = {_KEY: json.dumps(header, sort_keys=True, default=_plain)}
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the model config is not JSON-able ({exc})") from None
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return Path(path)


def read_pruned_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The header ``save_pruned`` wrote (structure, base_config, metrics)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if _KEY not in meta:
        raise CheckpointError(f"{path}: not a pruned-model file (no {_KEY} header)")
    header = json.loads(meta[_KEY])
    version = header.get("structure", {}).get("version")
    if version != VERSION:
        raise CheckpointError(f"{path}: pruned-model version {version!r} is not supported")
    return header


def load_pruned(path: str | os.PathLike[str], *,
                base: torch.nn.Module | Callable[[], torch.nn.Module] | None = None
                ) -> torch.nn.Module:
    """Rebuild the pruned model saved at ``path``.

    ``base``: the dense model (a module, or a factory returning one) for a user module;
    zoo models are rebuilt from the stored config when ``base`` is None.
    """
    from safetensors.torch import load_file

    header = read_pruned_header(path)
    config = header.get("base_config")
    if base is None:
        if not config or "name" not in config:
            raise CheckpointError(f"{path}: saved from a model outside the zoo; pass base= "
                                  "(the dense module or its factory)")
        from edgekit.models import create_model

        model = create_model(**config)
    else:
        model = base() if callable(base) and not _is_module(base) else base
    state = load_file(str(path))
    apply_structure(model, header["structure"], shapes={k: tuple(v.shape)
                                                        for k, v in state.items()})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the rebuilt model: "
                              f"{str(exc).splitlines()[0]}") from None
    if config:
        model.edgekit_config = dict(config)
    return model


def apply_structure(model: torch.nn.Module, structure: Mapping[str, Any], *,
                    shapes: Mapping[str, tuple[int, ...]] | None = None) -> torch.nn.Module:
    """Shrink ``model``'s layers in place to ``structure`` (from ``pruned_structure``);
    with ``shapes`` (state-dict key -> shape) every tensor is resized to fit too."""
    import torch

    modules = dict(model.named_modules())
    for name, attrs in structure.get("layers", {}).items():
        module = modules.get(name)
        if module is None or type(module).__name__ != attrs.get("type"):
            raise CheckpointError(f"layer {name!r} ({attrs.get('type')}) is not in the base "
                                  "model: it is not the model the file was pruned from")
        for key, value in attrs.items():
            if key != "type":
                setattr(module, key, value)
    for key, shape in (shapes or {}).items():
        owner_name, _, leaf = key.rpartition(".")
        owner = modules.get(owner_name)
        current = getattr(owner, leaf, None) if owner is not None else None
        if not isinstance(current, torch.Tensor) or tuple(current.shape) == tuple(shape):
            continue
        fresh = torch.zeros(shape, dtype=current.dtype)
        if isinstance(current, torch.nn.Parameter):
            setattr(owner, leaf, torch.nn.Parameter(fresh, requires_grad=current.requires_grad))
        else:
            owner.register_buffer(leaf, fresh)
    return model


def _is_module(obj: Any) -> bool:
    import torch

    return isinstance(obj, torch.nn.Module)


def _plain(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-able")
