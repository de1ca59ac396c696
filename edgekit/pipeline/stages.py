"""The stages of `edgekit compress`, each an explicit function of explicit values.

prepare → build_model → preflight → train_or_load → quantize (``quantize_stage``) → export,
then the measuring
stages in ``measure`` (verify → bench → device_estimates → roofline_bounds →
collect_metrics). ``run`` strings them together; tests and users may call them one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgekit.core.errors import InvalidInputError
from edgekit.core.io import sha256_file
from edgekit.devices import DeviceProfile
from edgekit.pipeline.recipe import CompressRecipe
from edgekit.pipeline.resume import (
    checkpoint_path,
    claim_stage,
    data_fingerprint,
    load_array,
    model_hash,
    read_stage,
    save_array,
    stage_key,
    toolchain,
    write_stage,
)
from edgekit.pipeline.steps import step
from edgekit.training import distributed

if TYPE_CHECKING:
    from edgekit.calibration import Preprocess

# Share of the training split held out for validation (best-epoch choice in training and QAT).
VAL_FRACTION = 0.1
# The QAT scheme follows the runtime the target profile names.
QUANT_TARGET = {"tensorrt": "tensorrt", "tflite": "tflite", "onnxruntime": "onnxruntime"}
# Where the deployed file runs on this host for verification and the measured latency.
HOST_RUNTIME = {"tensorrt": "onnxruntime (CPU) on the ONNX that TensorRT consumes",
                "tflite": "LiteRT interpreter (XNNPACK)", "onnxruntime": "onnxruntime (CPU)",
                "lce": "Larq Compute Engine's interpreter (x86 reference 1-bit kernels)"}


def deployed_key(files: dict[str, Any]) -> str:
    """The artifact the target runs: the LCE file of a binary net, else int8, else fp32."""
    return next(k for k in ("lce", "int8", "fp32") if k in files)


@dataclass
class Context:
    """What every stage needs: the recipe, the target, the data and where to write."""

    recipe: CompressRecipe
    profile: DeviceProfile
    out: Path
    log: Callable[[str], None]
    task: str
    train: Any
    val: Any  # held out of train: picks the best epoch, so test stays unseen until the end
    test: Any
    preprocess: Preprocess | None = None
    data_key: str = ""  # data_fingerprint of the splits: the root of the stage keys
    stage_keys: dict[str, str] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # what an unfinished run gave this one
    lowbit: str | None = None  # how a binary/ternary net deploys (pipeline.lowbit_deploy)
    # torch outputs on the test split by precision ("fp32", "int8"): the scores, verification
    # and the bundle's reference all need them, from one forward pass (``test_outputs``)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train.x.shape[1:])

    @property
    def quant_target(self) -> str:
        return QUANT_TARGET[self.profile.runtime]

    def input_spec(self) -> dict[str, Any]:
        """The input contract of the deployed files: shape, layout, and how images become
        it (the preprocessing, also in the files' metadata)."""
        spec: dict[str, Any] = {"shape": ["batch", *self.input_shape], "dtype": "float32",
                                "layout": "NCHW", "model": self.model_config}
        if self.preprocess is None:
            spec["range"] = [0.0, 1.0]
        else:
            spec["preprocess"] = self.preprocess.to_dict()
        return spec


# larger outputs (segmentation maps of many samples) are recomputed, not held
OUTPUTS_HELD_BYTES = 256 << 20


def test_outputs(ctx: Context, precision: str, model: Any) -> np.ndarray:
    """``model``'s torch outputs on the test split, computed once per precision and run
    (the model must not change after: the prune stage forgets its fp32 outputs)."""
    held = ctx.outputs.get(precision)
    if held is not None:
        return held
    from edgekit.calibration.forms import inputs_array
    from edgekit.export.verify import torch_outputs

    outputs = torch_outputs(model, inputs_array(ctx.test))
    if outputs.nbytes <= OUTPUTS_HELD_BYTES:
        ctx.outputs[precision] = outputs
    return outputs


def prepare(recipe: CompressRecipe, profile: DeviceProfile, out: Path,
            log: Callable[[str], None], *, data: Any = None, module: Any = None) -> Context:
    """Load the data (``data``: the user's own object, else ``recipe.data``) as the model
    (``module``: the user's own, else ``recipe.model``) and the recipe's preprocessing need
    it, split off validation."""
    from edgekit.calibration import load_splits

    if profile.runtime not in QUANT_TARGET:
        raise InvalidInputError(f"target {profile.name} uses runtime {profile.runtime!r}, "
                                f"which compress cannot export to")
    spec = None if module is not None else _zoo_spec(recipe.model)
    source = data if data is not None else recipe.data
    if spec is not None and spec.task == "segmentation" and source == "mnist5k":
        source = "mnist5k_seg"  # the embedded default, in its segmentation form
    size = spec.input_size if spec is not None and spec.task == "segmentation" else None
    pre = recipe.preprocessing()
    if pre is not None and pre.input_size is not None:
        size = None  # the recipe's input_size decides
    # holdout=None: a test split of up to 400 samples, for verification to judge
    train, test = load_splits(source, input_size=size, seed=recipe.seed, preprocess=pre,
                              holdout=None)
    if recipe.train_limit is not None:
        train = train.subset(recipe.train_limit, seed=recipe.seed)
    if spec is not None and train.labelled and train.task != spec.task:
        raise InvalidInputError(f"{recipe.model} is a {spec.task} model but {recipe.data} is a "
                                f"{train.task} data set")
    train, val = train.split(VAL_FRACTION, seed=recipe.seed)
    log(f"{step('data')} data {recipe.data}: {len(train)} train / {len(val)} validation / "
        f"{len(test)} test, input {train.x.shape[1:]}")
    return Context(recipe, profile, out, log, train.task, train, val, test, preprocess=pre,
                   data_key=data_fingerprint(train, val, test))


def _zoo_spec(name: str) -> Any:
    """The zoo's spec for ``name``; None for the user's factory (``file.py:factory``).
    An unknown zoo name fails here with the close names."""
    from edgekit.models import get_model_spec
    from edgekit.models.user import is_factory_spec

    return None if is_factory_spec(name) else get_model_spec(name)


def build_model(ctx: Context, module: Any = None) -> Any:
    """The fp32 model before any training: the zoo's (from an edgekit checkpoint, or new),
    the user's factory's, or the user's own ``module`` (a copy: theirs is left as it is),
    with ``recipe.weights`` loaded."""
    import copy

    import torch

    from edgekit.models import create_model
    from edgekit.models.user import build_user_model, describe_module
    from edgekit.training.checkpoint import is_zoo_checkpoint, load_checkpoint, load_weights

    r = ctx.recipe
    c, h = ctx.input_shape[0], ctx.input_shape[-1]
    # initial weights: torch seeds its generator differently in every process, so
    # without this the same command trains a different model each time
    torch.manual_seed(r.seed)
    user_model = module is not None or _zoo_spec(r.model) is None
    from_checkpoint = not user_model and r.weights and is_zoo_checkpoint(r.weights)
    if module is not None:
        model = copy.deepcopy(module)
    elif user_model:
        model = build_user_model(r.model, r.model_args)
    elif from_checkpoint:
        model, _ = load_checkpoint(r.weights)
        if model.edgekit_config.get("name") != r.model:
            raise InvalidInputError(f"weights {r.weights} hold a "
                                    f"{model.edgekit_config.get('name')}, not a {r.model}")
    else:
        model = create_model(r.model, num_classes=ctx.train.num_classes, in_channels=c,
                             input_size=h, **r.model_args)
    # before weights: it also gives nn.Lazy* modules their shapes
    output, chosen = check_forward(ctx, model)
    if user_model:
        source = "python object" if module is not None else r.model
        ctx.model_config = describe_module(model, source=source,
                                           model_args=None if module is not None
                                           else r.model_args)
    else:
        ctx.model_config = dict(model.edgekit_config)
    if r.weights and not from_checkpoint:
        load_weights(model, r.weights)
    if chosen is None:
        return model
    from edgekit.models.outputs import OneOutput, describe_output

    # a tuple or dict: every stage after this one, and the deployed files, see one output
    ctx.model_config["output"] = chosen
    ctx.notes.append(describe_output(output, chosen))
    return OneOutput(model, chosen)


def preflight(ctx: Context, model: Any) -> list[dict[str, str]]:
    """``edgekit check`` before any training (``build_model`` already ran one forward): an
    op the target cannot run stops the run here; float-only ops are reported."""
    from edgekit.export.check import check_model
    from edgekit.pipeline import lowbit_deploy

    unknown = sorted(set(ctx.recipe.keep_float) - {name for name, _ in model.named_modules()})
    if unknown:  # a typo would otherwise stop the run after training, in the quantize stage
        raise InvalidInputError(f"keep_float names no module of the model: {unknown} "
                                "(module paths as in model.named_modules())")
    form = lowbit_deploy.deploy_form(model, ctx.profile.runtime)
    if form is not None:  # by its layers: the LCE file, or int8 PTQ of ternary weights
        lowbit_deploy.check(ctx, model, form)
        return ctx.metrics["preflight"]
    key = stage_key("preflight", model_hash(model), ctx.quant_target, list(ctx.input_shape),
                    toolchain())
    done = distributed.from_main(lambda: read_stage(ctx.out, "preflight", key))
    if done is not None:  # an unfinished run checked this very model (2 s of tracing)
        findings = done["findings"]
    else:
        findings = [f.to_dict() for f in check_model(model, ctx.quant_target,
                                                     ctx.input_shape)]
        if distributed.is_main():
            write_stage(ctx.out, "preflight", {"key": key, "done": True,
                                               "findings": findings})
    if findings:
        ops = sorted({f["op"] for f in findings})
        ctx.notes.append(f"pre-flight: {len(findings)} op(s) run in float on "
                         f"{ctx.quant_target}: {', '.join(ops)} (see `edgekit check`)")
    ctx.metrics["preflight"] = findings
    return findings


def check_forward(ctx: Context, model: Any) -> tuple[Any, str | int | None]:
    """One forward pass on the data's input shape, and an output the task can use: (what
    forward returned, which part of a tuple or dict is the classification output or None
    for one tensor; ``edgekit.models.outputs.choose_output``)."""
    import torch

    from edgekit.core.errors import first_line
    from edgekit.models.outputs import choose_output

    shape = (2, *ctx.input_shape)
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except Exception as exc:  # the user's forward may raise anything
        raise InvalidInputError(f"the model's forward fails on inputs of shape {shape} "
                                f"(N×C×H×W from the data): {type(exc).__name__}: "
                                f"{first_line(exc)}") from exc
    output, chosen = out, choose_output(out, ctx.recipe.output_key)
    out = out if chosen is None else out[chosen]
    want = (2, 4) if not ctx.train.labelled else (2 if ctx.task == "classification" else 4,)
    if not isinstance(out, torch.Tensor) or out.ndim not in want \
            or out.shape[1] < ctx.train.num_classes:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidInputError(f"the model's output {got} does not fit {ctx.task} data with "
                                f"{ctx.train.num_classes} classes")
    return output, chosen


def train_or_load(ctx: Context, model: Any) -> Any:
    """Train ``model`` in fp32 when the recipe asks for epochs (reusing an unfinished run's
    training when its record matches); score it on the test split and keep its weights."""
    from edgekit.training import TrainConfig, classes_of, score, train
    from edgekit.training.evaluate import top5_accuracy

    r = ctx.recipe
    key = ctx.stage_keys["train"] = stage_key(
        "train", ctx.data_key, model_hash(model), toolchain(), r.train_epochs, r.lr,
        r.batch_size, r.seed, r.sync_batchnorm, distributed.world()[1])
    done = distributed.from_main(lambda: claim_stage(ctx.out, "train", key))
    if done is not None and done.get("weights") and _reload(model, ctx.out / done["weights"],
                                                             done["sha256"]):
        ctx.log(f"{step('model')} fp32 {r.model}: reused from the unfinished run (stage record "
                "matches)")
        ctx.metrics["fp32"] = done["metrics"]
        saved = load_array(ctx.out, done)  # the test outputs beside the weights, if intact
        if saved is not None:
            ctx.outputs["fp32"] = saved
        ctx.reused.append("fp32 training")
        return model.eval()
    if r.train_epochs > 0:
        import torch

        ctx.log(f"{step('model')} training fp32 {r.model} for {r.train_epochs} epoch(s), "
                f"{torch.get_num_threads()} thread(s){_ranks_text()}")
        train(model, ctx.train, TrainConfig(epochs=r.train_epochs, lr=r.lr,
                                            batch_size=r.batch_size, seed=r.seed,
                                            sync_batchnorm=r.sync_batchnorm),
              val_data=ctx.val, checkpoint=checkpoint_path(ctx.out, "train"))
    else:
        source = f"from {r.weights}" if r.weights else "as it is, with its own weights"
        ctx.log(f"{step('model')} loaded {r.model} {source} (no fp32 training)")
    model.eval()
    fp32 = score(classes_of(test_outputs(ctx, "fp32", model), ctx.test), ctx.test)
    if scores_top5(ctx):
        fp32["top5_accuracy"] = top5_accuracy(test_outputs(ctx, "fp32", model), ctx.test.y)
    ctx.metrics["fp32"] = fp32
    if distributed.is_main():  # one writer; the other ranks go on with the same weights
        weights = _save_fp32(ctx, model, fp32)
        write_stage(ctx.out, "train", {"key": key, "done": True,
                                       "weights": str(weights.relative_to(ctx.out)),
                                       "sha256": sha256_file(weights), "metrics": fp32,
                                       **save_array(ctx.out, "fp32_test_outputs",
                                                    ctx.outputs.get("fp32"))})
    return model


def scores_top5(ctx: Context) -> bool:
    """Whether the scores add top-5 accuracy: labelled classification at ImageNet scale
    (data without labels gets top-5 agreement with the fp32 model instead)."""
    from edgekit.training.evaluate import TOP5_MIN_CLASSES

    return ctx.test.labelled and ctx.task == "classification" \
        and ctx.test.num_classes >= TOP5_MIN_CLASSES


def _ranks_text() -> str:
    ranks = distributed.world()[1]
    return f" in each of {ranks} processes (DDP)" if ranks > 1 else ""


def _save_fp32(ctx: Context, model: Any, metrics: dict[str, float]) -> Path:
    from edgekit.training.checkpoint import save_checkpoint, save_weights

    if "name" in getattr(model, "edgekit_config", {}):
        save_checkpoint(model, ctx.out / "fp32", metrics=metrics)
        return ctx.out / "fp32" / "model.safetensors"
    # not in the zoo: a checkpoint could not rebuild it by name; the weights alone
    return save_weights(model, ctx.out / "fp32.safetensors")


def _reload(model: Any, path: Path, sha256: str) -> bool:
    """Load the saved fp32 weights when the file is intact."""
    from edgekit.training.checkpoint import load_weights

    if not path.is_file() or sha256_file(path) != sha256:
        return False
    load_weights(model, path)
    return True


def export(ctx: Context, fp32: Any, qm: Any | None) -> dict[str, Path]:
    """Write the deployable files into the bundle folder; both precisions, so size and
    speed can be compared (on the board too)."""
    runtime = ctx.profile.runtime
    shape = ctx.input_shape
    ctx.log(f"{step('export')} export for {runtime}")
    folder = ctx.out / "bundle"
    folder.mkdir(exist_ok=True)
    files: dict[str, Path] = {}
    # "device", not "target": the exporters record the quantization target under that key
    meta = {"device": ctx.profile.name, "recipe": ctx.recipe.to_dict()}
    if ctx.preprocess is not None:  # bench and verify on a board read it from the file
        meta["preprocess"] = ctx.preprocess.to_dict()
    baseline = qm is None or ctx.recipe.fp32_baseline
    if ctx.lowbit == "lce":
        from edgekit.pipeline import lowbit_deploy

        return lowbit_deploy.export(ctx, fp32, folder, meta)
    if runtime == "tflite":
        from edgekit.export.tflite import export_tflite

        calib = np.asarray(ctx.train.x[: min(64, len(ctx.train))])
        if baseline:
            files["fp32"] = export_tflite(fp32, folder / "model_fp32.tflite",
                                          calibration=calib, metadata=meta).path
        if qm is not None:
            files["int8"] = export_tflite(qm, folder / "model_int8.tflite", calibration=calib,
                                          metadata=meta).path
        return files
    from edgekit.export.onnx import export_onnx

    if baseline:
        files["fp32"] = export_onnx(fp32, folder / "model_fp32.onnx", input_shape=shape,
                                    metadata=meta).path
    if qm is not None:
        files["int8"] = export_onnx(qm, folder / "model_int8.onnx", input_shape=shape,
                                    metadata=meta).path
    if runtime == "tensorrt":
        from edgekit.pipeline.engine_plan import tensorrt_plan

        files.update(tensorrt_plan(ctx, files["int8"] if qm is not None else files["fp32"]))
    return files
