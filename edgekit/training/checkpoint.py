"""Checkpoints: ``DIR/model.safetensors`` + ``DIR/config.json``, written atomically.

config.json records how to rebuild the model (``model.edgekit_config``, the keywords of
``create_model``), its metrics, the versions that wrote it and the weights' SHA-256.
The safetensors header carries the model config too, so a lone ``.safetensors`` file
still loads. Weights are never unpickled: safetensors, or ``torch.load(weights_only=True)``
for a plain state-dict ``.pt``.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import CheckpointError, EdgekitError
from edgekit.core.io import atomic_path, sha256_file

if TYPE_CHECKING:
    import torch

FORMAT = "edgekit-checkpoint"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")  # torch.save'd state dicts
_META_KEY = "edgekit_model"  # safetensors header entry holding the model config (JSON)


def check_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Fail early unless ``out_dir`` is new, empty, or an earlier checkpoint (replaced whole)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and _read_config(out / CONFIG, quiet=True) is None:
        raise CheckpointError(f"{out}: directory is not empty and holds no edgekit checkpoint; "
                              "refusing to replace it")
    return out


def save_checkpoint(model: torch.nn.Module, out_dir: str | os.PathLike[str], *,
                    metrics: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir`` (model.safetensors + config.json); it appears complete or not at all."""
    import torch
    from safetensors.torch import save_file

    from edgekit import __version__

    model_config = getattr(model, "edgekit_config", None)
    if not isinstance(model_config, Mapping) or "name" not in model_config:
        raise CheckpointError("model has no edgekit_config (build it with edgekit.create_model, "
                              "or set model.edgekit_config to the create_model keywords)")
    try:
        model_json = json.dumps(dict(model_config), sort_keys=True)
        json.dumps({"metrics": metrics, "extra": extra})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model config, metrics and extra must be JSON-able ({exc})") \
            from None
    out = check_output_dir(out_dir)
    tensors = {}
    for key, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state-dict entry {key!r} is not a tensor "
                                  f"({type(value).__name__}); it cannot go into safetensors")
        # clone: tied weights share storage, which safetensors refuses to write
        tensors[key] = value.detach().to("cpu").contiguous().clone()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_file(tensors, tmp / WEIGHTS, metadata={"format": FORMAT, _META_KEY: model_json})
        config = {
            "format": FORMAT,
            "version": VERSION,
            "model": json.loads(model_json),
            "metrics": dict(metrics) if metrics is not None else None,
            "extra": dict(extra) if extra is not None else None,
            "edgekit_version": __version__,
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "sha256": {WEIGHTS: sha256_file(tmp / WEIGHTS)},
        }
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


