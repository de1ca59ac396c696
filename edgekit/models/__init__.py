"""The model zoo: light-weight CNN families registered by name.

>>> from edgekit.models import create_model, list_models
>>> m = create_model("mobilenet_v2", num_classes=10, in_channels=1, input_size=28)
>>> list_models("*mobile*")[:2]
['mobilenet_v1', 'mobilenet_v2']

Importing this package imports torch (the families are torch modules); ``import
edgekit`` does not import it.
"""

from __future__ import annotations

# Importing each family module registers its variants.
from edgekit.models import (  # noqa: F401
    espnet,
    espnetv2,
    lenet,
    lowbit,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    shufflenet_v1,
    shufflenet_v2,
    squeezenet,
)
from edgekit.models.registry import (
    ModelSpec,
    count_macs,
    count_params,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)

__all__ = [
    "ModelSpec",
    "count_macs",
    "count_params",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
]
