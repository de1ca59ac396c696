"""Faults planted in a deployed int8 file, for checking that verification catches them.

The ONNX faults take the file's ``onnx.ModelProto`` and return a damaged copy; the weights
are the int8 initializers that feed a DequantizeLinear into a Conv or Gemm. The TFLite
versions are in ``_tflite_faults``. ``judge_planted`` plants them all (plus another run's
file and wrongly preprocessed inputs) and judges each as the board's verify does.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _weight_dequantizers(model) -> list:
    """The DequantizeLinear nodes whose input is an int8 initializer (weights), in order."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits \
                and numpy_helper.to_array(inits[node.input[0]]).dtype == np.int8:
            found.append(node)
    return found


def _init(model, name: str):
    return next(i for i in model.graph.initializer if i.name == name)


def _replace(model, name: str, array: np.ndarray) -> None:
    from onnx import numpy_helper

    _init(model, name).CopyFrom(numpy_helper.from_array(array, name))


def wrong_scale(model, layer: int = 3, factor: float = 2.0):
    """One layer's weight scales multiplied by ``factor`` (a calibration bug)."""
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    node = _weight_dequantizers(model)[layer]
    scale = numpy_helper.to_array(_init(model, node.input[1]))
    _replace(model, node.input[1], (scale * factor).astype(scale.dtype))
    return model


def swapped_layers(model):
    """The int8 weights (and scales) of two layers of the same shape exchanged."""
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    nodes = _weight_dequantizers(model)
    shapes: dict[tuple, list] = {}
    for node in nodes:
        shape = numpy_helper.to_array(_init(model, node.input[0])).shape
        shapes.setdefault(shape, []).append(node)
    a, b = next(group for group in shapes.values() if len(group) >= 2)[:2]
    for k in (0, 1):
        first = numpy_helper.to_array(_init(model, a.input[k])).copy()
        second = numpy_helper.to_array(_init(model, b.input[k])).copy()
        _replace(model, a.input[k], second)
        _replace(model, b.input[k], first)
    return model


def corrupted_weight(model, layer: int = 1):
    """One output channel of a layer's int8 weights negated (a damaged row)."""
    from onnx import numpy_helper

    model = copy.deepcopy(model)
    node = _weight_dequantizers(model)[layer]
    weights = numpy_helper.to_array(_init(model, node.input[0])).copy()
    row = int(np.abs(weights.reshape(len(weights), -1)).sum(1).argmax())
    weights[row] = -np.maximum(weights[row], -127)
    _replace(model, node.input[0], weights)
    return model


FAULTS: dict[str, Callable] = {"wrong_scale": wrong_scale, "swapped_layers": swapped_layers,
                               "corrupted_weight": corrupted_weight}


def wrong_inputs(x: np.ndarray) -> dict[str, np.ndarray]:
    """The reference inputs as a wrong preprocessing would give them: normalised again with
    mean 0.5 / std 0.5 (a second or mismatched normalisation), and for colour inputs the
    channels in BGR order."""
    cases = {"wrong_normalisation": (x - 0.5) / 0.5}
    if x.shape[1] == 3:
        cases["bgr_inputs"] = np.ascontiguousarray(x[:, ::-1])
    return cases


def _damaged(deployed: Path) -> dict[str, bytes | str]:
    """fault -> the bytes of the damaged deployed file (ONNX or TFLite), or why the fault
    cannot be planted in it (no two weights of one shape, fewer layers than it edits)."""
    tflite = deployed.suffix == ".tflite"
    if tflite:
        from _tflite_faults import FAULTS as TFLITE_FAULTS

        original, faults = deployed.read_bytes(), TFLITE_FAULTS
    else:
        import onnx

        original, faults = onnx.load(deployed), FAULTS
    files: dict[str, bytes | str] = {}
    for name, fault in faults.items():
        try:
            damaged = fault(original)
            files[name] = damaged if tflite else damaged.SerializeToString()
        except (IndexError, StopIteration):
            files[name] = f"{deployed.name} has no weights {name} can edit"
    return files


def _judged(report) -> dict[str, Any]:
    return {"verdict_failed": not report.passed, "agreement": report.agreement,
            "decisive": report.decisive, "decisive_agreement": report.decisive_agreement,
            "mean_error_steps": report.mean_error_steps, "reason": report.reason}


def _bundle_files(bundle: Path) -> tuple[Path, Path]:
    """(the deployed file, reference.npz) of a compress bundle."""
    return bundle / json.loads((bundle / "bundle.json").read_text())["deployed"], \
        bundle / "reference.npz"


def judge_file(data: bytes, bundle: Path) -> dict[str, Any]:
    """``data`` under the name of the bundle's deployed file, judged against its
    reference.npz as ``edgekit verify FILE --expected reference.npz`` judges it on the
    board: by the SHA-256 the reference lists (``identity_failed``) and, with
    ``--allow-modified``, by the verdict on the outputs (``verdict_failed``)."""
    from edgekit.bench.expected import ModifiedFileError, verify_expected

    deployed, reference = _bundle_files(bundle)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / deployed.name
        path.write_bytes(data)
        try:
            verify_expected(path, reference)
            identity_failed = False
        except ModifiedFileError:
            identity_failed = True
        report = verify_expected(path, reference, allow_modified=True)
    return {"identity_failed": identity_failed, **_judged(report)}


def judge_planted(bundle: Path) -> dict[str, dict[str, Any]]:
    """Each fault planted in the bundle's deployed file and judged by ``judge_file``; the
    good file fed wrongly preprocessed inputs (``wrong_inputs``), judged by the same
    verdict in the same kernels. fault -> figures."""
    from edgekit.bench.expected import read_reference, verify_expected
    from edgekit.runtime.parity import compare, run_deployed

    deployed, reference = _bundle_files(bundle)
    results = {name: judge_file(data, bundle) if isinstance(data, bytes)
               else {"not_planted": data} for name, data in _damaged(deployed).items()}
    good = verify_expected(deployed, reference)  # the bundle check: its kernels and step
    arrays, _ = read_reference(reference)
    expected = arrays["outputs_int8" if "outputs_int8" in arrays else "outputs_fp32"]
    for name, inputs in wrong_inputs(arrays["inputs"]).items():
        outputs, _, _ = run_deployed(deployed, inputs, runtime=good.runtime,
                                     kernels=good.kernels)
        report = compare(deployed, good.runtime, outputs, expected, None, good.output_step,
                         good.step_source, good.threshold)
        results[name] = {"identity_failed": False, **_judged(report)}
    return results
