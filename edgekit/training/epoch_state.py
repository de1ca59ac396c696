"""Epoch checkpoints: a training run killed mid-way resumes at its last finished epoch.

Everything the next epoch depends on is saved after each epoch — weights and buffers,
optimizer and schedule state, the numpy generator that orders the batches, torch's RNG
(dropout), the best weights so far and the history — so the resumed run computes exactly
what the uninterrupted one would have. The file is this process's own, written atomically
and read back with ``weights_only=True``; a checkpoint of another run (other config, data
size or parameters) is ignored, never loaded into the wrong model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

    from edgekit.training.config import TrainConfig, TrainResult

FORMAT = "edgekit-epoch-state-1"


def fingerprint(cfg: TrainConfig, model: torch.nn.Module, samples: int) -> str:
    """What must be equal for a checkpoint to continue this run."""
    shapes = [(name, tuple(t.shape)) for name, t in model.state_dict().items()
              if hasattr(t, "shape")]
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "progress"}
    text = json.dumps([options, samples, shapes], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save(path: str | Path, *, key: str, epoch: int, model: torch.nn.Module, optimizer: Any,
         scheduler: Any, rng: Any, best_state: dict[str, Any] | None, result: TrainResult,
         stale: int) -> None:
    import torch

    state = {
        "format": FORMAT, "key": key, "epoch": epoch, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
        "best_state": best_state, "result": json.dumps(dataclasses.asdict(result)),
        "stale": stale,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: str | Path, key: str) -> dict[str, Any] | None:
    """The saved state when ``path`` holds this run's checkpoint, else None."""
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start the epochs again rather than fail
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("key") != key:
        return None
    return state


def restore(state: dict[str, Any], *, model: torch.nn.Module, optimizer: Any, scheduler: Any,
            rng: Any, result: TrainResult) -> tuple[dict[str, Any] | None, int]:
    """Put the saved state back; (best weights so far, epochs without improvement)."""
    import torch

    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng.bit_generator.state = json.loads(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    for name, value in json.loads(state["result"]).items():
        setattr(result, name, value)
    return state["best_state"], int(state["stale"])
