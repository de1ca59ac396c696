"""Per-layer sensitivity and the max-drop precision plan, on a model built to be fragile.

Real nncf PTQ (onnxruntime scheme), real evaluation on held-out data; nothing mocked.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.quantization import (  # noqa: E402
    LayerLatency,
    QuantConfig,
    plan_precision,
    quantize,
    sensitivity,
)
from edgekit.quantization.sensitivity import Scorer, calibrate_for  # noqa: E402
from tests.helpers import block_data, fragile_net  # noqa: E402


@pytest.fixture(scope="module")
def fragile():
    return fragile_net()


@pytest.fixture(scope="module")
def calibrated(fragile):
    return calibrate_for(fragile, "onnxruntime", block_data(128, seed=1), calibration_size=128)


def test_sensitivity_names_the_fragile_layer_first(fragile, calibrated):
    rows = sensitivity(fragile, block_data(400, seed=2), "onnxruntime", quantized=calibrated)
    mix = rows[0]
    assert mix.layer == "mix"
    assert {r.layer for r in rows} == {"stem", "body", "mix", "head"}
    assert mix.metric_gain_pp >= 2.0 and mix.error_reduction > 0
    assert mix.macs == 32 * 16 * 4 * 4  # a 1x1 conv on 4x4
    assert all(r.metric_gain_pp < mix.metric_gain_pp for r in rows[1:])


def test_max_drop_plan_recovers_the_fragile_model(fragile, calibrated, tmp_path):
    val = block_data(400, seed=2)
    plan = plan_precision(fragile, val, "onnxruntime", max_drop=0.5, quantized=calibrated)
    assert plan.int8_drop_pp >= 2.0  # plain int8 loses the budget several times over
    assert plan.within_budget and plan.drop_pp <= 0.5
    assert "mix" in plan.keep_float
    assert plan.int8_mac_share >= 0.9  # mix is ~1% of the MACs
    assert plan.steps[0].kept_float == 0 and plan.steps[-1].drop_pp == plan.drop_pp
    assert plan.latency_source == "unknown"  # no latency given: accuracy alone
    assert plan.samples == 400  # one changed answer: 0.25 pp

    # the plan as a real keep_float quantization gives back what the switch measured
    qm = quantize(fragile, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=128,
                                       keep_float=plan.keep_float),
                  calib_data=block_data(128, seed=1))
    scorer = Scorer(fragile, val)
    assert scorer.float_metric - scorer.measure(qm.model)[0] <= 0.5
    # the exported mixed file names its plan in its metadata
    from edgekit.export.onnx import export_onnx, read_metadata

    path = export_onnx(qm, tmp_path / "mixed.onnx").path
    assert json.loads(read_metadata(path)["keep_float"]) == list(plan.keep_float)


def test_layers_timed_slower_in_int8_are_float_first(fragile, calibrated):
    latency = {"stem": LayerLatency(10.0, 30.0, "measured"),  # int8 slower: float
               "body": LayerLatency(100.0, 40.0, "measured")}
    plan = plan_precision(fragile, block_data(200, seed=2), "onnxruntime", max_drop=100.0,
                          latency=latency, quantized=calibrated)
    assert plan.keep_float == ("stem",)  # the budget asks for nothing more
    assert len(plan.steps) == 1 and plan.steps[0].latency_us == 10.0 + 40.0
    table = {row["layer"]: row for row in plan.layers}
    assert table["stem"]["precision"] == "float" and table["body"]["precision"] == "int8"
    assert table["mix"]["latency"] == "unknown" and table["body"]["latency"] == "measured"
    with pytest.raises(InvalidInputError, match="max_drop"):
        plan_precision(fragile, block_data(50), max_drop=-1, quantized=calibrated)
    with pytest.raises(InvalidInputError, match="tensorrt"):
        sensitivity(fragile, block_data(50), "tflite")


def test_inputs_alone_score_agreement_and_hand_choices_come_first(fragile, calibrated):
    x = block_data(200, seed=2).x  # no labels: top-1 agreement with the float model
    plan = plan_precision(fragile, x, max_drop=0.5, quantized=calibrated)
    assert plan.metric == "top1_agreement" and plan.float_metric == 100.0
    assert plan.keep_float == ("mix",) and plan.int8_drop_pp >= 2.0
    by_hand = plan_precision(fragile, x, max_drop=0.5, quantized=calibrated,
                             keep_float=("head",))
    assert by_hand.keep_float[0] == "head" and "mix" in by_hand.keep_float
    with pytest.raises(InvalidInputError, match="no weight-quantized layer"):
        plan_precision(fragile, x, quantized=calibrated, keep_float=("nope",))
