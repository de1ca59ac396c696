"""The package's thin front: light import, registry errors, atomic writes, CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgekit.core.errors import EdgekitError, OutputError, UnknownNameError
from edgekit.core.io import atomic_path, atomic_write_json, check_writable
from edgekit.core.registry import Registry, close_names

HEAVY = ["torch", "nncf", "onnxruntime", "onnx", "ai_edge_litert", "litert_torch", "tensorrt"]


def test_import_edgekit_loads_no_heavy_backend():
    code = (
        "import sys, json, edgekit, edgekit.cli; edgekit.cli.build_parser();"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_edgekit_compress_is_callable_in_a_fresh_interpreter():
    # the README's `import edgekit; edgekit.compress(...)`, with nothing imported before
    code = ("import sys, json, edgekit; f = edgekit.compress;"
            f"print(json.dumps([callable(f), 'compress' in dir(edgekit),"
            f" [m for m in {HEAVY!r} if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [True, True, []]


def test_registry_unknown_name_suggests_close_names():
    reg: Registry[int] = Registry("thing")
    reg.register("mobilenet_v2")(1)
    reg.register("mobilenet_v3_small")(2)
    with pytest.raises(UnknownNameError, match="did you mean: mobilenet_v2") as info:
        reg.get("mobilenet_v22")
    assert isinstance(info.value, EdgekitError)
    assert reg.names("mobilenet_v3*") == ["mobilenet_v3_small"]
    with pytest.raises(ValueError, match="twice"):
        reg.register("mobilenet_v2")(3)


def test_registry_names_where_to_list_entries():
    listed: Registry[int] = Registry("model", listed_by="edgekit models")
    small: Registry[int] = Registry("data set")
    small.register("mnist5k")(1)
    with pytest.raises(UnknownNameError, match="list them with `edgekit models`"):
        listed.get("nope")
    with pytest.raises(UnknownNameError, match=r"known: mnist5k\)"):
        small.get("nope")


@pytest.mark.parametrize(("typo", "meant"), [
    ("mobilenetv2", "mobilenet_v2"), ("MobileNet-V2", "mobilenet_v2"), ("mobilenet_v22",
    "mobilenet_v2"), ("lenet6", "lenet5"), ("shuflenet_v1", "shufflenet_v1"), ("onx", "onnx"),
])
def test_close_names_suggest_typos(typo, meant):
    names = ["mobilenet_v2", "mobilenet_v3_small", "lenet5", "shufflenet_v1", "onnx"]
    assert close_names(typo, names)[0] == meant
    reg: Registry[int] = Registry("thing")
    for i, name in enumerate(names):
        reg.register(name)(i)
    with pytest.raises(UnknownNameError, match=f"did you mean: {meant}"):
        reg.get(typo)


@pytest.mark.parametrize("name", ["resnet50", "marsrover", "gpu", "vgg", "efficientnet"])
def test_close_names_stay_quiet_for_unrelated_names(name):
    names = ["mobilenet_v2", "lenet5", "shufflenet_v1", "cpu", "xavier", "espnet", "onnx"]
    assert close_names(name, names) == []
    reg: Registry[int] = Registry("thing")
    for i, entry in enumerate(names):
        reg.register(entry)(i)
    with pytest.raises(UnknownNameError) as info:
        reg.get(name)
    assert "did you mean" not in str(info.value)


def test_lazy_exports_survive_their_submodule_being_imported_first():
    code = ("import edgekit.models.lowbit.materialization, edgekit.lowbit as lb;"
            "print(callable(lb.materialize), lb.materialize.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "edgekit.models.lowbit.materialization"]
    from edgekit.core.lazy import lazy_exports

    with pytest.raises(ValueError, match="submodule names"):
        lazy_exports("pkg", {"tool": "pkg.tool"})


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_check_writable_accepts_new_and_existing_outputs_and_creates_nothing(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "run").mkdir()
    check_writable(tmp_path / "new" / "deeper" / "r.json")  # missing folders are made later
    check_writable(tmp_path / "old.json")
    check_writable(tmp_path / "run", kind="dir")
    check_writable(str(tmp_path / "fresh"), kind="dir")
    check_writable(None)  # an output nobody asked for
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json", "run"]
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize(("rel", "kind", "message"), [
    ("file.txt/out.json", "file", "is a file, not a directory"),  # a parent is a file
    ("file.txt/a/b", "dir", "is a file, not a directory"),
    ("file.txt", "dir", "exists and is not a directory"),
    ("folder", "file", "exists and is not a file"),
])
def test_check_writable_refuses_the_wrong_kind(tmp_path, rel, kind, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match=message):
        check_writable(tmp_path / rel, kind=kind)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "folder"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_check_writable_probes_instead_of_trusting_os_access():
    # os.access("/proc", W_OK) is True for root, yet nothing can be created there
    with pytest.raises(OutputError, match="cannot create files in /proc"):
        check_writable("/proc/nope", kind="dir")
    with pytest.raises(OutputError, match="cannot create files in /proc"):
        check_writable("/proc/edgekit-missing/r.json")
    assert isinstance(OutputError("x"), EdgekitError)  # so the CLI prints one line, exit 2


def test_cli_output_into_a_closed_pipe_is_quiet():
    # `edgekit ... | head`: the reader has gone before the command writes
    read, write = os.pipe()
    os.close(read)
    with subprocess.Popen([sys.executable, "-m", "edgekit", "models", "lenet5"], stdout=write,
                          stderr=subprocess.PIPE, text=True) as proc:
        os.close(write)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141
    assert err == ""


def test_cli_without_command_prints_help():
    out = subprocess.run([sys.executable, "-m", "edgekit"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "usage: edgekit" in out.stdout


def test_export_verify_and_bench_are_reachable_after_import_edgekit_alone():
    code = ("import sys, json, edgekit;"
            "r = [callable(edgekit.export.export), callable(edgekit.verify),"
            " callable(edgekit.bench.benchmark), callable(edgekit.Preprocess)];"
            f"print(json.dumps([r, [m for m in {HEAVY!r} if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [[True, True, True, True], []]
