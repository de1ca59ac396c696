"""`edgekit compress` refuses what cannot work in one line, exit 2, and leaves nothing behind:
weights that are not weights, a pickled module, an output path that is a file, a truncated
image, int8 for a device without it. And a target without int8 gets what it runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from edgekit.cli import main

QUICK = ["--epochs", "1", "--qat-epochs", "0", "--train-limit", "100", "--bench-runs", "3",
         "--power", "none"]


def _refused(capsys, tmp_path, argv: list[str], *why: str, absent: tuple[str, ...] = ()
             ) -> str:
    """compress ARGV fails with one line naming ``why``; tmp_path gains nothing."""
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["compress", "--model", "lenet300_100", *argv]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("edgekit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(w in lines[0] for w in why), lines[0]
    assert not any(a in err for a in absent), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .partial, no output
    return lines[0]


@pytest.mark.parametrize("content", [
    pytest.param(np.random.default_rng(0).bytes(4096), id="random-bytes"),
    pytest.param(b"edgekit garbage " * 200, id="text"),
    pytest.param(b"\x80\x02" + np.random.default_rng(1).bytes(4094), id="pickle-header"),
    pytest.param(b"PK\x03\x04" + np.random.default_rng(2).bytes(4092), id="zip-header"),
])
def test_garbage_weights_are_one_line_and_never_relay_torchs_advice(content, tmp_path,
                                                                    capsys):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(content)
    line = _refused(capsys, tmp_path, ["--target", "rpi", "--weights", str(weights),
                                       "--out", str(tmp_path / "out"), *QUICK],
                    "weights.pt: not an edgekit checkpoint, safetensors file or PyTorch "
                    "state dict", absent=("weights_only` set to `False", "will likely succeed",
                                          "\x1b["))
    assert "False" not in line


def test_a_pickled_module_is_refused_with_the_advice_to_save_its_state_dict(tmp_path, capsys):
    weights = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(4, 2), weights)  # the whole module, pickled
    _refused(capsys, tmp_path, ["--target", "rpi", "--weights", str(weights), "--out",
                                str(tmp_path / "out"), *QUICK],
             "holds a pickled torch.nn.modules.linear.Linear", "save model.state_dict()",
             absent=("will likely succeed", "\x1b[", "weights_only` set to `False"))


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("a file")
    _refused(capsys, tmp_path, ["--target", "rpi", "--out", str(tmp_path / "taken"), *QUICK],
             "taken is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "a file"


def test_a_truncated_png_is_found_by_the_scan_and_leaves_no_partial(tmp_path, capsys):
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    for cls in ("ant", "bee"):
        (data / cls).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(data / cls / f"{i}.png")
    good = (data / "bee" / "5.png").read_bytes()
    (data / "bee" / "5.png").write_bytes(good[: len(good) // 2])  # whole header, cut pixels
    line = _refused(capsys, tmp_path, ["--target", "rpi", "--data", str(data), "--out",
                                       str(tmp_path / "out"), *QUICK],
                    "5.png: cannot decode image", "truncated")
    assert "--resume" not in line


def test_int8_is_refused_where_the_device_has_none(tmp_path, capsys):
    _refused(capsys, tmp_path, ["--target", "jetson-nano", "--precision", "int8", "--out",
                                str(tmp_path / "out"), *QUICK],
             "jetson-nano has no int8 (fp32, fp16 only)")
    _refused(capsys, tmp_path, ["--target", "rpi", "--precision", "fp16", "--out",
                                str(tmp_path / "out"), *QUICK],
             "fp16 is built only as a TensorRT engine")
    capsys.readouterr()
    assert main(["quantize", str(tmp_path), "--target", "nano", "--out",
                 str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err == ("edgekit: error: jetson-nano has no int8 (fp32, fp16 "
                                       "only): int8 files cannot run there\n")


def test_check_takes_device_names_and_aliases(capsys):
    for target, runtime in (("jetson", "tensorrt"), ("rpi", "tflite"), ("tflite", "tflite"),
                            ("jetson-nano", "tensorrt")):
        assert main(["check", "lenet5", "--target", target]) == 0
        assert f"on {runtime}" in capsys.readouterr().out
    assert main(["check", "lenet5", "--target", "no-such-board"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown device profile 'no-such-board'" in err


@pytest.mark.slow
def test_a_data_error_after_real_work_leaves_no_partial_offering_resume(tmp_path, monkeypatch):
    """Stages were recorded (worth a resume), then the data failed: a resume would fail the
    same way, so the unfinished run is removed and not offered."""
    import edgekit
    from edgekit.core.errors import DataError
    from edgekit.pipeline import measure

    def image_gone(*args, **kwargs):
        raise DataError("data/bee/5.png: cannot decode image (image file is truncated)")

    monkeypatch.setattr(measure, "bench", image_gone)
    messages: list[str] = []
    with pytest.raises(DataError, match="truncated"):
        edgekit.compress("lenet300_100", "rpi", out=tmp_path / "run", log=messages.append,
                         epochs=1, qat_epochs=0, train_limit=100, bench_runs=3,
                         bench_power="none")
    assert any(m.startswith("[4/6]") for m in messages)  # it got as far as the export
    assert not any("--resume" in m for m in messages)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_jetson_nano_gets_an_fp16_engine_plan_without_qat(tmp_path, capsys):
    out = tmp_path / "nano"
    assert main(["compress", "--model", "lenet300_100", "--target", "jetson-nano", "--out",
                 str(out), "--epochs", "1", "--train-limit", "200", "--bench-runs", "3",
                 "--power", "none"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["precision"] == "fp16" and manifest["recipe"]["qat_epochs"] == 0
    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    assert bundle["models"] == {"fp32": "model_fp32.onnx"}  # the float ONNX, no int8 file
    script = (out / "bundle" / "build_engine.sh").read_text()
    assert "--fp16" in script and "--int8" not in script
    report = (out / "report.md").read_text()
    assert "jetson-nano has no int8 (fp32, fp16 only): no QAT" in report
    assert "fp16 TensorRT engine" in report
    assert manifest["resumed"] is None and "Resumed" not in report  # made in one go
