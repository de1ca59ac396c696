"""Training on several processes with PyTorch's own engine: torchrun + DistributedDataParallel.

``torchrun --nproc_per_node N -m edgekit train|compress ...`` starts N processes; each calls
``init_from_env()`` (gloo on CPU, nccl on CUDA, a timeout so a dead rank ends the others
with an error instead of a hang). ``train`` then wraps the model in DDP and gives each rank
its share of every epoch's batches. ``TrainConfig.batch_size`` stays the *global* batch:
each of N processes takes ``batch_size // N`` samples per step, so the learning rate and
the number of steps per epoch mean what they mean on one process. Multi-node runs use
torchrun's own rendezvous flags (``--nnodes``, ``--rdzv-endpoint``, ...).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from edgekit.core.errors import EdgekitError, InvalidInputError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
# A rank that dies leaves the others waiting in a collective; after this they fail.
TIMEOUT_S = float(os.environ.get("EDGEKIT_DIST_TIMEOUT_S", "600"))


def launched() -> bool:
    """Whether torchrun (or another launcher setting RANK/WORLD_SIZE) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> None:
    """Join the process group torchrun describes; nothing on a single process."""
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    import torch

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=_dt.timedelta(seconds=TIMEOUT_S))


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch without distributed support
        return 0, 1
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        import torch.distributed as dist

        dist.barrier()


def shard(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, int]:
    """This rank's part of an epoch's sample order and its per-process batch size.

    Every rank draws the same order (same seed); rank r takes every N-th sample from r,
    after the order is cut to a multiple of N so that all ranks take the same number of
    steps (a rank with one step more would wait for the others' gradients forever)."""
    rank, size = world()
    if size == 1:
        return order, batch_size
    if batch_size < size:
        raise InvalidInputError(f"the global batch size {batch_size} is smaller than the "
                                f"{size} processes; each needs at least one sample per step")
    usable = len(order) - len(order) % size
    return order[:usable][rank::size], batch_size // size


def wrap(model: torch.nn.Module, *, sync_batchnorm: bool = False) -> torch.nn.Module:
    """The model as DDP trains it (the model itself on one process). DDP copies rank 0's
    parameters and buffers to every rank here, so nncf quantizer scales calibrated on each
    rank start identical."""
    if world()[1] == 1:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def sync_buffers(model: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics, observer ranges) on every rank: each rank
    updated its own copy in its last forward, and validation must see one model."""
    if world()[1] == 1:
        return
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def plain_batchnorm(model: torch.nn.Module) -> None:
    """Undo ``convert_sync_batchnorm`` in place (same parameters and statistics), so the
    trained model exports as it was built."""
    import torch

    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.SyncBatchNorm):
            plain = torch.nn.BatchNorm2d(child.num_features, child.eps, child.momentum,
                                         child.affine, child.track_running_stats)
            plain.load_state_dict(child.state_dict())
            plain.train(child.training)
            setattr(model, name, plain)
        else:
            plain_batchnorm(child)


def mean_over_ranks(value: float) -> float:
    if world()[1] == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world()[1]


def check_same(text: str, what: str) -> None:
    """Every rank must have been started with the same ``text`` (e.g. the recipe)."""
    size = world()[1]
    if size == 1:
        return
    import torch.distributed as dist

    digests: list[Any] = [None] * size
    dist.all_gather_object(digests, hashlib.sha256(text.encode()).hexdigest())
    if len(set(digests)) > 1:
        odd = [r for r, d in enumerate(digests) if d != digests[0]]
        raise InvalidInputError(f"the {size} processes disagree on the {what} (ranks "
                                f"{odd} differ from rank 0): start them with the same "
                                "arguments")


def from_main(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0, its result on every rank (an EdgekitError raised there is raised
    on every rank, so none waits for a rank that stopped)."""
    size = world()[1]
    if size == 1:
        return fn()
    import torch.distributed as dist

    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except EdgekitError as exc:
            box[0] = ("error", exc)
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def state_digest(model: torch.nn.Module, *, names: str = "") -> str:
    """A hash of the model's tensors whose names contain ``names`` (all by default)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if names in name and isinstance(tensor, torch.Tensor):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1)
                          .view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def same_on_every_rank(digest: str) -> bool:
    size = world()[1]
    if size == 1:
        return True
    import torch.distributed as dist

    digests: list[Any] = [None] * size
    dist.all_gather_object(digests, digest)
    return len(set(digests)) == 1
