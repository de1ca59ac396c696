"""The deploy bundle `edgekit compress` writes into RUN/bundle, checked from the outside.

Two quick compress runs (lenet300_100 for a TensorRT target and for a TFLite target), shared
with the verify and deploy tests through the ``quick_compress`` fixture (the same xdist
group puts them on one worker). Checksums are recomputed here with hashlib, references re-read with
numpy, and the engine script runs under ``sh`` with a stand-in trtexec, from a copy of the
bundle whose original is out of reach.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgekit
from edgekit.bench.expected import read_reference, verify_expected
from edgekit.pipeline.agent_wheel import wheel_name, write_agent_wheel

SUFFIX = {"jetson": ".onnx", "raspberry-pi-5": ".tflite"}
ENGINE_FILES = {"build_engine.sh", "tensorrt_build.json"}


@pytest.fixture(scope="module")
def jetson(quick_compress):
    return quick_compress("jetson")


@pytest.fixture(scope="module")
def pi(quick_compress):
    return quick_compress("raspberry-pi-5")


@pytest.fixture(params=list(SUFFIX))
def run(request):
    """Each target's run, by its fixture (one compress per target for the module)."""
    return request.param, request.getfixturevalue({"jetson": "jetson",
                                                   "raspberry-pi-5": "pi"}[request.param])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_wheel_record(data: bytes) -> zipfile.ZipFile:
    """The wheel ``data`` as a zip whose RECORD lists every other entry once, with the
    entry's own urlsafe-base64 SHA-256 and size; RECORD lists itself without a hash."""
    wheel = zipfile.ZipFile(io.BytesIO(data))
    assert wheel.testzip() is None  # every entry's CRC
    names = wheel.namelist()
    assert len(names) == len(set(names))
    [record_name] = [n for n in names if n.endswith(".dist-info/RECORD")]
    rows = list(csv.reader(io.StringIO(wheel.read(record_name).decode())))
    listed = {row[0]: row for row in rows}
    assert len(listed) == len(rows) and set(listed) == set(names)
    assert listed[record_name][1:] == ["", ""]
    for name in names:
        if name == record_name:
            continue
        content = wheel.read(name)
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
        assert listed[name][1:] == [f"sha256={digest.decode()}", str(len(content))], name
    return wheel


# --- 1a: what the bundle holds --------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.xdist_group("bundle")
def test_bundle_holds_the_deployed_files_with_their_full_sha256(run, tmp_path_factory):
    target, result = run
    out, bundle = result.out_dir, result.out_dir / "bundle"
    suffix = SUFFIX[target]
    assert result.bundle == bundle and result.deployed == bundle / f"model_int8{suffix}"
    expected = {f"model_int8{suffix}", f"model_fp32{suffix}", "reference.npz", "bundle.json",
                "DEVICE.md", wheel_name()}
    if target == "jetson":
        expected |= ENGINE_FILES
        if importlib.util.find_spec("tensorrt") is not None:  # built here only with TensorRT
            expected.add("model_int8.engine")
    names = {p.name for p in bundle.iterdir()}
    assert names == expected
    assert all((bundle / n).is_file() for n in names)

    listing = json.loads((bundle / "bundle.json").read_text())
    # every file but bundle.json itself, each with its full SHA-256 and size
    assert set(listing["files"]) == names - {"bundle.json"}
    for name, entry in listing["files"].items():
        assert entry["sha256"] == _sha256(bundle / name), name
        assert entry["bytes"] == (bundle / name).stat().st_size, name
    assert listing["deployed"] == f"model_int8{suffix}"
    assert listing["agent_wheel"] == wheel_name()
    assert wheel_name() == f"edgekit-{edgekit.__version__}-py3-none-any.whl"
    assert listing["target"]["runtime"] == result.runtime
    if target == "jetson":
        assert listing["engine"] == {"script": "build_engine.sh", "config": "tensorrt_build.json",
                                     "engine": "model_int8.engine"}
        assert os.access(bundle / "build_engine.sh", os.X_OK)
        build = json.loads((bundle / "tensorrt_build.json").read_text())
        assert (build["onnx"], build["engine"]) == ("model_int8.onnx", "model_int8.engine")
    else:
        assert listing["engine"] is None

    # the run's manifest: full 64-hex SHA-256 of every artifact, the same as bundle.json's
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"]
    for name, art in manifest["artifacts"].items():
        assert re.fullmatch(r"[0-9a-f]{64}", art["sha256"]), name
        assert art["sha256"] == _sha256(out / art["path"]), name
        folder, _, file = art["path"].partition("/")
        if folder == "bundle" and file != "bundle.json":
            assert art["sha256"] == listing["files"][file]["sha256"], name

    # nothing in the bundle names the folder it was written in (or its staging sibling)
    here = str(tmp_path_factory.getbasetemp()).encode()
    for name in names:
        assert here not in (bundle / name).read_bytes(), name
    guide = (bundle / "DEVICE.md").read_text()
    run_file = "model_int8.engine" if target == "jetson" else f"model_int8{suffix}"
    assert f"verify {run_file} --expected reference.npz" in guide and wheel_name() in guide
    check_wheel_record((bundle / wheel_name()).read_bytes())


