"""The compress report's device table: calibrated estimates for the target and the desktop
GPU, with their interval and basis; no roofline figure presented as an estimate."""

import pytest


@pytest.mark.slow
def test_report_shows_target_and_desktop_gpu_with_intervals(quick_compress):
    result = quick_compress("jetson")
    block = result.metrics["device_estimates"]
    assert block["file"] == "model_int8.onnx"
    rows = {row["device"]: row for row in block["rows"]}
    assert list(rows) == ["jetson-orin-nano", "desktop-rtx"]
    for row in rows.values():
        assert row["kind"] == "estimated" and row["latency_ms"] > 0
        assert "transferred from jetson-agx-orin, jetson-xavier-nx" in row["basis"]
    report = (result.out_dir / "report.md").read_text()
    section = report[report.index("## Target vs desktop GPU"):]
    assert "| jetson-orin-nano | estimated | int8 |" in section
    assert "| desktop-rtx | estimated | int8 |" in section
    assert "roofline" not in report  # the lower bound is not shown as what the user will see
    assert "![latency per device](devices.png)" in section
    assert (result.out_dir / "devices.png").read_bytes()[:4] == b"\x89PNG"
    latency = [row for row in result.metrics["latency_rows"] if row["kind"] == "estimated"]
    assert [row["p50_ms"] for row in latency] == [rows["jetson-orin-nano"]["latency_ms"]]
