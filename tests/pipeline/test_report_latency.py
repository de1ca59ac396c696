"""The report's latency table leads with the file the target runs (issue 39): for TensorRT
its device estimate (or a line saying there is none), onnxruntime's host timing in the notes."""

from __future__ import annotations

from edgekit.pipeline.report import latency_section, render_report

HOST = "this workstation, vm (x86_64): onnxruntime 1.32.0"
MEASURED = [{"precision": "fp32", "p50_ms": 0.144, "p90_ms": 0.15, "where": HOST,
             "kind": "measured"},
            {"precision": "int8", "p50_ms": 0.844, "p90_ms": 0.9, "where": HOST,
             "kind": "measured"}]
ESTIMATED = {"precision": "int8", "p50_ms": 0.31, "p90_ms": None,
             "where": "jetson-orin-nx: estimated 0.31 ms (0.2-0.5, from 9 points)",
             "kind": "estimated"}


def _table(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("| ") and "precision" not in line
            and not line.startswith("| ---")]


def test_tensorrt_target_leads_with_the_engine_estimate():
    target = {"profile": "jetson-orin-nx", "runtime": "tensorrt"}
    rows = _table(latency_section({"latency_rows": [*MEASURED, ESTIMATED]}, target))
    assert rows == ["| int8 | 0.310 | – | jetson-orin-nx: estimated 0.31 ms (0.2-0.5, from 9 "
                    "points) | estimated |"]


def test_tensorrt_target_without_an_estimate_says_so_and_notes_the_host_timing():
    target = {"profile": "jetson-orin-nano", "runtime": "tensorrt"}
    lines = latency_section({"latency_rows": MEASURED}, target)
    assert not _table(lines)
    assert any("not timed here (no TensorRT" in line and "not estimated" in line
               for line in lines)
    manifest = {"recipe": {"model": "m", "data": "d", "precision": "int8", "epochs": 1,
                           "qat_epochs": 1},
                "target": target, "edgekit_version": "0", "duration_s": 1.0,
                "artifacts": {}, "metrics": {"latency_rows": MEASURED, "notes": []}}
    report = render_report(manifest)
    notes = report[report.index("## Notes"):]
    assert "fp32 p50 0.144 ms, int8 p50 0.844 ms (measured)" in notes
    assert "0.844" not in report[:report.index("## Notes")]


def test_onnxruntime_target_leads_with_the_deployed_int8_file():
    target = {"profile": "x86-cpu", "runtime": "onnxruntime"}
    rows = _table(latency_section({"latency_rows": [*MEASURED, ESTIMATED]}, target))
    assert [r.split(" | ")[0] for r in rows] == ["| int8", "| int8", "| fp32"]
    assert rows[0].endswith("| measured |")
