"""Training (``loop``, options in ``config``, losses in ``losses``), evaluation
(``evaluate``), checkpoints (``checkpoint``) and the statistics that compare two models on
one test set (``compare``)."""

from edgekit.training.config import TrainConfig, TrainResult
from edgekit.training.evaluate import classes_of, evaluate, predict, predicted_classes, score
from edgekit.training.loop import train
from edgekit.training.losses import class_weights_for, enet_class_weights

__all__ = ["TrainConfig", "TrainResult", "class_weights_for", "classes_of", "enet_class_weights",
           "evaluate", "predict", "predicted_classes", "score", "train"]
