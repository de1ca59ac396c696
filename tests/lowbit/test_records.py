"""The bits1 / tern2 / hashed record kinds: exact round trips, sizes, hostile payloads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from edgekit.core.errors import FormatError, InvalidInputError  # noqa: E402
from edgekit.deep_compression.ekz import DEFAULT_LIMITS, get_record_kind, parse_ekz  # noqa: E402
from edgekit.lowbit import records  # noqa: E402

shapes = st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple)


def _roundtrip(kind_name, value, shape):
    kind = get_record_kind(kind_name)
    params, payload = kind.encode(value, {})
    return params, payload, kind.decode(params, memoryview(payload), shape, DEFAULT_LIMITS)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), per_channel=st.booleans())
def test_bits1_roundtrip_is_exact(shape, seed, per_channel):
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.01, 2, size=shape[0] if per_channel else 1).astype(np.float32)
    signs = rng.choice(np.array([-1, 1], np.float32), size=shape)
    w = (signs.reshape(shape[0], -1) * scales.reshape(-1, 1)).reshape(shape)
    params, payload, back = _roundtrip("bits1", w, shape)
    assert back.dtype == np.float32 and np.array_equal(back, w)
    assert len(payload) == 4 * params["scales"] + (w.size + 7) // 8


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_tern2_roundtrip_is_exact_with_asymmetric_scales(shape, seed):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0.01, 2, size=(shape[0], 1)).astype(np.float32)
    neg = rng.uniform(0.01, 2, size=(shape[0], 1)).astype(np.float32)
    codes = rng.integers(-1, 2, size=(shape[0], int(np.prod(shape[1:], dtype=int))))
    w = np.where(codes > 0, pos, np.where(codes < 0, -neg, 0)).astype(np.float32).reshape(shape)
    params, payload, back = _roundtrip("tern2", w, shape)
    assert np.array_equal(back, w)
    assert len(payload) == 8 * params["scales"] + (w.size + 3) // 4


def test_hashed_roundtrip_recomputes_the_virtual_weight():
    buckets = np.arange(1, 11, dtype=np.float32)
    value = records.HashedWeights(buckets, seed=7)
    params, payload, back = _roundtrip("hashed", value, (6, 5))
    assert params == {"hash": 1, "seed": 7, "buckets": 10} and len(payload) == 40
    assert np.array_equal(back, value.dense((6, 5)))
    assert set(np.abs(back).ravel()) <= set(buckets)


def test_sizes_are_about_32x_and_16x_smaller_than_fp32():
    w = np.sign(np.random.default_rng(0).normal(size=(256, 784))).astype(np.float32)
    w[w == 0] = 1
    _, bits, _ = _roundtrip("bits1", w * 0.5, w.shape)
    _, tern, _ = _roundtrip("tern2", w * 0.5, w.shape)
    assert 4 * w.size / len(bits) == pytest.approx(32, rel=1e-3)
    assert 4 * w.size / len(tern) == pytest.approx(16, rel=1e-3)


def test_encoders_refuse_weights_that_do_not_fit():
    with pytest.raises(InvalidInputError):
        get_record_kind("bits1").encode(np.array([[1.0, -2.0]], np.float32), {})
    with pytest.raises(InvalidInputError):
        get_record_kind("tern2").encode(np.array([[1.0, 2.0, 0.0]], np.float32), {})
    with pytest.raises(TypeError):
        get_record_kind("hashed").encode(np.zeros(3, np.float32), {})
    assert records.fits_ternary(np.array([[1.0, 0.0, -3.0], [0.0, 0.0, 0.0]]))
    assert not records.fits_binary(np.array([[1.0, 0.0]]))


def _valid(kind_name):
    if kind_name == "hashed":
        return (4, 3), *get_record_kind("hashed").encode(
            records.HashedWeights(np.ones(5, np.float32), 1), {})
    w = np.array([[1.0, -1.0, 0.0 if kind_name == "tern2" else 1.0]] * 3, np.float32)
    return (3, 3), *get_record_kind(kind_name).encode(w, {})


@pytest.mark.parametrize("kind_name", records.LOWBIT_KINDS)
def test_decoders_reject_truncated_and_padded_payloads(kind_name):
    shape, params, payload = _valid(kind_name)
    decode = get_record_kind(kind_name).decode
    for bad in (payload[:-1], payload + b"\0", b""):
        with pytest.raises(FormatError):
            decode(params, memoryview(bad), shape, DEFAULT_LIMITS)


@pytest.mark.parametrize("kind_name,params", [
    ("bits1", {"scales": 2}), ("bits1", {"scales": 0}), ("bits1", {"scales": True}),
    ("bits1", {}), ("tern2", {"scales": 4}), ("tern2", {"scales": "1"}),
    ("hashed", {"hash": 2, "seed": 1, "buckets": 5}),
    ("hashed", {"hash": 1, "seed": -1, "buckets": 5}),
    ("hashed", {"hash": 1, "seed": 1, "buckets": 13}),
    ("hashed", {"hash": 1, "seed": 2**63, "buckets": 5}),
])
def test_decoders_reject_bad_params(kind_name, params):
    shape, _, payload = _valid(kind_name)
    with pytest.raises(FormatError):
        get_record_kind(kind_name).decode(params, memoryview(payload), shape, DEFAULT_LIMITS)


def test_tern2_rejects_code_3_and_dirty_padding():
    shape, params, payload = _valid("tern2")
    decode = get_record_kind("tern2").decode
    bad = bytearray(payload)
    bad[-1] |= 0b11  # the first code of the last byte becomes 3
    with pytest.raises(FormatError, match="code 3"):
        decode(params, memoryview(bytes(bad)), shape, DEFAULT_LIMITS)
    bad = bytearray(payload)
    bad[-1] |= 0b0100_0000  # 9 codes: the last byte carries 3 padding codes
    with pytest.raises(FormatError, match="padding"):
        decode(params, memoryview(bytes(bad)), shape, DEFAULT_LIMITS)


def test_bits1_rejects_dirty_padding():
    shape, params, payload = _valid("bits1")
    bad = bytearray(payload)
    bad[-1] |= 0x80  # 9 bits: bits 9..15 of the last byte are padding
    with pytest.raises(FormatError, match="padding"):
        get_record_kind("bits1").decode(params, memoryview(bytes(bad)), shape, DEFAULT_LIMITS)


def test_empty_shape_is_a_format_error():
    _, params, payload = _valid("bits1")
    with pytest.raises(FormatError):
        get_record_kind("bits1").decode(params, memoryview(payload), (0, 3), DEFAULT_LIMITS)


def test_corrupt_file_is_caught_before_decoding():
    from edgekit.deep_compression.ekz import TensorRecord, encode_ekz

    w = np.array([[0.5, -0.5]], np.float32)
    data = encode_ekz([TensorRecord("w", "bits1", w, w.shape)])
    assert np.array_equal(parse_ekz(data).tensors()["w"], w)
    with pytest.raises(FormatError):
        parse_ekz(data[:-1])


def test_tern2_takes_explicit_codes_with_any_scale_sign():
    # TTQ's learned scales can cross zero; the record keeps the codes, not the values.
    codes = np.array([[1, -1, 0], [0, 1, 1]], np.int8)
    value = records.TernaryWeights(codes, np.float32([-0.5]), np.float32([0.25]))
    params, _, back = _roundtrip("tern2", value, (2, 3))
    assert params == {"scales": 1}
    assert back.tolist() == [[-0.5, -0.25, 0.0], [0.0, -0.5, -0.5]]
    with pytest.raises(InvalidInputError):
        get_record_kind("tern2").encode(records.TernaryWeights(codes * 2, np.float32([1]),
                                                               np.float32([1])), {})


def test_decoding_lowbit_files_needs_no_torch(tmp_path):
    """Boards decode .ekz with numpy only: the low-bit kinds must not pull in torch."""
    import subprocess
    import sys

    from edgekit.deep_compression.ekz import TensorRecord, write_ekz

    w = np.array([[0.5, -0.5, 0.0]], np.float32)
    path = write_ekz(tmp_path / "w.ekz", [
        TensorRecord("a", "tern2", w, w.shape),
        TensorRecord("b", "bits1", w[:, :2], (1, 2)),
        TensorRecord("c", "hashed", records.HashedWeights(np.ones(2, np.float32), 3), (2, 2)),
    ])
    code = ("import sys; from edgekit.deep_compression.ekz import read_ekz; "
            f"t = read_ekz({str(path)!r}); assert 'torch' not in sys.modules, 'torch loaded'; "
            "print(sorted(t))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a', 'b', 'c']"
