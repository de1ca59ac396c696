"""2:4 semi-structured sparsity in TensorRT's layout, masks kept through fine-tuning and QAT.

TensorRT's sparse tensor cores (Ampere and newer, Jetson Orin) need, in every group of 4
consecutive *input* channels, at least 2 zeros, for each output channel and kernel
position (weights [K, C, R, S]; Linear/Gemm [out, in]). ``sparsify_24`` masks each
qualifying Conv/Linear by magnitude (the 2 largest of every 4 are kept); ``mask_enforcer``
is the ``after_step`` hook that keeps the masks while training, and through int8 QAT
(``edgekit.quantization.quantize(..., after_step=...)``): BatchNorm folding scales whole
output channels and symmetric int8 maps 0.0 to 0, so the zeros reach the exported file.

>>> result = sparsify_24(model)          # masks applied in place
>>> train(model, data, cfg, after_step=mask_enforcer(result))
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from edgekit.models.registry import layer_macs
from edgekit.pruning.config import PruningError, SparsityConfig, SparsityResult

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch

    from edgekit.training.config import Hook, TrainConfig

# prefixes wrappers add in front of layer names (nncf's Sequential wrapper, DDP)
_WRAPPER_PREFIXES = ("body.", "module.", "model.")


def dense_reason(module: torch.nn.Module, config: SparsityConfig) -> str | None:
    """Why TensorRT cannot run ``module`` with 2:4 sparse weights, or None if it can."""
    from torch import nn

    if isinstance(module, nn.Linear):
        if not config.include_linear:
            return "Linear layers excluded by the config"
        k, c = module.out_features, module.in_features
    elif isinstance(module, nn.ConvTranspose2d):
        return "transposed convolution (TensorRT's sparse tactics cover Conv and Gemm)"
    elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.groups > 1:
            kind = "depthwise" if module.groups == module.in_channels else "grouped"
            return f"{kind} convolution (groups={module.groups}): no sparse tensor-core tactic"
        k, c = module.out_channels, module.in_channels
    else:
        return "not a Conv/Linear layer"
    if c % config.in_channels_multiple:
        return f"input channels {c} not a multiple of {config.in_channels_multiple}"
    if k % config.out_channels_multiple:
        return f"output channels {k} not a multiple of {config.out_channels_multiple}"
    return None


def mask_24(weight: torch.Tensor) -> torch.Tensor:
    """Keep-mask of ``weight`` ([K, C, ...], C % 4 == 0): the 2 largest |w| of every 4
    consecutive input channels, per output channel and kernel position."""
    import torch

    c = weight.shape[1]
    moved = weight.detach().abs().movedim(1, -1)  # [K, ..., C]
    groups = moved.reshape(-1, c // 4, 4)
    top = groups.topk(2, dim=-1).indices
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
    return keep.reshape(moved.shape).movedim(-1, 1).contiguous()


def sparsify_24(model: torch.nn.Module, config: SparsityConfig | None = None, *,
                example_input: torch.Tensor | None = None) -> SparsityResult:
    """Mask every qualifying Conv/Linear of ``model`` to 2:4 by magnitude, in place."""
    import torch

    result = SparsityResult()
    for name, module, macs, reason in _layers(model, config, example_input, result):
        if reason is not None:
            result.dense[name] = reason
            continue
        mask = mask_24(module.weight)
        with torch.no_grad():
            module.weight.mul_(mask)
        result.masks[name] = mask
        result.sparse_macs += macs
    return result


def recover_24(model: torch.nn.Module, config: SparsityConfig | None = None, *,
               example_input: torch.Tensor | None = None) -> SparsityResult:
    """The ``SparsityResult`` of a model already sparsified (e.g. reloaded with
    ``load_pruned`` to resume): every qualifying layer whose weights hold 2:4 gets the mask
    of its non-zeros; a qualifying layer that does not hold it is listed dense."""
    from edgekit.pruning.check24 import check_24

    result = SparsityResult()
    for name, module, macs, reason in _layers(model, config, example_input, result):
        if reason is None and not check_24(module.weight)[0]:
            reason = "its weights do not hold 2:4 (not sparsified)"
        if reason is not None:
            result.dense[name] = reason
            continue
        result.masks[name] = module.weight.detach() != 0
        result.sparse_macs += macs
    return result


def _layers(model: torch.nn.Module, config: SparsityConfig | None,
            example_input: torch.Tensor | None, result: SparsityResult
            ) -> Iterator[tuple[str, torch.nn.Module, int, str | None]]:
    """(name, module, MACs, why it stays dense or None) of every Conv/Linear; adds their
    MACs to ``result.total_macs``."""
    from torch import nn

    from edgekit.pruning.channel import example_input as default_example

    config = config or SparsityConfig()
    macs = layer_macs(model, default_example(model, example_input))
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            result.total_macs += macs.get(name, 0)
            yield name, module, macs.get(name, 0), dense_reason(module, config)


def mask_enforcer(result: SparsityResult) -> Hook:
    """``after_step`` hook re-zeroing the masked weights of ``result`` by layer name.

    Also finds the layers in a copy of the model that a wrapper renamed (nncf's BN-folded
    QAT copy, ``body.``/``module.`` prefixes); a mask whose layer is missing or reshaped
    raises PruningError rather than silently enforcing nothing."""
    import torch

    masks = dict(result.masks)
    resolved: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def enforce(model: torch.nn.Module) -> None:
        pairs = resolved.get(id(model))
        if pairs is None:
            pairs = resolved[id(model)] = _resolve(model, masks)
        with torch.no_grad():
            for weight, mask in pairs:
                weight.mul_(mask)

    return enforce


def _resolve(model: torch.nn.Module, masks: dict[str, torch.Tensor]
             ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    by_name = {}
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is None:
            continue
        by_name[name] = weight
        stripped = name
        while stripped.startswith(_WRAPPER_PREFIXES):
            stripped = stripped.split(".", 1)[1]
            by_name.setdefault(stripped, weight)
    pairs = []
    for name, mask in masks.items():
        weight = by_name.get(name)
        if weight is None or tuple(weight.shape) != tuple(mask.shape):
            raise PruningError(f"2:4 mask of layer {name!r} fits no weight of this model "
                               "(renamed or reshaped after the masks were made)")
        pairs.append((weight, mask.to(weight.device)))
    return pairs


def sparse_finetune(model: torch.nn.Module, train_data: Any,
                    config: SparsityConfig | None = None, *,
                    train_config: TrainConfig | None = None, val_data: Any = None,
                    teacher: torch.nn.Module | None = None, distill: float = 0.5,
                    example_input: torch.Tensor | None = None) -> SparsityResult:
    """``sparsify_24`` then fine-tune with the masks enforced after every step, distilled
    from ``teacher`` (default: a frozen copy of the dense model) with weight ``distill``."""
    import dataclasses

    from edgekit.training import TrainConfig, train

    dense = teacher if teacher is not None else copy.deepcopy(model).eval()
    result = sparsify_24(model, config, example_input=example_input)
    cfg = dataclasses.replace(train_config or TrainConfig(epochs=1, progress=False),
                              distill=distill)
    result.history = train(model, train_data, cfg, val_data=val_data,
                           after_step=mask_enforcer(result),
                           teacher=dense if distill > 0 else None)
    return result
