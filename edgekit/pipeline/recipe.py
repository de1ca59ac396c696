"""The compression recipe: every choice of `edgekit compress` as one typed, printable value.

A recipe is plain data (a dataclass, or a TOML file with the same keys) so that the manifest
of every output records exactly what was done, and a run can be repeated from it.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.core.errors import InvalidInputError
from edgekit.core.registry import close_names

if TYPE_CHECKING:
    from edgekit.calibration import Preprocess

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (JetPack 6)
    import tomli as tomllib

# edgekit.quantization.rounding.ROUNDING_METHODS, named here so that reading a recipe (the
# board's CLI does) imports no torch
PTQ_ROUNDINGS = ("nearest", "gptq")
PTQ_RANGES = ("auto", "minmax", "mean-minmax", "percentile", "mse")  # quantization.ranges
PRECISIONS = ("int8", "fp16", "fp32")
# what a value of each annotated type may be (TOML gives int where a float is meant, the API
# may give a Path for a file); bool is an int to Python but never a number here
_ACCEPTED: dict[type, tuple[type, ...]] = {
    bool: (bool,), int: (numbers.Integral,), float: (numbers.Real,), str: (str, os.PathLike),
    dict: (dict,), list: (list, tuple)}
DEFAULT_EPOCHS = 5  # fp32 training epochs when no weights are given


@dataclass
class CompressRecipe:
    """What `edgekit compress` does; the defaults are the embedded demo (mnist5k)."""

    # a zoo name, or the user's factory: path/to/file.py:factory or package.module:factory
    model: str = "mobilenet_v2"
    model_args: dict[str, Any] = field(default_factory=dict)
    # a model returning a tuple or dict: the classification output to deploy (a dict key, a
    # tuple index); None: a tuple's first element, a dict's "logits" or "out"
    output_key: str | None = None
    data: str = "mnist5k"
    # an edgekit checkpoint, a .safetensors file or a state-dict .pt/.pth; None: train
    weights: str | None = None
    train_limit: int | None = None  # use only the first N training samples (quick trials)
    # fp32 training epochs; None: 0 with weights (nothing is retrained), else DEFAULT_EPOCHS
    epochs: int | None = None
    lr: float = 3e-3  # Adam, cosine schedule (edgekit.training defaults)
    batch_size: int = 64
    # None: the best the target runs: int8, else fp16 on TensorRT (no QAT), else fp32
    precision: str | None = None
    qat_epochs: int = 2  # 0 = post-training quantization only
    # 1e-3 undid calibration in QAT's first epoch; 1e-4 kept held-out int8 close to fp32
    # in every run (benchmarks/qat_recipe.py; figures in docs/results.md)
    qat_lr: float = 1e-4
    calibration_size: int = 300
    # post-training weight rounding before the target's quantizer (QAT starts from it too):
    # "nearest" (plain min-max PTQ) or "gptq" (by layer-output error), and bias correction
    # (edgekit.quantization.rounding)
    ptq_rounding: str = "gptq"
    ptq_bias_correction: bool = True
    # the precision plan (int8 targets on TensorRT and onnxruntime): layers (module paths)
    # whose weights stay float, and/or the largest drop of the validation metric (pp) the
    # plan may cost, layers reverted to float until it holds (edgekit.pipeline.precision)
    keep_float: list[str] = field(default_factory=list)
    max_drop: float | None = None
    # PTQ's activation ranges (edgekit.quantization.ranges): "auto" tries each setting on
    # part of the calibration inputs and keeps the best on the rest; QAT starts from the
    # backend's own ranges
    ptq_ranges: str = "auto"
    # structured pruning after fp32 training, before QAT (edgekit.pruning): "channel:R"
    # keeps a share R of the MACs; "2:4" sparsity (TensorRT on Ampere+/Orin targets only)
    prune: str | None = None
    sparsity: str | None = None
    prune_epochs: int = 2  # fine-tuning epochs after each of them, distilled from the dense
    # 3e-3 (the fp32 rate): 1e-3 left MobileNetV2 at 50% MACs well further from its dense
    # model after the same epochs (docs/results.md, structured pruning)
    prune_lr: float = 3e-3
    # weight of the distillation term in channel pruning's fine-tuning; SqueezeNet 1.1 (no
    # BatchNorm, slow at its 3e-4 rate) did better at 0.9, the other families at 0.5
    # (benchmarks/pruning.py; figures in docs/pruning.md, docs/results.md)
    prune_distill: float = 0.5
    bench_runs: int = 200
    bench_threads: int = 1
    bench_power: str = "auto"
    # also export and benchmark the fp32 model, for the size and speed comparison
    fp32_baseline: bool = True
    seed: int = 0
    # torch threads for training and QAT; None: the CPUs this process may use (affinity,
    # cgroup quota), shared out among the processes of a torchrun launch
    threads: int | None = None
    sync_batchnorm: bool = False  # under torchrun: fp32 BatchNorm statistics over all ranks
    # preprocessing, applied alike in training, calibration, QAT and verification, and
    # recorded in the manifest and the deployed files (edgekit.calibration.Preprocess);
    # ``preprocess`` names a preset ("imagenet") that fills the fields below left unset
    preprocess: str | None = None
    input_size: int | None = None
    resize: str = "centre-crop"
    crop_fraction: float | None = None  # None: the whole short side (centre-crop only)
    mean: list[float] | None = None
    std: list[float] | None = None
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        self._check_types()
        if self.precision is not None and self.precision not in PRECISIONS:
            raise InvalidInputError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
            )
        for name in ("epochs", "qat_epochs", "prune_epochs"):
            if (getattr(self, name) or 0) < 0:
                raise InvalidInputError(f"{name} must be >= 0")
        if self.ptq_rounding not in PTQ_ROUNDINGS:
            raise InvalidInputError(f"ptq_rounding must be one of {', '.join(PTQ_ROUNDINGS)}"
                                    f", not {self.ptq_rounding!r}")
        if self.max_drop is not None and not self.max_drop >= 0:
            raise InvalidInputError(f"max_drop must be >= 0 percentage points, got "
                                    f"{self.max_drop}")
        if not all(m.strip(".") for m in self.keep_float):
            raise InvalidInputError(f"keep_float takes module paths, got {self.keep_float!r}")
        if self.ptq_ranges not in PTQ_RANGES:
            raise InvalidInputError(f"ptq_ranges must be one of {', '.join(PTQ_RANGES)}"
                                    f", not {self.ptq_ranges!r}")
        if not 0 <= self.prune_distill <= 1:
            raise InvalidInputError(f"prune_distill must be in [0, 1], got {self.prune_distill}")
        if self.train_limit is not None and self.train_limit < 1:
            raise InvalidInputError("train_limit must be >= 1")
        for name in ("batch_size", "calibration_size", "bench_runs", "bench_threads"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise InvalidInputError("threads must be >= 1")
        self._expand_preset()
        self.preprocessing()  # a bad mean/std/resize fails here, before any work
        self._check_pruning()
        if self.bench_power not in ("auto", "none"):
            from edgekit.devices.power import SAMPLERS

            SAMPLERS.get(self.bench_power)  # an unknown name fails now, not after training

    def _check_types(self) -> None:
        """Every field of its annotated kind (a TOML ``lr = "high"`` is refused here, not
        deep inside a run)."""
        for name, kinds in _field_kinds().items():
            value = getattr(self, name)
            if not any(_is_kind(value, kind) for kind in kinds):
                raise InvalidInputError(f"recipe key {name} takes "
                                        f"{' or '.join(map(_kind_name, kinds))}, got {value!r}")

    def _expand_preset(self) -> None:
        """The ``preprocess`` preset's values in the fields the recipe left unset (explicit
        values win), so the manifest records what was applied."""
        if self.preprocess is None:
            return
        from edgekit.calibration.preprocess import PRESETS

        if self.preprocess not in PRESETS:
            raise InvalidInputError(f"preprocess must be one of {', '.join(PRESETS)}, not "
                                    f"{self.preprocess!r}")
        for name, value in PRESETS[self.preprocess].items():
            if name == "crop_fraction" and self.resize != "centre-crop":
                continue  # a letterbox asked for keeps the whole image
            if getattr(self, name) is None:
                setattr(self, name, value)

    def _check_pruning(self) -> None:
        from edgekit.pruning import ChannelPruneConfig, SparsityConfig

        if self.prune is not None:
            ChannelPruneConfig.parse(self.prune)
        if self.sparsity is not None:
            SparsityConfig.parse(self.sparsity)

    @property
    def train_epochs(self) -> int:
        """The fp32 epochs this recipe trains: ``epochs``, or its default."""
        if self.epochs is not None:
            return self.epochs
        return 0 if self.weights else DEFAULT_EPOCHS

    def check_start(self, *, module_given: bool) -> None:
        """A recipe that trains nothing needs weights to start from: ``weights=``, or a
        module in memory, which holds its own (zoo names and factories build new ones)."""
        if self.epochs == 0 and self.weights is None and not module_given:
            raise InvalidInputError("epochs=0 needs weights= (nothing to start from; a "
                                    "torch.nn.Module passed as the model is taken as it is)")

    def preprocessing(self) -> Preprocess | None:
        """The recipe's preprocessing, or None when it asks for none (the data as stored)."""
        from edgekit.calibration import Preprocess

        fraction = 1.0 if self.crop_fraction is None else self.crop_fraction
        pre = Preprocess(input_size=self.input_size, resize=self.resize, crop_fraction=fraction,
                         mean=tuple(self.mean) if self.mean is not None else None,
                         std=tuple(self.std) if self.std is not None else None,
                         channel_order=self.channel_order)
        return None if pre == Preprocess() else pre

    def to_dict(self) -> dict[str, Any]:
        """Every field, ``epochs`` as it takes effect (what the manifest records)."""
        return {**self._fields(), "epochs": self.train_epochs}

    def _fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> CompressRecipe:
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                close = close_names(key, sorted(known), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise InvalidInputError(f"unknown recipe key {key!r}{hint}")
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | Path) -> CompressRecipe:
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except OSError as exc:
            raise InvalidInputError(f"cannot read recipe {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"recipe {path} is not valid TOML: {exc}") from None
        return cls.from_mapping(values.get("compress", values))

    def replace(self, **overrides: Any) -> CompressRecipe:
        """A copy with the given fields changed; ``None`` clears an optional field (such as
        ``prune``) and is refused for one that needs a value."""
        return self.from_mapping({**self._fields(), **overrides})


@functools.cache
def _field_kinds() -> dict[str, tuple[Any, ...]]:
    """Each field's annotation as the types it allows (``int | None`` -> (int, NoneType)),
    read with typing rather than from the annotation's text."""
    hints = typing.get_type_hints(CompressRecipe)
    return {f.name: typing.get_args(hints[f.name])
            if isinstance(hints[f.name], types.UnionType) else (hints[f.name],)
            for f in dataclasses.fields(CompressRecipe)}


def _is_kind(value: Any, kind: Any) -> bool:
    if kind is type(None):
        return value is None
    origin = typing.get_origin(kind) or kind
    if isinstance(value, bool) and origin is not bool:
        return False
    if not isinstance(value, _ACCEPTED[origin]):
        return False
    items = typing.get_args(kind) if origin is list else ()
    return all(_is_kind(v, items[0]) for v in value) if items else True


def _kind_name(kind: Any) -> str:
    if kind is type(None):
        return "None"
    return kind.__name__ if typing.get_origin(kind) is None else str(kind).replace("typing.", "")
