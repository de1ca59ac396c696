"""Models that are not in the zoo: the user's own factory, named as ``path/to/file.py:factory``
or ``package.module:factory`` (what ``edgekit compress --model`` takes besides zoo names).

Loading a factory **imports and runs the user's code**, as ``python file.py`` would: only
name files you trust. A user's module is never re-created by name later; what is recorded
about it (``describe_module``) is its class and where it came from.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import EdgekitError, InvalidInputError, first_line

if TYPE_CHECKING:
    import torch


def is_factory_spec(spec: str) -> bool:
    """``file.py:factory`` or ``pkg.module:factory`` (zoo names have no colon)."""
    return ":" in spec


def load_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``spec``; one-line InvalidInputError for every way it can fail."""
    source, _, attr = spec.rpartition(":")  # rpartition: a Windows path has a drive colon
    if not source or not attr.isidentifier():
        raise InvalidInputError(f"--model {spec!r}: expected path/to/file.py:factory or "
                                "package.module:factory")
    module = _import_file(Path(source)) if source.endswith(".py") else _import_module(source)
    factory = getattr(module, attr, None)
    if factory is None:
        raise InvalidInputError(f"--model {spec!r}: {source} has no attribute {attr!r}")
    if not callable(factory):
        raise InvalidInputError(f"--model {spec!r}: {attr} is a {type(factory).__name__}, "
                                "not a callable that returns a torch.nn.Module")
    return factory


def build_user_model(spec: str, model_args: dict[str, Any] | None = None) -> torch.nn.Module:
    """Call the factory ``spec`` names with ``model_args`` and check it returns a module."""
    import torch

    factory = load_factory(spec)
    try:
        model = factory(**(model_args or {}))
    except EdgekitError:
        raise
    except Exception as exc:  # the user's code may raise anything; say where it came from
        raise InvalidInputError(f"--model {spec!r}: the factory raised "
                                f"{type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"--model {spec!r}: the factory returned a "
                                f"{type(model).__name__}, not a torch.nn.Module")
    return model


def describe_module(model: torch.nn.Module, *, source: str | None = None,
                    model_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the manifest records about a user's module: its class, source and size."""
    cls = type(model)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "source": source,
            "model_args": dict(model_args or {}),
            "parameters": int(sum(p.numel() for p in model.parameters()))}


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or whatever the module raises while it runs
        raise InvalidInputError(f"cannot import {name}: {type(exc).__name__}: "
                                f"{first_line(exc)}") from exc


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such Python file")
    # a unique, stable module name: dataclasses and pickling look classes up in sys.modules
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"edgekit_user_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInputError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the file may import modules that sit beside it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise InvalidInputError(f"{path}: importing it raised {type(exc).__name__}: "
                                f"{first_line(exc)}") from exc
    finally:
        sys.path.remove(folder)
    return module
