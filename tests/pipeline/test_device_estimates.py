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


@pytest.mark.slow
def test_result_estimates_are_the_reports_calibrated_figures(quick_compress):
    import edgekit
    from edgekit.devices.calibrated import LayerEstimate

    result = quick_compress("jetson")
    rows = result.metrics["device_estimates"]["rows"]
    assert [e.device for e in result.estimates] == ["jetson-orin-nano", "desktop-rtx"]
    for est, row in zip(result.estimates, rows, strict=True):
        assert isinstance(est, LayerEstimate) and est.latency_ms == row["latency_ms"]
        assert est.low_ms < est.latency_ms < est.high_ms and est.source
    # the same figure from the public function, on the deployed file
    alone = edgekit.estimate_latency(result.deployed, "jetson")
    assert alone.latency_ms == pytest.approx(result.estimates[0].latency_ms)
    assert (alone.low_ms, alone.high_ms) == pytest.approx(
        (result.estimates[0].low_ms, result.estimates[0].high_ms))
    # the roofline lower bound only under its own name, below the calibrated estimate
    bounds = {b.precision: b for b in result.roofline_bounds}
    assert bounds["int8"].kind == "lower bound"
    assert bounds["int8"].latency_ms < result.estimates[0].latency_ms