def load_checkpoint(path: str | os.PathLike[str], *,
                    config: Mapping[str, Any] | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of a checkpoint directory, ``.safetensors`` or state-dict ``.pt``.

    ``config`` (a checkpoint config or just the model's ``edgekit_config``) is needed for a
    ``.pt`` file or a safetensors file that carries no model config. Returns the model in
    eval mode and the checkpoint config.
    """
    weights, stored = _resolve_weights(Path(path))
    state, header_config = _read_state(weights)
    full = _choose_config(weights, config, stored, header_config)
    model = _build(weights, full["model"])
    _load_state(model, state, weights)
    model.eval()
    return model, full


def load_weights(model: torch.nn.Module, path: str | os.PathLike[str]) -> dict | None:
    """Load weights into ``model``, the user's own module: an edgekit checkpoint directory,
    a ``.safetensors`` file or a PyTorch state dict (``.pt``/``.pth``/``.bin``, read with
    ``torch.load(weights_only=True)``, never unpickled otherwise).

    Keys saved from a ``DataParallel``/DDP wrapper (``module.`` prefix) are accepted. Keys or
    shapes that do not fit raise one CheckpointError naming the first few of each kind.
    Returns the checkpoint config when there is one.
    """
    weights, stored = _resolve_weights(Path(path))
    state, _ = _read_state(weights)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    _load_state(model, state, weights)
    return stored


def check_weights(path: str | os.PathLike[str]) -> None:
    """Raise CheckpointError unless ``path`` reads as weights: before any work starts."""
    weights, _ = _resolve_weights(Path(path))
    _read_state(weights)


def save_weights(model: torch.nn.Module, path: str | os.PathLike[str]) -> Path:
    """The state dict of ``model`` as one ``.safetensors`` file, written atomically (for
    modules that are not in the zoo, which a checkpoint cannot rebuild by name)."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone()
               for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    out = Path(path)
    with atomic_path(out) as tmp:
        save_file(tensors, tmp, metadata={"format": "edgekit-weights"})
    return out


def is_zoo_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` says which zoo model it holds: a checkpoint folder, or a
    ``.safetensors`` file whose header carries the model config (``save_checkpoint``'s)."""
    path = Path(path)
    if path.is_dir():
        return True
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    from safetensors import SafetensorError, safe_open

    try:  # the header only: the tensors are read once, by the loader
        with safe_open(str(path), framework="pt") as f:
            return _META_KEY in (f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None


def _resolve_weights(path: Path) -> tuple[Path, dict | None]:
    """The weights file of ``path`` and its checked config.json, when one describes it."""
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    weights = path / WEIGHTS if path.is_dir() else path
    if not weights.is_file():
        raise CheckpointError(f"{path}: no {WEIGHTS} in the checkpoint directory")
    if weights.suffix not in (*STATE_DICT_SUFFIXES, ".safetensors"):
        raise CheckpointError(f"{weights}: unknown weights format (expected .safetensors, "
                              f"{', '.join(STATE_DICT_SUFFIXES)} or an edgekit checkpoint "
                              "folder)")
    stored = _read_config(weights.parent / CONFIG)
    if stored is not None and weights.name not in stored.get("sha256", {}):
        stored = None  # a config.json beside some other weights file
    if stored is not None:
        digest = sha256_file(weights)
        if digest != stored["sha256"][weights.name]:
            raise CheckpointError(f"{weights}: SHA-256 does not match {CONFIG} (file changed "
                                  "or corrupt)")
    return weights, stored


def _read_state(weights: Path) -> tuple[dict, dict | None]:
    if weights.suffix in STATE_DICT_SUFFIXES:
        return _load_state_dict_pt(weights), None
    return _load_safetensors(weights)


def _read_config(path: Path, *, quiet: bool = False) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ok = (isinstance(data, dict) and data.get("format") == FORMAT
              and isinstance(data.get("model"), dict) and isinstance(data.get("sha256"), dict))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if quiet:
            return None
        raise CheckpointError(f"{path}: unreadable checkpoint config ({exc})") from None
    if not ok:
        if quiet:
            return None
        raise CheckpointError(f"{path}: not an edgekit checkpoint config")
    if data.get("version") != VERSION:
        if quiet:
            return None
        raise CheckpointError(f"{path}: checkpoint version {data.get('version')!r} is not "
                              f"supported (this edgekit reads version {VERSION})")
    return data


def _load_safetensors(path: Path) -> tuple[dict, dict | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({exc})") from None
    header_config = None
    if _META_KEY in meta:
        try:
            header_config = json.loads(meta[_META_KEY])
        except ValueError:
            raise CheckpointError(f"{path}: unreadable model config in the header") from None
    return state, header_config


_NOT_WEIGHTS = "not an edgekit checkpoint, safetensors file or PyTorch state dict"
# torch.save writes a zip archive (PyTorch >= 1.6) or, legacy, a pickle (protocol byte 0x80)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _load_state_dict_pt(path: Path) -> dict:
    """The state dict in a torch.save file, read with weights_only=True. torch's own
    messages are never passed on: they advise weights_only=False, which runs any code the
    file holds."""
    import re

    import torch

    with open(path, "rb") as f:
        if not f.read(4).startswith(_TORCH_MAGIC):
            raise CheckpointError(f"{path}: {_NOT_WEIGHTS} (no torch.save header)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's parsers raise anything (KeyError, IndexError...) on junk
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:
            raise CheckpointError(
                f"{path}: holds a pickled {found.group(1)} (a Python object such as a whole "
                "model, not plain weights), which edgekit does not unpickle; save "
                "model.state_dict() instead (torch.save(model.state_dict(), path), or "
                "safetensors)") from None
        raise CheckpointError(f"{path}: {_NOT_WEIGHTS} (torch.load with weights_only=True "
                              f"failed: {type(exc).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # common {"state_dict": ..., "epoch": ...} wrapper
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def _choose_config(weights: Path, given: Mapping[str, Any] | None, stored: dict | None,
                   header: dict | None) -> dict:
    if given is not None:
        model_config = given.get("model") if isinstance(given.get("model"), Mapping) else given
        base = dict(given) if "model" in given else {}
        return {"format": FORMAT, "version": VERSION, "metrics": None, **base,
                "model": dict(model_config)}
    if stored is not None:
        return stored
    if header is not None:
        return {"format": FORMAT, "version": VERSION, "model": header, "metrics": None}
    raise CheckpointError(f"{weights}: no model config (no {CONFIG} beside it and none in the "
                          "file); pass config= with the model's edgekit_config")


def _build(weights: Path, model_config: Mapping[str, Any]):
    from edgekit.models import create_model

    try:
        return create_model(**model_config)
    except EdgekitError as exc:
        raise CheckpointError(f"{weights}: cannot rebuild model: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(f"{weights}: model config does not fit create_model ({exc})") \
            from None


def _load_state(model, state: dict, weights: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(k for k in set(expected) & set(state)
                       if tuple(expected[k].shape) != tuple(state[k].shape))
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected),
                        ("wrong shape", misshapen)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        name = getattr(model, "edgekit_config", {}).get("name", type(model).__name__)
        raise CheckpointError(f"{weights}: weights do not fit the model ({name}); "
                              + "; ".join(problems))
    model.load_state_dict(state, strict=True)
