"""The model zoo: light-weight CNN families registered by name.

>>> from edgekit.models import create_model, list_models
>>> m = create_model("mobilenet_v2", num_classes=10, in_channels=1, input_size=28)
>>> list_models("*mobile*")[:2]
['mobilenet_v1', 'mobilenet_v2']

Importing this package imports torch (the families are torch modules); ``import
edgekit`` does not import it.
"""

from __future__ import annotations

from edgekit.models import (
    espnet,
    espnetv2,
    lenet,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    shufflenet_v1,
    shufflenet_v2,
    squeezenet,
)
from edgekit.models.lowbit import bireal as lowbit_bireal
from edgekit.models.lowbit import nets as lowbit_nets
from edgekit.models.registry import (
    ModelSpec,
    count_macs,
    count_params,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)

# The families of the zoo: each module registers its variants (``@register_model``) when
# imported, and this package imports every one of them, so the registry is full as soon as
# any part of ``edgekit.models`` is imported. A new family adds one line here.
FAMILIES = (mobilenet_v1, mobilenet_v2, mobilenet_v3, shufflenet_v1, shufflenet_v2, squeezenet,
            espnet, espnetv2, lenet, lowbit_nets, lowbit_bireal)

__all__ = [
    "FAMILIES",
    "ModelSpec",
    "count_macs",
    "count_params",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
]
