"""What `edgekit compress` can refuse before any work: input it cannot use, a precision the
target cannot run, an output path that is a file. Each is one line (an EdgekitError)."""

from __future__ import annotations

from pathlib import Path

from edgekit.core.errors import InvalidInputError
from edgekit.devices.profiles import DeviceProfile
from edgekit.pipeline.recipe import CompressRecipe


def check_before_work(recipe: CompressRecipe, profile: DeviceProfile,
                      out: str | Path | None) -> CompressRecipe:
    """The recipe with its precision settled for ``profile``; raises on what cannot work."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise InvalidInputError(f"--out {out} is a file, not a folder")
    if recipe.weights is not None:
        from edgekit.training.checkpoint import check_weights

        check_weights(recipe.weights)
    precision = deployed_precision(recipe.precision, profile)
    if precision != "int8":  # no quantization: the report must not claim QAT epochs
        return recipe.replace(precision=precision, qat_epochs=0)
    return recipe.replace(precision=precision)


def deployed_precision(asked: str | None, profile: DeviceProfile) -> str:
    """The precision ``profile`` runs: the one asked for when the device has it (fp16 only
    where its runtime builds fp16 files: TensorRT), else the best it has."""
    runtime = profile.runtime
    if asked is None:
        if "int8" in profile.precisions:
            return "int8"
        return "fp16" if "fp16" in profile.precisions and runtime == "tensorrt" else "fp32"
    if asked not in profile.precisions:
        raise InvalidInputError(f"{profile.name} has no {asked} "
                                f"({', '.join(profile.precisions)} only): choose one of those")
    if asked == "fp16" and runtime != "tensorrt":
        raise InvalidInputError(f"precision fp16 is built only as a TensorRT engine; "
                                f"{profile.name} runs {runtime}: choose int8 or fp32")
    return asked


def precision_note(profile: DeviceProfile, precision: str) -> str | None:
    """Why the run deploys ``precision`` when the target chose it, having no int8."""
    if "int8" in profile.precisions or precision != deployed_precision(None, profile):
        return None
    if precision == "fp16":
        return (f"{profile.name} has no int8 ({', '.join(profile.precisions)} only): no QAT; "
                "the float ONNX is built into an fp16 TensorRT engine (trtexec --fp16).")
    return f"{profile.name} has no int8: no QAT; the fp32 file is deployed."