@pytest.mark.slow
@pytest.mark.xdist_group("bundle")
def test_reference_holds_test_inputs_and_the_trained_models_outputs(run, mnist):
    target, result = run
    bundle = result.bundle
    with np.load(bundle / "reference.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    x, labels = arrays["inputs"], arrays["labels"]
    n = len(x)
    assert x.dtype == np.float32 and x.shape == (n, 1, 28, 28)
    assert n == min(512, len(mnist[1]))  # "a few hundred": at most 512
    assert json.loads((bundle / "bundle.json").read_text())["reference"]["samples"] == n
    for key in ("outputs_int8", "outputs_fp32"):
        assert arrays[key].dtype == np.float32 and arrays[key].shape == (n, 10)
    assert not np.array_equal(arrays["outputs_int8"], arrays["outputs_fp32"])
    read, record = read_reference(bundle / "reference.npz")
    assert all(np.array_equal(read[k], arrays[k]) for k in read)
    assert record["deployed"] == "int8" and record["target"] == result.manifest["target"]["profile"]
    listing = json.loads((bundle / "bundle.json").read_text())
    for name, entry in record["files"].items():
        assert entry["sha256"] == listing["files"][name]["sha256"]

    # the inputs are samples of the test split (not training data), with their own labels
    test = mnist[1]
    truth = {np.asarray(test.x[i], dtype=np.float32).tobytes(): int(test.y[i])
             for i in range(len(test))}
    assert [truth.get(row.tobytes()) for row in x] == labels.tolist()
    assert len(set(labels.tolist())) == 10

    # outputs_fp32 are the trained fp32 model's (its checkpoint, run again in torch)
    import torch

    from edgekit.training.checkpoint import load_checkpoint

    model, _ = load_checkpoint(result.out_dir / "fp32")
    with torch.no_grad():
        again = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(arrays["outputs_fp32"], again, rtol=1e-5, atol=1e-5)

    # outputs_int8 are what the deployed int8 file reproduces: it agrees with them, and it is
    # nearer to them than to the fp32 outputs
    from edgekit.runtime.parity import onnx_kernels, run_deployed, runtime_of

    int8 = bundle / f"model_int8{SUFFIX[target]}"
    report = verify_expected(int8, bundle / "reference.npz")
    assert report.passed and report.agreement >= 0.995 and report.samples == n
    assert report.notes == [] and "int8 outputs" in report.reference
    assert report.agreement == result.metrics["bundle_check"]["agreement"]
    runtime = runtime_of(int8)
    kernels = onnx_kernels(int8) if runtime == "onnxruntime" else "runtime default"
    deployed, _, _ = run_deployed(int8, x, runtime=runtime, kernels=kernels)
    assert (np.abs(deployed - arrays["outputs_int8"]).max()
            < np.abs(deployed - arrays["outputs_fp32"]).max())

    fp32 = verify_expected(bundle / f"model_fp32{SUFFIX[target]}", bundle / "reference.npz")
    assert fp32.passed and fp32.agreement >= 0.995 and fp32.notes == []
    assert "fp32 outputs" in fp32.reference


# --- 1b: build_engine.sh from a copied bundle ------------------------------------------------

STAND_IN = r"""#!/bin/sh
# A stand-in for TensorRT's trtexec: its --onnx file must exist (relative to the cwd);
# it writes the cwd and its arguments to the --saveEngine path.
onnx= engine=
for arg in "$@"; do
  case "$arg" in
    --onnx=*) onnx=${arg#--onnx=} ;;
    --saveEngine=*) engine=${arg#--saveEngine=} ;;
  esac
done
if [ -z "$onnx" ] || [ ! -f "$onnx" ]; then
  echo "trtexec stand-in: no ONNX file '$onnx' in $(pwd)" >&2
  exit 3
fi
[ -n "$engine" ] || { echo "trtexec stand-in: no --saveEngine" >&2; exit 4; }
{ pwd; printf '%s\n' "$@"; } > "$engine"
"""


def _stand_in(folder: Path) -> Path:
    folder.mkdir(parents=True)
    path = folder / "trtexec"
    path.write_text(STAND_IN)
    path.chmod(0o755)
    return path


def _copy_bundle(result: Any, dest: Path) -> Path:
    copy = dest / "copied bundle"  # a space: the script must quote its own path
    shutil.copytree(result.bundle, copy)
    return copy


def _env(**over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TRTEXEC"}
    env.update(over)
    return env


def _no_real_trtexec() -> None:
    if shutil.which("trtexec") or os.path.exists("/usr/src/tensorrt/bin/trtexec"):
        pytest.skip("a real trtexec is installed on this host")


@pytest.mark.slow
@pytest.mark.xdist_group("bundle")
def test_build_engine_sh_runs_in_a_copied_bundle_with_trtexec_on_path(jetson, tmp_path):
    _no_real_trtexec()
    copy = _copy_bundle(jetson, tmp_path / "elsewhere")
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # the original run out of reach while the copy builds: no path into it can resolve
    original = jetson.out_dir
    hidden = original.with_name(original.name + "-moved-away")
    os.rename(original, hidden)
    try:
        proc = subprocess.run(["sh", str(copy / "build_engine.sh")], cwd=cwd, text=True,
                              capture_output=True, timeout=60,
                              env=_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"))
    finally:
        os.rename(hidden, original)
    assert proc.returncode == 0, proc.stderr
    engine = copy / "model_int8.engine"
    assert engine.is_file()
    lines = engine.read_text().splitlines()
    assert Path(lines[0]).resolve() == copy.resolve()  # ran inside the copy
    assert "--onnx=model_int8.onnx" in lines and "--saveEngine=model_int8.engine" in lines
    assert "--int8" in lines
    assert list(cwd.iterdir()) == []  # nothing landed where it was called from
    assert not (original / "bundle" / "model_int8.engine").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("bundle")
def test_build_engine_sh_without_trtexec_exits_127_with_one_line(jetson, tmp_path):
    _no_real_trtexec()
    copy = _copy_bundle(jetson, tmp_path)
    proc = subprocess.run(["sh", str(copy / "build_engine.sh")], cwd=tmp_path, text=True,
                          capture_output=True, timeout=60, env=_env())
    assert proc.returncode == 127
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("build_engine.sh: trtexec not found")
    assert "TRTEXEC=" in proc.stderr and proc.stdout == ""
    assert not (copy / "model_int8.engine").exists()


@pytest.mark.slow
@pytest.mark.xdist_group("bundle")
def test_build_engine_sh_takes_trtexec_from_the_environment(jetson, tmp_path):
    _no_real_trtexec()
    copy = _copy_bundle(jetson, tmp_path)
    trtexec = _stand_in(tmp_path / "somewhere" / "tensorrt")
    proc = subprocess.run(["sh", str(copy / "build_engine.sh")], cwd=tmp_path, text=True,
                          capture_output=True, timeout=60, env=_env(TRTEXEC=str(trtexec)))
    assert proc.returncode == 0, proc.stderr
    assert (copy / "model_int8.engine").read_text().splitlines()[1] == "--onnx=model_int8.onnx"
    # the stand-in's check is live: without the ONNX the build fails and writes no engine
    (copy / "model_int8.engine").unlink()
    (copy / "model_int8.onnx").unlink()
    proc = subprocess.run(["sh", str(copy / "build_engine.sh")], cwd=tmp_path, text=True,
                          capture_output=True, timeout=60, env=_env(TRTEXEC=str(trtexec)))
    assert proc.returncode == 3 and "no ONNX file 'model_int8.onnx'" in proc.stderr
    assert not (copy / "model_int8.engine").exists()


# --- 1c: the agent wheel ---------------------------------------------------------------------

def test_agent_wheel_is_reproducible_and_its_record_matches(tmp_path):
    first = write_agent_wheel(tmp_path / "a")
    second = write_agent_wheel(tmp_path / "b")
    assert first.name == second.name == f"edgekit-{edgekit.__version__}-py3-none-any.whl"
    data = first.read_bytes()
    assert data == second.read_bytes()  # same edgekit, same bytes
    wheel = check_wheel_record(data)
    names = set(wheel.namelist())
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in wheel.infolist())

    package = Path(edgekit.__file__).parent
    profiles = {p.name for p in (package / "devices" / "profiles").glob("*.toml")}
    assert {"jetson-orin-nano.toml", "raspberry-pi-5.toml", "x86-cpu.toml"} <= profiles
    assert {n.rsplit("/", 1)[1] for n in names
            if re.fullmatch(r"edgekit/devices/profiles/[^/]+\.toml", n)} == profiles
    # every module of the package, byte for byte; no bytecode
    sources = {f"edgekit/{p.relative_to(package).as_posix()}": p for p in package.rglob("*.py")
               if "__pycache__" not in p.parts}
    assert {"edgekit/__main__.py", "edgekit/cli/verify.py", "edgekit/bench/expected.py"} \
        <= set(sources) <= names
    assert all(wheel.read(name) == path.read_bytes() for name, path in sources.items())
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)

    info = f"edgekit-{edgekit.__version__}.dist-info"
    metadata = wheel.read(f"{info}/METADATA").decode().splitlines()
    assert "Name: edgekit" in metadata and f"Version: {edgekit.__version__}" in metadata
    assert not any("torch" in line for line in metadata)
    tags = wheel.read(f"{info}/WHEEL").decode().splitlines()
    assert "Tag: py3-none-any" in tags and "Root-Is-Purelib: true" in tags


@pytest.mark.slow
def test_agent_wheel_installs_with_pip_and_imports_from_the_zip(tmp_path, board_python):
    wheel = write_agent_wheel(tmp_path / "dist")
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--no-index", "--no-compile", "--disable-pip-version-check",
                           "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (site / "edgekit" / "devices" / "profiles" / "raspberry-pi-5.toml").is_file()
    assert (site / f"edgekit-{edgekit.__version__}.dist-info" / "RECORD").is_file()
    # on the board without installing: zipimport, the profiles read from inside the zip
    code = ("import edgekit; from edgekit.devices import get_profile; print(edgekit.__file__); "
            "print(get_profile('raspberry-pi-5').name)")
    proc = subprocess.run([str(board_python), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(wheel)})
    assert proc.returncode == 0, proc.stderr
    where, profile = proc.stdout.split()
    assert where.startswith(str(wheel) + os.sep) and profile == "raspberry-pi-5"


@pytest.mark.slow
def test_device_guide_installs_the_agent_inside_a_venv(tmp_path):
    """DEVICE.md's install block, run as written (offline: --no-index --no-deps added) in a
    fresh HOME: it makes a venv and installs the wheel there. (The old advice, `pip install
    --user`, fails inside a venv: "User site-packages are not visible in this virtualenv".)"""
    from edgekit.pipeline.agent_wheel import wheel_name, write_agent_wheel
    from edgekit.pipeline.bundle import device_guide

    write_agent_wheel(tmp_path)
    guide = device_guide({"target": {"profile": "raspberry-pi-5", "runtime": "tflite"},
                          "agent_wheel": wheel_name(), "deployed": "model_int8.tflite",
                          "engine": None, "reference": {"samples": 8}})
    assert "--user" not in guide
    block = guide.split("## 1. Install the agent")[1].split("```sh\n")[1].split("```")[0]
    script = block.replace("pip install", "pip install --no-index --no-deps -q")
    env = {"HOME": str(tmp_path / "home"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    (tmp_path / "home").mkdir()
    done = subprocess.run(
        ["sh", "-ec", script + "python3 -c 'import edgekit; print(edgekit.__file__)'\n"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().startswith(str(tmp_path / "home" / "edgekit-env"))
