"""Helpers for the model-zoo tests: the small-input variant of every registered model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from edgekit.models import create_model, get_model_spec  # noqa: E402


def _small_model(name: str):
    """The cheap variant each family is trained with: 1 channel, 28 px (64 px for segmentation)."""
    spec = get_model_spec(name)
    classes = 11 if spec.task == "segmentation" else 10
    size = max(spec.small_input_size, spec.min_input_size)
    return create_model(name, num_classes=classes, in_channels=1, input_size=size)


@pytest.fixture
def small_model():
    return _small_model
