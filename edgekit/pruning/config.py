"""The options of structured pruning (``ChannelPruneConfig``, ``SparsityConfig``), what each
step returns (``ChannelPruneResult``, ``SparsityResult``) and the error it raises.

Torch-free: the pipeline and the CLI parse ``channel:0.5`` / ``2:4`` without loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.core.errors import EdgekitError, InvalidInputError

IMPORTANCES = ("auto", "l2", "l1", "taylor", "bn_scale")
SCOPES = ("global", "local")
PATTERNS = ("2:4",)


class PruningError(EdgekitError):
    """A model (or a layer pattern) the pruning engine cannot thin consistently."""


@dataclass(frozen=True)
class ChannelPruneConfig:
    """Channel pruning to a share of the dense model's MACs (torch-pruning's DepGraph).

    ``keep_macs``: share of the multiply-accumulates kept (``channel:0.5`` keeps half).
    ``importance``: how channels are ranked ("l2" magnitude, "l1", "taylor" = |w x grad|
    on calibration batches, "bn_scale" = |gamma| of the following BatchNorm; "auto":
    taylor when the pruning is given labelled data, as ``prune_and_finetune`` and
    ``compress`` are, else l2: magnitudes do not compare across the layers of a net
    without BatchNorm, and SqueezeNet 1.1 lost far more accuracy ranked by l2,
    docs/pruning.md).
    ``scope``: "global" ranks channels across layers (thin layers where it hurts least);
    "local" removes the same share from every prunable layer.
    ``round_to``: kept channel counts are multiples of it (8 suits TensorRT and XNNPACK).
    ``steps``: iterative rounds (prune, then fine-tune ``epochs_per_step`` epochs, distilled
    from the dense model with weight ``distill``); the target is reached at the last round.
    A net that trains slowly at its only stable rate (SqueezeNet, no BatchNorm) fine-tuned
    far better at ``distill=0.9`` than at 0.5 (docs/pruning.md).
    ``max_layer_ratio``: no layer loses more than this share of its channels.
    """

    keep_macs: float = 0.5
    importance: str = "auto"
    scope: str = "global"
    round_to: int = 8
    steps: int = 1
    max_layer_ratio: float = 0.8
    epochs_per_step: int = 1
    distill: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.keep_macs, bool) or not 0 < float(self.keep_macs) <= 1:
            raise InvalidInputError(f"keep_macs must be in (0, 1], got {self.keep_macs!r}")
        if self.importance not in IMPORTANCES:
            raise InvalidInputError(f"importance must be one of {IMPORTANCES}, "
                                    f"not {self.importance!r}")
        if self.scope not in SCOPES:
            raise InvalidInputError(f"scope must be one of {SCOPES}, not {self.scope!r}")
        for name in ("round_to", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.max_layer_ratio < 1:
            raise InvalidInputError(f"max_layer_ratio must be in (0, 1), "
                                    f"got {self.max_layer_ratio!r}")
        if self.epochs_per_step < 0 or not 0 <= self.distill <= 1:
            raise InvalidInputError("need epochs_per_step >= 0 and 0 <= distill <= 1")

    @classmethod
    def parse(cls, spec: str, **options: Any) -> ChannelPruneConfig:
        """``"channel:0.5"`` (keep 50% of the MACs) -> a config; ``options`` set the rest."""
        kind, _, value = str(spec).partition(":")
        if kind.strip() != "channel" or not value:
            raise InvalidInputError(f"structured pruning is given as channel:R (R = share of "
                                    f"MACs kept, e.g. channel:0.5), not {spec!r}")
        try:
            keep = float(value)
        except ValueError:
            keep = -1.0
        if not 0 < keep <= 1:
            raise InvalidInputError(f"channel:R needs a number R in (0, 1] (the share of MACs "
                                    f"kept), got {value!r}")
        return cls(keep_macs=keep, **options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SparsityConfig:
    """2:4 semi-structured sparsity in TensorRT's layout (Ampere+ GPUs, Jetson Orin).

    A Conv/Linear gets a mask when it is not grouped, its input channels are a multiple of
    ``in_channels_multiple`` and its output channels of ``out_channels_multiple`` (the shape
    rule of NVIDIA's ASP, apex.contrib.sparsity: K % 8, C % 16); others stay dense and are
    listed with the reason. ``include_linear``: Gemm layers too.
    """

    pattern: str = "2:4"
    in_channels_multiple: int = 16
    out_channels_multiple: int = 8
    include_linear: bool = True

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise InvalidInputError(f"sparsity pattern must be one of {PATTERNS}, "
                                    f"not {self.pattern!r}")
        if self.in_channels_multiple < 4 or self.in_channels_multiple % 4:
            raise InvalidInputError("in_channels_multiple must be a multiple of 4")
        if self.out_channels_multiple < 1:
            raise InvalidInputError("out_channels_multiple must be >= 1")

    @classmethod
    def parse(cls, spec: str, **options: Any) -> SparsityConfig:
        """``"2:4"`` -> a config (the only pattern TensorRT's sparse tensor cores run)."""
        if str(spec).strip() not in PATTERNS:
            raise InvalidInputError(f"--sparsity takes {' or '.join(PATTERNS)}, not {spec!r}")
        return cls(pattern=str(spec).strip(), **options)


@dataclass
class ChannelPruneResult:
    """What channel pruning did: sizes before/after, per-layer channels, what it left alone."""

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    keep_macs_target: float
    channels: dict[str, tuple[int, int]] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before if self.macs_before else 1.0

    @property
    def params_ratio(self) -> float:
        return self.params_after / self.params_before if self.params_before else 1.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["channels"] = {k: list(v) for k, v in self.channels.items()}
        out["macs_ratio"], out["params_ratio"] = self.macs_ratio, self.params_ratio
        return out

    def summary(self) -> str:
        return (f"MACs {self.macs_before / 1e6:.2f}M -> {self.macs_after / 1e6:.2f}M "
                f"({self.macs_ratio:.1%}, target {self.keep_macs_target:.0%}); params "
                f"{self.params_before / 1e6:.3f}M -> {self.params_after / 1e6:.3f}M; "
                f"{len(self.channels)} layers thinned, {len(self.excluded)} left whole")


@dataclass
class SparsityResult:
    """2:4 masks by layer name (True = weight kept), the dense layers with the reason, and
    the share of Conv/Gemm MACs that run in 2:4 layers."""

    masks: dict[str, Any] = field(default_factory=dict)
    dense: dict[str, str] = field(default_factory=dict)
    sparse_macs: int = 0
    total_macs: int = 0
    history: Any = None  # the TrainResult of sparse_finetune

    @property
    def sparse_mac_share(self) -> float:
        return self.sparse_macs / self.total_macs if self.total_macs else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"sparse_layers": sorted(self.masks), "dense": dict(self.dense),
                "sparse_macs": self.sparse_macs, "total_macs": self.total_macs,
                "sparse_mac_share": self.sparse_mac_share}
