"""The .ekz container and record kinds: exact round trips; every corruption -> FormatError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.core.errors import FormatError
from edgekit.deep_compression.ekz import (
    Limits,
    RecordKind,
    SharedWeights,
    TensorRecord,
    encode_ekz,
    load_ekz,
    parse_ekz,
    register_record_kind,
    write_ekz,
)
from edgekit.deep_compression.ekz.records import RECORD_KINDS


@st.composite
def shared_tensors(draw):
    shape = tuple(draw(st.lists(st.integers(1, 40), min_size=1, max_size=3)))
    k = draw(st.integers(1, 255))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    indices = rng.integers(1, k + 1, size=shape)
    indices[rng.random(shape) >= density] = 0
    codebook = rng.normal(size=k).astype(np.float32)
    return SharedWeights(indices, codebook)


def _file(shared: SharedWeights, codec: str = "huffman", gap_bits=None) -> bytes:
    recs = [
        TensorRecord("w", "dc", shared, shared.indices.shape,
                     {"codec": codec, "gap_bits": gap_bits}),
        TensorRecord("b", "raw", np.arange(5, dtype=np.float32), (5,)),
    ]
    return encode_ekz(recs, model_config={"name": "lenet5", "num_classes": 10})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shared_tensors(), st.sampled_from(["huffman", "rans", "auto"]),
       st.sampled_from([None, 0, 1, 3, 8]))
def test_dc_round_trip_is_exact(shared, codec, gap_bits):
    f = parse_ekz(_file(shared, codec, gap_bits))
    tensors = f.tensors()
    assert np.array_equal(tensors["w"], shared.dense())
    assert tensors["w"].dtype == np.float32
    assert np.array_equal(tensors["b"], np.arange(5, dtype=np.float32))
    assert f.model_config == {"name": "lenet5", "num_classes": 10}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, width=32), min_size=0, max_size=64),
       st.sampled_from(["f4", "f2"]))
def test_raw_round_trip(values, dtype):
    array = np.asarray(values, dtype=np.float32)
    data = encode_ekz([TensorRecord("x", "raw", array, array.shape, {"dtype": dtype})])
    out = parse_ekz(data).tensors()["x"]
    expected = array if dtype == "f4" else array.astype(np.float16).astype(np.float32)
    assert np.array_equal(out, expected)


@pytest.fixture(scope="module")
def sample_file() -> bytes:
    rng = np.random.default_rng(1)
    idx = rng.integers(1, 32, size=(40, 50))
    idx[rng.random(idx.shape) < 0.9] = 0
    return _file(SharedWeights(idx, rng.normal(size=31).astype(np.float32)))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_truncated_file_raises_format_error(sample_file, data):
    cut = data.draw(st.integers(0, len(sample_file) - 1))
    with pytest.raises(FormatError):
        parse_ekz(sample_file[:cut]).tensors()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_bit_flip_raises_format_error(sample_file, data):
    pos = data.draw(st.integers(0, len(sample_file) * 8 - 1))
    corrupt = bytearray(sample_file)
    corrupt[pos // 8] ^= 1 << (pos % 8)
    with pytest.raises(FormatError):
        parse_ekz(bytes(corrupt)).tensors()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_after_magic_raise_format_error(sample_file, junk):
    with pytest.raises(FormatError):
        parse_ekz(sample_file[:8] + junk).tensors()


def _with_header(data: bytes, edit) -> bytes:
    """Rewrite the JSON header (valid checksum) to test the checks behind the CRC."""
    import json

    (hlen,) = struct.unpack_from("<I", data, 12)
    header = json.loads(data[20 : 20 + hlen])
    edit(header)
    blob = json.dumps(header).encode()
    return data[:12] + struct.pack("<II", len(blob), zlib.crc32(blob)) + blob + data[20 + hlen :]


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h["records"][0].update(shape=[1 << 20, 1 << 20]),  # > element limit
        lambda h: h["records"][0].update(shape=[10, 10]),  # entries run past the shape
        lambda h: h["records"][0]["p"].update(n=10**9),
        lambda h: h["records"][0]["p"].update(k=70000),
        lambda h: h["records"][0]["p"].update(gap_bits=40),
        lambda h: h["records"][0]["p"].update(codec="lzma"),
        lambda h: h["records"][0].update(kind="nope"),
        lambda h: h["records"][0].update(len=10**12),
        lambda h: h["records"][1].update(name="w"),
        lambda h: h.update(records={"a": 1}),
        lambda h: h["records"][1]["p"].update(dtype="f8"),
        lambda h: h["records"][0].update(shape=[2] * 40),
    ],
)
def test_inconsistent_header_raises_format_error(sample_file, edit):
    with pytest.raises(FormatError):
        parse_ekz(_with_header(sample_file, edit)).tensors()


def test_oversized_header_is_refused_before_reading_it(sample_file):
    big = sample_file[:12] + struct.pack("<II", 0xFFFFFFFF, 0) + sample_file[20:]
    with pytest.raises(FormatError, match="limit"):
        parse_ekz(big)


def test_output_limit_is_enforced_before_decoding(sample_file):
    with pytest.raises(FormatError, match="exceed"):
        parse_ekz(sample_file, Limits(max_output_bytes=1000))


def test_write_is_atomic_and_load_checks_files(tmp_path, sample_file):
    path = tmp_path / "m.ekz"
    rec = TensorRecord("x", "raw", np.ones(3), (3,))
    write_ekz(path, [rec])
    assert np.array_equal(load_ekz(path).tensors()["x"], np.ones(3, np.float32))
    with pytest.raises(FormatError):
        load_ekz(tmp_path / "missing.ekz")
    with pytest.raises(TypeError):  # an encoder error leaves the old file untouched
        write_ekz(path, [TensorRecord("y", "dc", np.ones(3), (3,))])
    assert load_ekz(path).records[0].name == "x"


def test_new_record_kind_plugs_into_the_table():
    def enc(value, options):
        return {"fill": float(value)}, b""

    def dec(params, payload, shape, limits):
        return np.full(shape, params["fill"], dtype=np.float32)

    register_record_kind(RecordKind("test_fill", enc, dec))
    try:
        data = encode_ekz([TensorRecord("c", "test_fill", 2.5, (2, 2))])
        assert np.array_equal(parse_ekz(data).tensors()["c"], np.full((2, 2), 2.5, np.float32))
    finally:
        RECORD_KINDS.pop("test_fill")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupt_payload_behind_valid_crc_never_escapes(sample_file, data):
    """A crafted file (checksums recomputed) may decode or fail, but only with FormatError."""
    import json

    (hlen,) = struct.unpack_from("<I", sample_file, 12)
    header = json.loads(sample_file[20 : 20 + hlen])
    body = bytearray(sample_file[20 + hlen :])
    w_len = header["records"][0]["len"]
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, w_len - 1))
        body[pos] = data.draw(st.integers(0, 255))
    header["records"][0]["crc"] = zlib.crc32(bytes(body[:w_len]))
    blob = json.dumps(header).encode()
    crafted = sample_file[:12] + struct.pack("<II", len(blob), zlib.crc32(blob)) + blob + body
    try:
        out = parse_ekz(crafted).tensors()
    except FormatError:
        return
    assert out["w"].shape == (40, 50) and out["w"].dtype == np.float32


def test_reading_dc_files_does_not_import_torch(tmp_path, sample_file):
    """The device path: decoding raw/dc records needs numpy + bitarray, not torch."""
    import subprocess
    import sys

    path = tmp_path / "m.ekz"
    path.write_bytes(sample_file)
    code = ("import sys; from edgekit.deep_compression.ekz import read_ekz; "
            f"t = read_ekz({str(path)!r}); assert t['w'].shape == (40, 50); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
