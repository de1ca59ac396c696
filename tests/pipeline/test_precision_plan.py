"""The precision plan in `edgekit compress`: recipe keys, CLI flags, manifest, report, resume.

Real runs of the pipeline on the embedded data (onnxruntime profiler, nncf PTQ, the
deployed file verified against the trained mixed model); the benchmark is patched to fail
where a test needs an unfinished run to resume.
"""

from __future__ import annotations

import pytest

import edgekit
from edgekit.cli import main
from edgekit.core.errors import InvalidInputError
from edgekit.pipeline import measure
from edgekit.pipeline.recipe import CompressRecipe

QUICK = {"epochs": 1, "qat_epochs": 0, "train_limit": 400, "bench_runs": 5,
         "bench_power": "none"}


def test_recipe_keys_and_their_checks(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[compress]\nmax_drop = 0.5\nkeep_float = ["fc1", "features.0"]\n')
    recipe = CompressRecipe.from_toml(path)
    assert recipe.max_drop == 0.5 and recipe.keep_float == ["fc1", "features.0"]
    assert CompressRecipe().max_drop is None and CompressRecipe().keep_float == []
    for bad in ({"max_drop": -1.0}, {"keep_float": "fc1"}, {"keep_float": [""]},
                {"keep_float": [3]}):
        with pytest.raises(InvalidInputError):
            CompressRecipe(**bad)
    with pytest.raises(InvalidInputError, match="TFLite"):
        edgekit.compress("lenet5", "raspberry-pi-5", out=tmp_path / "o", max_drop=0.5, **QUICK)
    assert not (tmp_path / "o").exists()
    # a misspelt layer stops before training, not in the quantize stage after it
    trained = []
    with pytest.raises(InvalidInputError, match=r"keep_float names no module.*fc9"):
        edgekit.compress("lenet5", "x86-cpu", out=tmp_path / "o", keep_float=["fc9"],
                         log=trained.append, **QUICK)
    assert not any("training" in line for line in trained)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o*"))


@pytest.mark.slow
def test_max_drop_plan_is_measured_recorded_and_verified(tmp_path):
    out = tmp_path / "run"
    result = edgekit.compress("lenet5", "x86-cpu", out=out, max_drop=0.5, log=lambda _: None,
                              **QUICK)
    plan = result.manifest["metrics"]["precision_plan"]
    assert plan["chosen_by"] == "max_drop 0.5 pp" and plan["latency_source"] == "measured"
    assert {row["layer"] for row in plan["layers"]} == {"features.0", "features.2", "fc1",
                                                         "fc2"}
    assert all(row["latency"] == "measured" for row in plan["layers"])  # each found a block
    # rule (a): every layer timed slower in int8 than in float is float
    for row in plan["layers"]:
        if row["int8_us"] > row["float_us"]:
            assert row["precision"] == "float"
    assert plan["within_budget"] == (plan["drop_pp"] <= 0.5)
    assert set(plan["keep_float"]) == {r["layer"] for r in plan["layers"]
                                       if r["precision"] == "float"}
    report = (out / "report.md").read_text()
    assert "## Precision plan" in report
    assert f"int8 share: {100 * plan['int8_mac_share']:.0f}% of MACs" in report
    assert result.verification.passed  # the mixed file matches the trained mixed model


@pytest.mark.slow
def test_a_resumed_run_with_another_plan_quantizes_again(tmp_path, monkeypatch):
    out, messages = tmp_path / "run", []

    def bench_fails(*args, **kwargs):
        raise RuntimeError("the benchmark broke")

    monkeypatch.setattr(measure, "bench", bench_fails)
    with pytest.raises(RuntimeError, match="benchmark broke"):
        edgekit.compress("lenet300_100", "x86-cpu", out=out, log=messages.append,
                         keep_float=["fc3"], **QUICK)
    messages.clear()  # the same plan: export reused
    with pytest.raises(RuntimeError, match="benchmark broke"):
        edgekit.compress("lenet300_100", "x86-cpu", out=out, log=messages.append,
                         resume=True, keep_float=["fc3"], **QUICK)
    assert "export: reused from the unfinished run (stage record matches)" in messages
    messages.clear()  # another plan: quantized and exported again
    with pytest.raises(RuntimeError, match="benchmark broke"):
        edgekit.compress("lenet300_100", "x86-cpu", out=out, log=messages.append,
                         resume=True, keep_float=["fc1"], **QUICK)
    assert not any(m.startswith("export: reused") for m in messages)
    assert any("int8 PTQ" in m for m in messages)


def test_cli_flags_reach_the_recipe(tmp_path, capsys):
    # a bad layer fails after training, in one line, with exit 2 and no traceback
    code = main(["compress", "--model", "lenet300_100", "--target", "x86-cpu", "--epochs", "1",
                 "--train-limit", "200", "--qat-epochs", "0", "--keep-float", "fc9,fc1",
                 "--power", "none", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "keep_float names no module" in err and "Traceback" not in err
    code = main(["compress", "--max-drop", "-1", "--out", str(tmp_path / "p")])
    assert code == 2 and "max_drop must be >= 0" in capsys.readouterr().err


def test_manifest_plan_by_hand_is_in_the_report():
    from edgekit.pipeline.plan_report import report_lines

    lines = report_lines({"chosen_by": "hand", "keep_float": ["fc1"]})
    assert "## Precision plan" in lines and any("`fc1`" in line for line in lines)
    assert report_lines(None) == []


def test_tensorrt_plan_latency_is_the_device_models_estimate_per_block(tmp_path):
    """No TensorRT here: each block's float (fp16) and int8 time come from the target's
    calibrated per-kernel model, and the kernels' times add up to its whole-file estimate."""
    from types import SimpleNamespace

    from edgekit.bench.layers import named_onnx_records
    from edgekit.devices import get_profile
    from edgekit.devices.calibrated import as_precision, estimate, kernel_latency_s
    from edgekit.export.onnx import export_onnx
    from edgekit.pipeline.precision import _estimated_latency
    from tests.helpers import small_model

    model = small_model("lenet5").eval()
    for device in ("a10", "jetson-orin-nano"):  # its own points; borrowed from its family
        ctx = SimpleNamespace(profile=get_profile(device), input_shape=(1, 28, 28), notes=[])
        latency = _estimated_latency(ctx, model)
        assert {"features", "fc1", "fc2"} <= set(latency) and not ctx.notes
        assert all(v.source == "estimated" and v.int8_us > 0 and v.float_us > 0
                   for v in latency.values())
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(1, 28, 28)).path
    records = as_precision([r for _, r in named_onnx_records(path)], "int8")
    whole = estimate("a10", records).latency_ms
    assert sum(kernel_latency_s("a10", records)) * 1e3 == pytest.approx(whole, rel=1e-9)
