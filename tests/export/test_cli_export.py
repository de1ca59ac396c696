"""`edgekit check / quantize / export / verify` end to end (real zoo model, real runtimes)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgekit.cli import main


def test_check_zoo_model_lists_float_ops(capsys):
    assert main(["check", "--target", "tensorrt", "mobilenet_v3_small", "--input-size", "32",
                 "--in-channels", "1", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "HardSwish" in out and "none unsupported" in out


def test_check_a_factory_outside_the_zoo(capsys):
    assert main(["check", "--target", "tflite", "tests.helpers:SmallNet", "--model-args",
                 '{"channels": 3}', "--input-size", "16", "--all"]) == 0
    out = capsys.readouterr().out
    assert "HardSwish" in out and "tests.helpers:SmallNet: 0 op(s) run in float" in out


def test_check_unsupported_op_is_one_line_exit_2(tmp_path, capsys):
    from onnx import TensorProto, helper, save

    node = helper.make_node("Det", ["x"], ["y"], name="head/det")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [])])
    save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    assert main(["check", "--target", "tensorrt", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Det" in err and "head/det" in err and "tensorrt" in err


def test_check_a_damaged_onnx_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    assert main(["check", "--target", "tensorrt", str(tmp_path / "bad.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a readable ONNX file" in err


@pytest.fixture(scope="module")
def lenet_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "lenet"
    assert main(["train", "--model", "lenet5", "--data", "mnist5k", "--epochs", "2",
                 "--train-limit", "800", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_quantize_for_tensorrt_writes_verified_onnx_and_plan(lenet_checkpoint, tmp_path, capsys):
    out = tmp_path / "lenet.engine"
    assert main(["quantize", str(lenet_checkpoint), "--target", "tensorrt", "--out", str(out),
                 "--epochs", "1", "--calibration-size", "128", "--limit", "300",
                 "--threshold", "0.9", "--json", str(tmp_path / "a.json")]) == 0
    text = capsys.readouterr().out
    assert "agreement" in text and "trtexec" in text
    record = json.loads((tmp_path / "a.json").read_text())
    assert record["format"] == "onnx" and record["precision"] == "int8"
    # onnxruntime's x86 AVX2 int8 kernels (no VNNI) can round/saturate differently from
    # TensorRT's arithmetic; the agreement is reported, the CLI threshold is an option
    assert record["verify"]["agreement"] >= 0.9 and record["verify"]["samples"] == 300
    assert (tmp_path / "lenet.onnx").is_file() and (tmp_path / "lenet.trt.json").is_file()


@pytest.mark.slow
def test_export_then_verify_float(lenet_checkpoint, tmp_path, capsys):
    onnx_path = tmp_path / "f.onnx"
    assert main(["export", str(lenet_checkpoint), "--format", "onnx", "--out", str(onnx_path),
                 "--limit", "200"]) == 0
    assert main(["verify", str(onnx_path), "--reference", str(lenet_checkpoint), "--limit",
                 "200", "--json", str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["agreement"] == 1.0


def test_quantize_rejects_wrong_suffix(lenet_checkpoint, tmp_path, capsys):
    assert main(["quantize", str(lenet_checkpoint), "--target", "onnxruntime",
                 "--out", str(tmp_path / "x.tflite")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err


def test_unwritable_outputs_fail_before_loading_the_checkpoint(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    for argv in (["export", missing, "--format", "onnx", "--out", "/proc/m.onnx"],
                 ["quantize", missing, "--target", "tflite", "--out", "/proc/m.tflite"],
                 ["export", missing, "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                  "--json", "/proc/r.json"],
                 ["check", "--target", "tflite", "lenet5", "--json", "/proc/r.json"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot create files in /proc" in err, (argv, err)
    assert list(tmp_path.iterdir()) == []
