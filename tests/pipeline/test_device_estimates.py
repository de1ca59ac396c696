"""The compress report's device table: the target and the GPU, each figure resting on the
device's own published points; no transferred estimate, no power-budget bound and no
roofline figure in it."""

import pytest


@pytest.mark.slow
def test_report_shows_target_and_gpu_without_transferred_figures(quick_compress):
    result = quick_compress("jetson")
    block = result.metrics["device_estimates"]
    assert block["file"] == "model_int8.onnx"
    rows = {row["device"]: row for row in block["rows"]}
    assert list(rows) == ["jetson-orin-nano", "a10"]
    # the Orin Nano has no published points of its own: named, not estimated
    assert rows["jetson-orin-nano"]["kind"] == "unmeasured"
    assert "latency_ms" not in rows["jetson-orin-nano"]
    gpu = rows["a10"]
    assert gpu["kind"] == "estimated" and gpu["latency_ms"] > 0 and gpu["points"] == 9
    assert gpu["interval_ms"][0] <= gpu["latency_ms"] <= gpu["interval_ms"][1]
    report = (result.out_dir / "report.md").read_text()
    section = report[report.index("## Target vs GPU"):]
    assert "| jetson-orin-nano | unmeasured | 0 |" in section
    assert "| a10 | estimated | 9 | int8 |" in section
    assert "transferred" not in section and "(bound)" not in section
    assert "power-mode budget" not in section
    assert "roofline" not in report  # the lower bound is not shown as what the user will see
    assert "![latency per device](devices.png)" in section
    assert (result.out_dir / "devices.png").read_bytes()[:4] == b"\x89PNG"
    # the latency table shows no estimate for a target without points of its own
    assert not [row for row in result.metrics["latency_rows"] if row["kind"] != "measured"]
