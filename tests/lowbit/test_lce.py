"""LCE export: bit-packing and padding conventions checked against Larq Compute Engine's own
interpreter (``.venv-lce``, made by ``make lce-env``, which ``make test`` depends on),
and whole binary nets verified in it against the PyTorch models.

Nothing here re-implements LCE: the expected values come from PyTorch (conv of ±1 values)
and the actual ones from LCE's interpreter running the written file.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from edgekit.core.errors import MissingBackendError, UnsupportedOpError  # noqa: E402
from edgekit.export.lce import export_lce  # noqa: E402
from edgekit.export.lce_flatbuffer import (  # noqa: E402
    LCE_BCONV2D,
    LCE_DEQUANTIZE,
    LCE_QUANTIZE,
    SAME,
    VALID,
    GraphBuilder,
    bconv_options,
    pack_signs,
    packed_size,
    unpack_signs,
)
from edgekit.models import create_model  # noqa: E402
from edgekit.runtime.lce import LCE_PYTHON_ENV  # noqa: E402
from edgekit.runtime.registry import open_runner  # noqa: E402
from tests.helpers import calibrated_lowbit, needs_lce  # noqa: E402

# ---------------------------------------------------------------- packing (numpy only)


def test_pack_signs_bit_order_and_tail():
    values = np.ones(35, np.float32)
    values[[0, 2, 31, 33]] = -1.0
    words = pack_signs(values)
    assert words.dtype == np.int32 and words.shape == (2,)
    assert words.view(np.uint32).tolist() == [(1 << 0) | (1 << 2) | (1 << 31), 1 << 1]
    assert np.array_equal(unpack_signs(words, 35), values)


def test_pack_signs_zero_and_negative_zero_are_plus_one():
    # LCE packs bit = (x < 0): 0.0 and -0.0 are +1, as torch's sign_pm1 (x >= 0 -> +1).
    assert pack_signs(np.array([0.0, -0.0, -1e-30], np.float32)).tolist() == [0b100]


# ---------------------------------------------------------------- against LCE


def _run(path, x):
    runner = open_runner(path, runtime="lce")
    try:
        runner.set_inputs([x])
        runner.run()
        return runner.outputs()[0]
    finally:
        runner.close()


def _inputs(rng, shape):
    """Random values with exact zeros and negative zeros mixed in (sign(0) = +1)."""
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::7] = 0.0
    x.flat[3::11] = -0.0
    return x


def _quantize_file(path, shape, *, dequantize: bool):
    g = GraphBuilder()
    x = g.tensor("x", shape)
    packed = g.tensor("packed", (*shape[:-1], packed_size(shape[-1])), np.int32)
    g.custom(LCE_QUANTIZE, [x], [packed])
    out = packed
    if dequantize:
        out = g.tensor("signs", shape)
        g.custom(LCE_DEQUANTIZE, [packed], [out])
    path.write_bytes(g.finish([x], [out], "quantize"))
    return path


@needs_lce
def test_lce_quantize_matches_pack_signs_and_dequantize_gives_torch_sign(tmp_path):
    shape = (1, 3, 2, 45)
    data = _inputs(np.random.default_rng(1), (4, *shape[1:]))
    words = _run(_quantize_file(tmp_path / "q.tflite", shape, dequantize=False), data)
    assert words.dtype == np.int32
    assert np.array_equal(words, pack_signs(data))
    signs = _run(_quantize_file(tmp_path / "qd.tflite", shape, dequantize=True), data)
    assert np.array_equal(signs, torch.where(torch.from_numpy(data) >= 0, 1.0, -1.0).numpy())


# (channels_in, size, out channels, kernel, stride, padding, pad_values): odd channel
# counts, counts that are not multiples of 32, both pad values, strides 1 and 2.
BCONV_CASES = [
    (1, 5, 3, 3, 1, VALID, 0),
    (33, 7, 5, 3, 2, VALID, 1),
    (37, 6, 4, 3, 1, SAME, 1),
    (34, 6, 6, 3, 1, SAME, 0),
    (64, 7, 8, 3, 2, SAME, 0),
    (63, 8, 3, 3, 2, SAME, 1),
    (95, 4, 7, 1, 1, VALID, 0),
    (2, 5, 2, 5, 1, SAME, 0),
]


def _tf_same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _torch_bconv(x, w, stride, padding, pad_values, k):
    """PyTorch reference: conv of sign(x) and w, padded as TFLite SAME with 0 or +1."""
    signs = torch.where(torch.from_numpy(x) >= 0, 1.0, -1.0).permute(0, 3, 1, 2)
    if padding == SAME:
        (top, bottom), (left, right) = (_tf_same_pads(signs.shape[2], k, stride),
                                        _tf_same_pads(signs.shape[3], k, stride))
        signs = F.pad(signs, (left, right, top, bottom), value=float(pad_values))
    out = F.conv2d(signs, torch.from_numpy(w).permute(0, 3, 1, 2), stride=stride)
    return out.permute(0, 2, 3, 1).numpy()


@needs_lce
@pytest.mark.parametrize("case", BCONV_CASES, ids=lambda c: "c{}_s{}_o{}_k{}_st{}_{}_pv{}".format(
    c[0], c[1], c[2], c[3], c[4], "same" if c[5] == SAME else "valid", c[6]))
def test_bconv_packing_and_padding_match_torch(tmp_path, case):
    cin, size, cout, k, stride, padding, pad_values = case
    rng = np.random.default_rng(cin * 100 + size)
    w = np.where(rng.standard_normal((cout, k, k, cin)) >= 0, 1.0, -1.0).astype(np.float32)
    mul = rng.uniform(0.5, 2.0, cout).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    oh = -(-size // stride) if padding == SAME else (size - k) // stride + 1
    g = GraphBuilder()
    x = g.tensor("x", (1, size, size, cin))
    packed = g.tensor("packed", (1, size, size, packed_size(cin)), np.int32)
    y = g.tensor("y", (1, oh, oh, cout))
    g.custom(LCE_QUANTIZE, [x], [packed])
    g.custom(LCE_BCONV2D, [packed, g.constant("w", pack_signs(w)), g.constant("m", mul),
                           g.constant("b", bias), -1], [y],
             bconv_options(cin, (stride, stride), padding, pad_values))
    path = tmp_path / "bconv.tflite"
    path.write_bytes(g.finish([x], [y], "bconv"))
    data = _inputs(rng, (3, size, size, cin))
    got = _run(path, data)
    counts = _torch_bconv(data, w, stride, padding, pad_values, k)  # integers
    assert got.shape == counts.shape
    # The ±1 dot products are integers: recovered from LCE's output they must be exact
    # (this is where a packing or padding mismatch shows); multiplier/bias to float32.
    assert np.array_equal(np.round((got - bias) / mul), counts)
    np.testing.assert_allclose(got, counts * mul + bias, rtol=1e-5, atol=1e-4)



@needs_lce
@pytest.mark.parametrize("name", ["binary_mlp", "xnor_convnet", "bireal_net"])
def test_binary_nets_verify_in_lce(tmp_path, name, mnist):
    from edgekit.export.lce_flatbuffer import _schema
    from edgekit.export.tflite_flatbuffer import _read
    from edgekit.export.verify import verify

    model = calibrated_lowbit(name)
    artifact = export_lce(model, tmp_path / f"{name}.tflite")
    assert artifact.precision == "binary"
    ops = {c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
           for c in _read(artifact.path.read_bytes()).operatorCodes
           if c.builtinCode == _schema().BuiltinOperator.CUSTOM}
    assert LCE_BCONV2D in ops and LCE_QUANTIZE in ops
    _, test = mnist
    report = verify(artifact.path, model, test, runtime="lce", batch_size=256)
    assert report.agreement >= 0.995 and report.passed


@needs_lce
def test_ternary_bireal_net_is_int8_weights_and_runs_in_lce_and_litert(tmp_path):
    model = calibrated_lowbit("bireal_net", weights="twn")
    artifact = export_lce(model, tmp_path / "tern.tflite")
    assert artifact.precision == "int8 weights"
    x = np.random.default_rng(0).random((32, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    for runtime in ("lce", "litert"):
        runner = open_runner(artifact.path, runtime=runtime)
        try:
            got = runner.predict(x)
        finally:
            runner.close()
        assert np.array_equal(got.argmax(1), want.argmax(1))
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())


def test_lce_export_rejects_other_models(tmp_path):
    with pytest.raises(UnsupportedOpError):
        export_lce(create_model("lenet5"), tmp_path / "m.tflite")


def test_missing_lce_environment_is_a_typed_error(monkeypatch, tmp_path):
    monkeypatch.setenv(LCE_PYTHON_ENV, str(tmp_path / "no-python"))
    with pytest.raises(MissingBackendError, match=r"make lce-env"):
        open_runner(tmp_path / "m.tflite", runtime="lce")


@needs_lce
def test_cli_export_format_lce_writes_and_verifies(tmp_path, capsys):
    import json

    from edgekit.cli import main
    from edgekit.training.checkpoint import save_checkpoint

    checkpoint = save_checkpoint(calibrated_lowbit("binary_mlp"), tmp_path / "ckpt",
                                 extra={"data": "mnist5k"})
    out, report = tmp_path / "bnn.tflite", tmp_path / "bnn.json"
    assert main(["export", str(checkpoint), "--format", "lce", "--out", str(out),
                 "--limit", "200", "--json", str(report)]) == 0
    assert "PASSED: lce" in capsys.readouterr().out
    written = json.loads(report.read_text())
    assert written["format"] == "lce" and written["precision"] == "binary"
    assert written["verify"]["runtime"] == "lce" and written["verify"]["agreement"] >= 0.995
