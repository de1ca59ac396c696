"""Result schema validation and the Markdown + self-contained HTML report."""

from __future__ import annotations

import base64
import copy
import json
import re

import pytest

from edgekit.bench import BenchConfig, TimingConfig, benchmark, validate_result
from edgekit.bench.report import write_report
from edgekit.core.errors import DataError


@pytest.fixture(scope="module")
def measured(onnx_model):
    return benchmark(onnx_model, BenchConfig(timing=TimingConfig(runs=10, warmup=2),
                                             power="none", precision="fp32"))


def test_validator_names_the_bad_field(measured):
    bad = copy.deepcopy(measured)
    bad["schema_version"] = 99
    with pytest.raises(DataError, match="schema_version"):
        validate_result(bad)
    bad = copy.deepcopy(measured)
    del bad["latency_ms"]["p99"]
    with pytest.raises(DataError, match=r"latency_ms\.p99"):
        validate_result(bad)
    bad = copy.deepcopy(measured)
    bad["schema_version"] = 1  # its memory.peak_rss_mb was the process lifetime peak
    with pytest.raises(DataError, match="this edgekit reads 2"):
        validate_result(bad)
    bad = copy.deepcopy(measured)
    del bad["memory"]["peak_rss_method"]  # a memory figure must say how it was measured
    with pytest.raises(DataError, match=r"memory\.peak_rss_method"):
        validate_result(bad)
    bad["memory"]["peak_rss_method"] = "x"
    bad["memory"]["peak_rss_during_bench_mb"] = "300"
    with pytest.raises(DataError, match=r"peak_rss_during_bench_mb must be number or null"):
        validate_result(bad)
    bad = copy.deepcopy(measured)
    bad["power"] = {"available": True}  # a claim of power without a number
    with pytest.raises(DataError, match="energy_per_inference_mj"):
        validate_result(bad)
    bad["power"] = {"available": False}  # unavailable without a reason
    with pytest.raises(DataError, match="reason"):
        validate_result(bad)


def test_report_labels_measured_and_estimated_and_embeds_plots(measured, tmp_path):
    import warnings

    from matplotlib import MatplotlibDeprecationWarning

    int8 = copy.deepcopy(measured)
    int8["model"]["precision"] = "int8"
    with_energy = copy.deepcopy(measured)
    with_energy.update(kind="estimated", label="estimated on jetson-nano")
    with_energy["device"]["profile"] = "jetson-nano"
    with_energy["power"] = {"available": True, "energy_per_inference_mj": 4.0,
                            "energy_per_inference_mj_uncertainty": 0.5, "sampler": "roofline",
                            "sample_rate_hz": 0.0}
    files = []
    for i, r in enumerate([measured, int8, with_energy]):
        files.append(tmp_path / f"r{i}.json")
        files[-1].write_text(json.dumps(r))
    with warnings.catch_warnings():  # edgekit's plots use no argument matplotlib retires
        warnings.simplefilter("error", MatplotlibDeprecationWarning)
        md_path, html_path = write_report(files, tmp_path / "report")
    md, page = md_path.read_text(), html_path.read_text()
    assert "| measured | tiny.onnx | onnxruntime | fp32 |" in md
    assert "| estimated |" in md
    assert "unavailable (disabled (--power none))" in md
    assert "Latency distributions (measured)" in md
    assert "fp32 vs int8 per runtime (measured)" in md
    assert "Latency vs energy per inference across devices (measured)" in md
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 3 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert "src='http" not in page  # self-contained
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "figure-1.png", "figure-2.png", "figure-3.png", "report.html", "report.md"]


def test_estimated_record_from_the_cli_goes_into_the_report(measured, onnx_model, tmp_path):
    import subprocess
    import sys

    est = tmp_path / "est.json"
    run = subprocess.run([sys.executable, "-m", "edgekit", "devices", "jetson-nano", "--model",
                          str(onnx_model), "--result", str(est), "--model-name", "mobilenet_v2"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    record = validate_result(json.loads(est.read_text()))
    assert record["kind"] == "estimated" and record["power"]["available"] is False
    # the calibrated estimate, with its interval and basis, not the roofline bound
    assert record["latency_ms"]["p50"] == pytest.approx(record["estimate"]["latency_ms"])
    assert record["latency_ms"]["p50"] > 2 * 55328 / 236e9 * 1e3
    assert "transferred from" in record["estimate"]["text"]
    measured_file = tmp_path / "m.json"
    measured_file.write_text(json.dumps(measured))
    md_path, _ = write_report([measured_file, est], tmp_path / "out")
    md = md_path.read_text()
    assert "| estimated | mobilenet_v2 | tensorrt | fp32 | jetson-nano |" in md
    assert "| measured | tiny.onnx |" in md


def test_report_on_a_bad_file_writes_nothing(measured, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json"):
        write_report([bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()
