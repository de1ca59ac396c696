"""What the dependency graph may not thin, found on torch-pruning's traced graph.

torch-pruning (DepGraph) couples every layer whose channels must be removed together
(residual adds, concatenations, depthwise groups, squeeze-excite gates) and prunes
whole groups. Four kinds of group are left whole here, each with its reason:

* groups that reach the model's output (the classifier's outputs are the classes);
* groups that pass through a channel shuffle (transpose/permute of the channel axis):
  torch-pruning treats a transpose as an element-wise op, so its index mapping would
  be wrong (ShuffleNet v1/v2, ESPNetv2's decoder); layers inside such a unit whose own
  channels do not cross the shuffle (ShuffleNetV2's branch bottlenecks) stay prunable;
* layers a module thins itself (an inner channel group, ``edgekit.pruning.inner``);
* layers the caller names.
The model's input channels are never pruned (the input is not a layer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import MissingBackendError
from edgekit.pruning.inner import owned_layers

if TYPE_CHECKING:
    import torch

# grad_fn names of ops that move channels across positions (torch-pruning maps them 1:1);
# "shufflemarker" is the stand-in ``opaque_shuffles`` puts in place of a shuffle module
_SHUFFLE_OPS = ("transpose", "permute", "pixelshuffle", "pixelunshuffle", "channelshuffle",
                "roll", "flip", "shufflemarker")


def torch_pruning() -> Any:
    """torch-pruning, or an error naming the extra that installs it."""
    try:
        import torch_pruning as tp
    except ImportError as exc:
        raise MissingBackendError("channel pruning needs torch-pruning: pip install "
                                  "'edgekit[torch]' (or 'torch-pruning>=1.6,<1.7')") from exc
    return tp


def prunable_types() -> tuple[type, ...]:
    from torch import nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def is_prunable_layer(module: Any) -> bool:
    return isinstance(module, prunable_types())


def build_graph(model: torch.nn.Module, example: torch.Tensor) -> Any:
    from edgekit.pruning.config import PruningError

    tp = torch_pruning()
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except (ZeroDivisionError, IndexError, RuntimeError, ValueError) as exc:
        raise PruningError(
            f"torch-pruning cannot map the channels of this model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'in its reshape index mapping'}); "
            "a functional channel shuffle or reshape of the channel axis does this: put it in "
            "a module whose class name contains 'Shuffle' (edgekit then leaves its channels "
            "whole)") from exc


def _is_shuffle(module: torch.nn.Module) -> bool:
    """A leaf module named like a shuffle (not a unit or a network that merely is)."""
    return "shuffle" in type(module).__name__.lower() and not any(module.children()) \
        and not any(True for _ in module.parameters(recurse=False))


@contextlib.contextmanager
def opaque_shuffles(model: torch.nn.Module) -> Iterator[int]:
    """While tracing and pruning, each channel-shuffle module (class name containing
    "Shuffle", e.g. edgekit's ChannelShuffle, torch's nn.ChannelShuffle) forwards through
    one marker op of the same shape: torch-pruning cannot map a shuffle's reshape +
    transpose (ShuffleNetV2 makes its index mapping divide by zero), and every group that
    reaches the marker is left whole (``exclusions``). Yields how many were replaced."""
    import torch

    class ShuffleMarker(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            return x.clone()

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            return grad

    shuffles = [m for m in model.modules() if _is_shuffle(m)]
    for m in shuffles:
        m.forward = ShuffleMarker.apply  # instance attribute shadows the class's forward
    try:
        yield len(shuffles)
    finally:
        for m in shuffles:
            del m.forward


def exclusions(model: torch.nn.Module, example: torch.Tensor,
               ignored: Iterable[str] = ()) -> dict[str, str]:
    """Layer name -> why its output channels are not pruned (see the module docstring)."""
    tp = torch_pruning()
    names = {m: n for n, m in model.named_modules()}
    modules = dict(model.named_modules())
    reasons: dict[str, str] = {}
    for name in ignored:
        if name not in modules:
            from edgekit.core.errors import InvalidInputError

            raise InvalidInputError(f"ignored layer {name!r} is not a module of the model")
        reasons[name] = "named by the caller"
    for name in owned_layers(model):
        reasons[name] = "thinned by its unit (edgekit.pruning.inner)"
    for name in output_layers(model, example):
        reasons.setdefault(name, "its channels are the model's outputs (classifier / "
                                 "prediction head)")
    graph = build_graph(model, example)
    for root, group in iter_groups(graph, names, ignored=()):
        if isinstance(group, Exception):
            reasons.setdefault(names[root], "torch-pruning cannot trace its channel group "
                               f"({type(group).__name__} in its index mapping)")
            continue
        reason = _group_reason(group, tp)
        if reason is None:
            continue
        for dep, _ in group:
            module = dep.target.module
            if (graph.is_out_channel_pruning_fn(dep.handler)
                    and isinstance(module, prunable_types()) and module in names):
                reasons.setdefault(names[module], reason)
    reasons.update(broken_groups(model, example, skip=reasons))
    return reasons


def broken_groups(model: torch.nn.Module, example: torch.Tensor,
                  skip: Iterable[str]) -> dict[str, str]:
    """Groups torch-pruning maps wrongly, found by trial: on a copy, one channel of each
    group is removed (one from each equal part of a group with grouped convs, as
    torch-pruning removes them) and the copy run; a group after which it no longer runs is
    left whole (ESPNet's concatenation of a residual chain with its own input is one)."""
    import copy

    import torch

    skipped, probed, reasons = set(skip), set(), {}
    while True:
        trial = copy.deepcopy(model).eval()
        names = {m: n for n, m in trial.named_modules()}
        graph = build_graph(trial, example)
        ignored = [m for m, n in names.items() if n in skipped]
        failed = False
        for root, group in iter_groups(graph, names, ignored=ignored):
            name = names.get(root)
            if name is None or name in probed or isinstance(group, Exception):
                continue
            probed.add(name)
            channels = graph.get_out_channels(root) or 0
            groups = _channel_groups(graph, group)
            if channels // groups < 2:
                continue
            idxs = [g * (channels // groups) for g in range(groups)]
            try:
                graph.get_pruning_group(root, group[0].dep.handler, idxs).prune()
                with torch.no_grad():
                    trial(example)
            except Exception as exc:  # any failure means the mapping was wrong
                reasons[name] = ("torch-pruning maps its channels inconsistently (removing "
                                 f"one breaks the forward pass: {type(exc).__name__})")
                skipped.add(name)
                failed = True
                break
        if not failed:
            return reasons


def _channel_groups(graph: Any, group: Any) -> int:
    """The equal parts a group's channels are removed from, as torch-pruning counts them:
    the most groups of a grouped (not depthwise) conv whose outputs are in the group."""
    counts = [1]
    for dep, _ in group:
        module = dep.target.module
        groups = getattr(module, "groups", 1)
        if (graph.is_out_channel_pruning_fn(dep.handler) and groups > 1
                and groups != getattr(module, "out_channels", groups)):
            counts.append(groups)
    return max(counts)


def iter_groups(graph: Any, names: dict[Any, str], ignored: Iterable[Any]) -> Iterator[
        tuple[Any, Any]]:
    """(root layer, its full output-channel group) per group, as torch-pruning's
    ``get_all_groups`` makes them, but (root, exception) where the group cannot be built
    (its split/concat index mapping fails on some patterns) instead of stopping."""
    skip = set(ignored)
    visited: set[Any] = set()
    for module in list(graph.module2node):
        if module in skip or module in visited or not isinstance(module, prunable_types()):
            continue
        pruner = graph.get_pruner_of_module(module)
        channels = pruner.get_out_channels(module) if pruner is not None else None
        if channels is None:
            continue
        try:
            group = graph.get_pruning_group(module, pruner.prune_out_channels,
                                            list(range(channels)))
        except Exception as exc:  # torch-pruning's index mapping raising on a pattern
            yield module, exc
            continue
        targets = [dep.target.module for dep, _ in group
                   if graph.is_out_channel_pruning_fn(dep.handler)]
        visited.update(targets)
        if not any(t in skip for t in targets):
            yield module, group


def mistaken_for_depthwise(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Grouped convs with one output channel per group but several inputs: torch-pruning
    takes a conv with ``groups == out_channels`` for a depthwise one and maps its input
    channels 1:1 onto its outputs, out of bounds (a 32 -> 48 conv in 16 groups pruned to
    16 outputs is one)."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1
            and m.groups == m.out_channels != m.in_channels]


def output_layers(model: torch.nn.Module, example: torch.Tensor) -> list[str]:
    """Conv/Linear layers whose output tensor is itself a model output (torch-pruning adds
    no output node after them, so nothing else marks them)."""
    produced: list[tuple[Any, str]] = []  # the tensors themselves: ids of freed ones recur

    def record(name: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            produced.append((output, name))
        return hook

    out = _forward_hooked(model, example, record)
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [name for o in outs for t, name in produced if t is o]


def _forward_hooked(model: torch.nn.Module, example: torch.Tensor,
                    make_hook: Callable[[str], Any]) -> Any:
    """One eval-mode, no-grad forward with ``make_hook(name)`` on every Conv/Linear; the
    model's mode is restored and the hooks removed afterwards."""
    import torch

    hooks = [m.register_forward_hook(make_hook(name)) for name, m in model.named_modules()
             if isinstance(m, prunable_types())]
    was = model.training
    try:
        with torch.no_grad():
            return model.eval()(example)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()


def _group_reason(group: Any, tp: Any) -> str | None:
    for dep, _ in group:
        module = dep.target.module
        if isinstance(module, tp.ops._OutputOp):
            return "its channels are the model's outputs (classifier / prediction head)"
    for dep, _ in group:
        module = dep.target.module
        if isinstance(module, tp.ops._ElementWiseOp):
            op = str(module._grad_fn).lower()
            if any(s in op for s in _SHUFFLE_OPS):
                return (f"its channels pass through a channel shuffle ({module._grad_fn}), "
                        "whose index mapping torch-pruning does not model")
    return None


def layer_modules(model: torch.nn.Module, names: Iterable[str]) -> list[torch.nn.Module]:
    modules = dict(model.named_modules())
    return [modules[n] for n in names if n in modules]
