"""Shared test set-up: one intra-op thread per pytest-xdist worker (2 workers, 2 cores)."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_worker():
    if "torch" in sys.modules or _importable("torch"):
        import torch

        torch.set_num_threads(1)
    yield


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
