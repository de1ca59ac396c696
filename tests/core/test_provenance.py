"""Every figure traceable: benchmark JSONs record where they came from, and every number in
README's result tables is in a results JSON or marked as prose from a named file.

A README table with figures carries a marker on the line above it (an HTML comment, not
rendered):

    <!-- figures: docs/results/a.json docs/results/b.json | prose docs/results.md: 73× 9.3× -->

Each figure in the table (decimals, and numbers with ×, pp or %; the first column names
things and is skipped) must be a value in one of the named JSONs, to its printed precision
(pp and % also as a fraction), or be listed after ``prose FILE:``, and then FILE must hold
that value in its text.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURE = re.compile(r"(?<![\w.])([+−-]?\d+(?:\.\d+)?)(\s*(?:pp|×|%))?")
MARKER = re.compile(r"<!--\s*figures:\s*(?P<json>[^|>]*?)\s*(?:\|\s*prose\s+(?P<file>\S+):"
                    r"\s*(?P<prose>[^>]*?))?\s*-->")


def figures(text: str) -> list[tuple[str, float, int, str]]:
    """(as printed, value, decimals, unit) of the figures in ``text``."""
    out = []
    for m in FIGURE.finditer(text):
        number, unit = m.group(1), (m.group(2) or "").strip()
        if "." not in number and not unit:
            continue  # a count or a name ("LeNet-5", "9 of 10"), not a measured figure
        decimals = len(number.split(".")[1]) if "." in number else 0
        out.append((m.group(0).strip(), float(number.replace("−", "-")), decimals, unit))
    return out


def _numbers(obj: object):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)) and math.isfinite(obj):
        yield float(obj)
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _numbers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _numbers(value)


def _found(value: float, decimals: int, unit: str, pool: list[float]) -> bool:
    tolerance = 0.5 * 10.0 ** -decimals + 1e-12
    candidates = [(value, tolerance)]
    if unit in ("pp", "%"):  # stored as a fraction
        candidates.append((value / 100, tolerance / 100))
    return any(abs(v - c) <= tol for c, tol in candidates for v in pool)


def tables(markdown: str) -> list[tuple[str, list[str]]]:
    """(the line above, the table's rows) of every Markdown table."""
    lines, found, i = markdown.splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("|"):
            start = i
            while i < len(lines) and lines[i].startswith("|"):
                i += 1
            found.append((lines[start - 1] if start else "", lines[start:i]))
        i += 1
    return found


def untraced(markdown: str, root: Path) -> list[str]:
    """The table figures of ``markdown`` that its markers do not trace (empty: all traced)."""
    problems = []
    for above, rows in tables(markdown):
        cells = [cell for row in rows[2:] for cell in row.strip("|").split("|")[1:]]
        table_figures = [f for cell in cells for f in figures(cell)]
        if not table_figures:
            continue
        marker = MARKER.search(above)
        if marker is None:
            problems.append(f"table '{rows[0][:50]}' has figures but no figures marker above")
            continue
        pool = [v for name in marker["json"].split()
                for v in _numbers(json.loads((root / name).read_text()))]
        prose = set(marker["prose"].split()) if marker["prose"] else set()
        prose_pool = [v for _, v, _, _ in figures((root / marker["file"]).read_text())] \
            if marker["file"] else []
        for printed, value, decimals, unit in table_figures:
            if printed in prose:
                if not _found(value, decimals, unit, prose_pool):
                    problems.append(f"{printed}: not in {marker['file']}")
            elif not _found(value, decimals, unit, pool):
                problems.append(f"{printed}: in no JSON the marker names ({marker['json']})")
    return problems


def test_every_readme_table_figure_is_in_a_results_json_or_marked_prose():
    assert untraced((ROOT / "README.md").read_text(), ROOT) == []


def test_the_check_fails_on_an_untraced_figure(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"metrics": {"agreement": 0.9987}}))
    (tmp_path / "notes.md").write_text("the file is 73.3x smaller\n")
    table = "| model | agreement |\n| --- | --- |\n| m | {} |\n"
    marker = "<!-- figures: r.json | prose notes.md: 73× -->\n"
    assert untraced(marker + table.format("0.999 (73×)"), tmp_path) == []
    assert untraced(marker + table.format("0.997"), tmp_path) == [
        "0.997: in no JSON the marker names (r.json)"]
    assert untraced(marker + table.format("59×"), tmp_path) == [
        "59×: in no JSON the marker names (r.json)"]
    wrong_prose = "<!-- figures: r.json | prose notes.md: 59× -->\n"
    assert untraced(wrong_prose + table.format("59×"), tmp_path) == ["59×: not in notes.md"]
    assert "no figures marker" in untraced(table.format("0.999"), tmp_path)[0]


def test_benchmark_json_header_records_commit_command_cpu_flags_and_date():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _provenance import run_info
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    info = run_info("zoo", ["--quick"])
    assert info["command"] == "python benchmarks/zoo.py --quick"
    assert re.fullmatch(r"[0-9a-f]{40}", info["commit"]) and isinstance(info["dirty"], bool)
    assert isinstance(info["cpu_flags"], list)
    assert datetime.datetime.fromisoformat(info["date"]).tzinfo is not None


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")
                                          if not p.name.startswith("_")))
def test_every_benchmark_that_writes_json_records_its_provenance(script):
    source = (ROOT / "benchmarks" / script).read_text()
    if "--json" in source:
        assert "run_info(" in source, f"{script} writes JSON without _provenance.run_info"
