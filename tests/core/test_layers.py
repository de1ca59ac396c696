"""The layout's contract, checked on the source: no import cycle inside edgekit (function-level
imports included), no module over the size budget, and registries full on import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgekit"
MAX_MODULE_LINES = 450  # ARCHITECTURE.md: split a module before ~400 lines


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """{module: edgekit modules it imports}, every import statement in the file included."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[module] = {t for t in map(resolve, targets) if t and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_inside_edgekit():
    graph = _import_graph()
    assert len(graph) > 100  # the walk found the package
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_the_size_budget():
    sizes = {_module_name(p): p.read_text().count("\n") for p in PACKAGE.rglob("*.py")}
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


@pytest.mark.parametrize("package, registry", [
    ("edgekit.runtime", "RUNNERS"),
    ("edgekit.devices.power", "SAMPLERS"),
    ("edgekit.models.registry", "MODELS"),
    ("edgekit.export.capabilities", "FORMATS"),
])
def test_registry_is_full_right_after_importing_its_package(package, registry):
    # a fresh interpreter: nothing else imported first could have filled it
    code = (f"import json, {package} as p; r = p.{registry};"
            "print(json.dumps(sorted(r)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = json.loads(out.stdout)
    expected = {"edgekit.runtime": {"onnxruntime", "litert", "tensorrt", "torch"},
                "edgekit.devices.power": {"jetson-hwmon", "jetson-ina3221x", "tegrastats",
                                          "nvml", "rapl", "external"},
                "edgekit.models.registry": {"mobilenet_v2", "shufflenet_v2_x1_0", "lenet5",
                                            "binary_mlp"},
                "edgekit.export.capabilities": {"onnx", "tflite", "engine"}}[package]
    assert expected <= set(names)


def test_device_profiles_are_listed_right_after_import():
    code = "import json, edgekit.devices as d; print(json.dumps(d.list_profiles()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert {"jetson-orin-nano", "raspberry-pi-5", "x86-cpu"} <= set(json.loads(out.stdout))
