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


@pytest.mark.slow
def test_result_estimates_are_the_reports_calibrated_figures(quick_compress):
    import edgekit
    from edgekit.devices.calibrated import LayerEstimate

    result = quick_compress("jetson")
    rows = [r for r in result.metrics["device_estimates"]["rows"] if r["kind"] == "estimated"]
    # the target (Orin Nano) has no points of its own: the report gives it no figure, and
    # neither does the result
    assert [e.device for e in result.estimates] == ["a10"]
    for est, row in zip(result.estimates, rows, strict=True):
        assert isinstance(est, LayerEstimate) and est.latency_ms == row["latency_ms"]
        assert est.low_ms < est.latency_ms < est.high_ms and est.source
        assert est.points == row["points"] == 9 and est.kind == "estimated"
    # the same figure from the public function, on the deployed file
    alone = edgekit.estimate_latency(result.deployed, "desktop-gpu")
    assert alone.latency_ms == pytest.approx(result.estimates[0].latency_ms)
    assert (alone.low_ms, alone.high_ms) == pytest.approx(
        (result.estimates[0].low_ms, result.estimates[0].high_ms))
    # asked for the target directly, the estimate is labelled as borrowed
    target = edgekit.estimate_latency(result.deployed, "jetson")
    assert target.device == "jetson-orin-nano"
    assert target.kind == "transferred" and target.points == 0
    # the roofline lower bound only under its own name, below the target's estimate
    bounds = {b.precision: b for b in result.roofline_bounds}
    assert bounds["int8"].kind == "lower bound"
    assert bounds["int8"].latency_ms < target.latency_ms
