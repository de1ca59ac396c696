"""`edgekit verify FILE --expected reference.npz`: the board's check, and its reference file.

The bundle tests run the bundle's own agent wheel (zipimport) in ``board_python``, a venv
with numpy + onnxruntime + LiteRT only, on the files of the two quick compress runs that
tests/pipeline/test_bundle.py makes (shared: same xdist group, same worker). The
reference-file tests are fast: a tiny ONNX model and references written here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.bench.expected import FORMAT, VERSION, read_reference, verify_expected, write_reference
from edgekit.cli import main
from edgekit.core.errors import DataError, EdgekitError

TARGET = {"onnx": "jetson", "tflite": "raspberry-pi-5"}


# --- 2a: on a board-like venv, from the bundle ------------------------------------------------

@pytest.fixture(scope="module")
def bundles(quick_compress) -> dict[str, Path]:
    return {kind: quick_compress(target).bundle for kind, target in TARGET.items()}


def _agent(board_python: Path, bundle: Path, args: list[str], cwd: Path
           ) -> subprocess.CompletedProcess[str]:
    """``python -m edgekit ARGS`` on the board: edgekit from the bundle's wheel only."""
    [wheel] = bundle.glob("edgekit-*-py3-none-any.whl")
    return subprocess.run(["env", f"PYTHONPATH={wheel}", str(board_python), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _is_the_board(board_python: Path, bundle: Path, cwd: Path) -> None:
    """No torch, nncf or onnx (nor edgekit but the wheel's): a dependency on them fails here."""
    for module in ("torch", "nncf", "onnx", "edgekit"):  # cwd: not the repository
        proc = subprocess.run([str(board_python), "-c", f"import {module}"], cwd=cwd,
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, module
    proc = _agent(board_python, bundle, ["-c", "import edgekit; print(edgekit.__file__)"], cwd)
    [wheel] = bundle.glob("edgekit-*.whl")
    assert proc.stdout.strip().startswith(str(wheel) + os.sep), proc.stderr


def _verify(board_python: Path, bundle: Path, artifact: Path, cwd: Path, *extra: str
            ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = cwd / f"verify-{artifact.name}.json"
    report.unlink(missing_ok=True)
    proc = _agent(board_python, bundle, ["-m", "edgekit", "verify", str(artifact), "--expected",
                                         str(bundle / "reference.npz"), "--json", str(report),
                                         *extra], cwd)
    return proc, (json.loads(report.read_text()) if report.is_file() else {})


@pytest.mark.slow
@pytest.mark.xdist_group("bundle")
@pytest.mark.parametrize("kind", ["onnx", "tflite"])
def test_board_verifies_the_bundles_files_without_torch(kind, bundles, board_python, tmp_path):
    bundle = bundles[kind]
    _is_the_board(board_python, bundle, tmp_path)
    for precision in ("int8", "fp32"):
        artifact = bundle / f"model_{precision}.{kind}"
        proc, report = _verify(board_python, bundle, artifact, tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith("PASSED: ") and "Traceback" not in proc.stderr
        assert report["passed"] is True and report["agreement"] >= 0.995
        assert report["runtime"] == ("onnxruntime" if kind == "onnx" else "litert")
        assert report["samples"] == 512 and report["notes"] == []
        assert f"{precision} outputs of the trained model" in report["reference"]
        identity = report["identity"]  # what was compared, so deploy can check it is this run's
        assert identity["file_sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
        assert identity["reference_sha256"] == hashlib.sha256(
            (bundle / "reference.npz").read_bytes()).hexdigest()
        assert identity["bundle_id"] == json.loads((bundle / "bundle.json").read_text())[
            "bundle_id"] and identity["match"] == "sha256"
        if kind == "onnx" and precision == "int8":  # TensorRT's arithmetic, not ORT's fused
            assert report["kernels"].startswith("reference")


def _least_predicted_class(bundle: Path) -> int:
    with np.load(bundle / "reference.npz", allow_pickle=False) as data:
        predicted = data["outputs_int8"].argmax(1)
    return int(np.bincount(predicted, minlength=10).argmin())


def _corrupt_onnx(source: Path, dest: Path, cls: int) -> None:
    """The same graph with the output layer's bias for class ``cls`` raised far above the
    rest: it loads and runs, and picks ``cls`` for (nearly) every input."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(source)
    last = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    assert last.op_type == "Gemm" and len(last.input) == 3
    bias = next(i for i in model.graph.initializer if i.name == last.input[2])
    values = numpy_helper.to_array(bias).copy()
    values[cls] += 1e4
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    onnx.save(model, dest)


def _corrupt_tflite(source: Path, dest: Path, cls: int) -> None:
    """The same flatbuffer with the int32 bias of the last fully connected layer raised for
    class ``cls``: the int8 output saturates there for every input."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(source.read_bytes()))
    graph = model.subgraphs[0]
    last = next(op for op in graph.operators if graph.outputs[0] in op.outputs)
    bias = graph.tensors[last.inputs[2]]
    assert bias.type == schema.TensorType.INT32
    buffer = model.buffers[bias.buffer]
    values = np.frombuffer(bytes(buffer.data), dtype=np.int32).copy()
    values[cls] += 1 << 24
    buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    flatbuffer_utils.write_model(model, str(dest))


@pytest.mark.slow
@pytest.mark.xdist_group("bundle")
@pytest.mark.parametrize("kind", ["onnx", "tflite"])
@pytest.mark.parametrize("renamed", [False, True], ids=["same-name", "renamed"])
def test_board_fails_a_corrupted_copy(kind, renamed, bundles, board_python, tmp_path):
    bundle = bundles[kind]
    _is_the_board(board_python, bundle, tmp_path)
    source = bundle / f"model_int8.{kind}"
    # the same name in another folder (a tampered deployment), or a name the reference lacks
    dest = tmp_path / (f"model_int8_corrupted.{kind}" if renamed else f"copy/model_int8.{kind}")
    dest.parent.mkdir(exist_ok=True)
    corrupt = _corrupt_onnx if kind == "onnx" else _corrupt_tflite
    corrupt(source, dest, _least_predicted_class(bundle))
    assert dest.read_bytes() != source.read_bytes()

    proc, report = _verify(board_python, bundle, dest, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    if not renamed:  # listed by name, other bytes: refused before it runs, in one line
        assert proc.stdout == "" and proc.stderr.count("\n") == 1
        assert proc.stderr.startswith("FAILED: ") and "is not the file reference.npz lists" \
            in proc.stderr and "--allow-modified" in proc.stderr
        assert report["passed"] is False and report["identity"]["match"] == "modified"
        assert "agreement" not in report  # nothing was measured
        proc, report = _verify(board_python, bundle, dest, tmp_path, "--allow-modified")
        assert proc.returncode == 1, proc.stdout + proc.stderr  # it ran, and it disagrees
        assert report["identity"]["match"] == "modified"
    assert proc.stdout.startswith("FAILED: ")
    assert report["passed"] is False and report["agreement"] < 0.995
    assert report["samples"] == 512 and report["artifact"] == str(dest)
    [note] = report["notes"]
    if renamed:
        assert note.startswith(f"{dest.name} is not listed in the reference")
    else:
        assert "DIFFERENT file" in note and "--allow-modified" in note
    assert f"note: {note}" in proc.stderr

    # the untouched file still passes with the same agent, reference and venv
    intact = Path(shutil.copy(source, tmp_path / source.name))
    proc, report = _verify(board_python, bundle, intact, tmp_path)
    assert proc.returncode == 0 and report["passed"] and report["notes"] == []


# --- 2b: bad reference files: DataError, and exit 2 with one line ----------------------------

MARKER = "UNPICKLED"


def _touch(path: str) -> None:
    Path(path).touch()


class _Evil:
    """Unpickling this creates a marker file: a reference must never be unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker,)


@pytest.fixture(scope="module")
def good(tiny_net_outputs) -> dict[str, np.ndarray]:
    """The arrays of a valid reference for the tiny ONNX model (meta as its JSON text)."""
    x = np.random.default_rng(3).standard_normal((8, 3, 16, 16)).astype(np.float32)
    y = tiny_net_outputs(x).astype(np.float32)
    record = {"format": FORMAT, "version": VERSION, "task": "classification",
              "deployed": "fp32", "files": {}}
    return {"inputs": x, "outputs_fp32": y, "labels": y.argmax(1).astype(np.int64),
            "meta": np.array(json.dumps(record))}


def _meta(good: dict[str, np.ndarray], **change: Any) -> np.ndarray:
    return np.array(json.dumps({**json.loads(str(good["meta"])), **change}))


def _npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


# Each case writes one bad reference from the good arrays; the message must say what is wrong.
def _missing(path, good):
    return path


def _pickled_npy(path, good):
    path = path.with_suffix(".npy")
    np.save(path, np.array([_Evil(path.parent / MARKER)], dtype=object), allow_pickle=True)
    return path


def _pickled_npz(path, good):
    return _npz(path, {**good, "inputs": np.array([_Evil(path.parent / MARKER)], dtype=object)})


def _raw_pickle(path, good):
    import pickle

    path.write_bytes(pickle.dumps(_Evil(path.parent / MARKER)))
    return path


def _plain_npy(path, good):
    path = path.with_suffix(".npy")
    np.save(path, good["inputs"])
    return path


def _truncated(path, good):
    data = _npz(path, good).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _drop(key):
    return lambda path, good: _npz(path, {k: v for k, v in good.items() if k != key})


def _replace(key, value):
    return lambda path, good: _npz(path, {**good, key: value(good)})


BAD_REFERENCES = {
    "missing": (_missing, "does not exist"),
    "pickled-npy": (_pickled_npy, "cannot read"),
    "pickled-npz": (_pickled_npz, "cannot read"),
    "raw-pickle": (_raw_pickle, "cannot read"),
    "single-npy-array": (_plain_npy, "single .npy array"),
    "truncated-npz": (_truncated, "cannot read"),
    "no-meta": (_drop("meta"), "not an edgekit reference"),
    "meta-not-json": (_replace("meta", lambda g: np.array("{format: edgekit")),
                      "not an edgekit reference"),
    "meta-not-scalar": (_replace("meta", lambda g: np.array([str(g["meta"])])),
                        "not an edgekit reference"),
    "meta-a-list": (_replace("meta", lambda g: np.array("[1, 2]")), "not an edgekit reference"),
    "wrong-format": (_replace("meta", lambda g: _meta(g, format="edgekit-bench")),
                     "not an edgekit reference"),
    "wrong-version": (_replace("meta", lambda g: _meta(g, version=VERSION + 1)),
                      f"version {VERSION + 1}"),
    "files-not-a-mapping": (_replace("meta", lambda g: _meta(g, files=["tiny.onnx"])),
                            "'files'"),
    "output-step-not-a-number": (_replace("meta", lambda g: _meta(
        g, files={"tiny.onnx": {"outputs": "fp32", "output_step": "small"}})), "output_step"),
    "outputs-wrong-n": (_replace("outputs_fp32", lambda g: g["outputs_fp32"][:-1]),
                        "N = 8"),
    "outputs-float64": (_replace("outputs_fp32", lambda g: g["outputs_fp32"].astype(np.float64)),
                        "outputs_fp32"),
    "no-outputs": (_drop("outputs_fp32"), "no outputs_"),
    "labels-float": (_replace("labels", lambda g: g["labels"].astype(np.float32)), "integers"),
    "labels-wrong-n": (_replace("labels", lambda g: g["labels"][:3]), "integers"),
    "no-inputs": (_drop("inputs"), "'inputs'"),
    "inputs-3d": (_replace("inputs", lambda g: g["inputs"][:, 0]), "'inputs'"),
    "inputs-float64": (_replace("inputs", lambda g: g["inputs"].astype(np.float64)), "'inputs'"),
    "inputs-uint8": (_replace("inputs", lambda g: (g["inputs"] > 0).astype(np.uint8)),
                     "'inputs'"),
}


def test_a_written_reference_reads_back_and_verifies(good, onnx_model, tmp_path, capsys):
    """The control for the bad cases below: the same arrays, intact, pass."""
    path = write_reference(tmp_path / "reference.npz", good["inputs"],
                           {"fp32": good["outputs_fp32"]}, good["labels"],
                           {"task": "classification", "deployed": "fp32", "files": {}})
    arrays, record = read_reference(path)
    assert set(arrays) == {"inputs", "outputs_fp32", "labels"}
    assert all(np.array_equal(arrays[k], good[k]) for k in arrays)
    assert record["format"] == FORMAT and record["version"] == VERSION
    assert read_reference(_npz(tmp_path / "by-hand.npz", good))[1]["deployed"] == "fp32"
    report = verify_expected(onnx_model, path)
    assert report.passed and report.agreement == 1.0 and report.samples == 8
    assert report.notes == ["tiny.onnx is not listed in the reference; compared with the "
                            "deployed precision's outputs"]
    assert main(["verify", str(onnx_model), "--expected", str(path)]) == 0
    assert capsys.readouterr().out.startswith("PASSED: ")


def test_the_pickled_payloads_would_run_if_unpickled(good, tmp_path):
    """The control for the marker check below: loading with pickle allowed creates it."""
    for write in (_pickled_npy, _pickled_npz):
        (tmp_path / MARKER).unlink(missing_ok=True)
        path = write(tmp_path / "reference.npz", good)
        loaded = np.load(path, allow_pickle=True)  # a .npy unpickles here, an .npz on access
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                loaded["inputs"]
        assert (tmp_path / MARKER).exists()
        (tmp_path / MARKER).unlink()


@pytest.mark.parametrize("case", list(BAD_REFERENCES))
def test_bad_reference_is_a_data_error_and_exit_2(case, good, onnx_model, tmp_path, capsys):
    write, message = BAD_REFERENCES[case]
    path = write(tmp_path / "reference.npz", good)
    assert issubclass(DataError, EdgekitError)
    with pytest.raises(DataError, match=re.escape(message)):
        read_reference(path)
    with pytest.raises(DataError):
        verify_expected(onnx_model, path)
    report = tmp_path / "report.json"
    code = main(["verify", str(onnx_model), "--expected", str(path), "--json", str(report)])
    out = capsys.readouterr()
    assert code == 2
    assert out.err.startswith("edgekit: error: ") and out.err.strip().count("\n") == 0
    assert "Traceback" not in out.err and message in out.err and out.out == ""
    assert not report.exists()
    assert not (tmp_path / MARKER).exists()  # nothing was unpickled


def test_the_verdict_holds_where_noise_cannot_change_the_answer():
    """Decisive decisions judged, low-margin flips forgiven; a systematic error still fails;
    threshold 0 only reports."""
    from edgekit.runtime.parity import judge

    rng = np.random.default_rng(0)
    margin = np.concatenate([np.full(300, 20.0), np.full(100, 0.5)])  # in output steps
    err = np.abs(rng.normal(0, 0.2, (400, 10)))
    same = np.ones(400, dtype=bool)
    same[-5:] = False  # near-ties flipped by summation order
    verdict = judge(same, err, margin, 0.995)
    assert verdict["passed"] and verdict["decisive"] == 300
    same[:10] = False  # decisive decisions changed: a real fault
    assert not judge(same, err, margin, 0.995)["passed"]
    same[:] = True
    assert "mean output error" in judge(same, err + 2.0, margin, 0.995)["reason"]
    assert judge(same, err + 2.0, margin, 0.0)["passed"]
