"""The comparison table and plot (edgekit.bench.compare) without the CLI: the compress
report's variant prints no budget bound, and the plot carries an energy panel."""

from __future__ import annotations

import pytest

from edgekit.bench.compare import compare_devices, plot_png, table_lines


def test_report_table_hides_the_budget_bound_and_unmeasured_rows_carry_no_figure(onnx_model):
    rows = compare_devices(onnx_model, devices=["jetson-orin-nano", "t4", "jetson-xavier-nx"])
    nano, t4, nx = rows
    assert nano["kind"] == "unmeasured" and "latency_ms" not in nano
    assert t4["energy_mj"] is None and t4["energy_upper_bound_mj"] > 0
    assert nx["energy_mj"] is not None  # measured MLPerf power behind it
    report = "\n".join(table_lines(rows, bounds=False))
    assert "(bound)" not in report and "power-mode budget" not in report
    assert "| t4 | estimated | 8 |" in report and "no measured power" in report
    cli = "\n".join(table_lines(rows))
    assert "(bound)" in cli and "upper bound" in cli  # the CLI labels it as a bound


def test_plot_has_latency_and_energy_panels(onnx_model):
    pytest.importorskip("matplotlib")
    rows = compare_devices(onnx_model, devices=["jetson-xavier-nx", "a10"])
    png = plot_png(rows, "test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
