"""Relative-index sparse form, Huffman, rANS and 1-D k-means on random data (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgekit.core.errors import FormatError
from edgekit.deep_compression.entropy import rans_decode, rans_encode
from edgekit.deep_compression.huffman import (
    HuffmanTable,
    empirical_entropy_bits,
    huffman_coded_bits,
    huffman_decode,
    huffman_encode,
)
from edgekit.deep_compression.share import kmeans_1d
from edgekit.deep_compression.sparse import from_relative, to_relative

index_arrays = hnp.arrays(np.int64, st.integers(0, 400), elements=st.integers(0, 40))


@settings(max_examples=60, deadline=None)
@given(index_arrays, st.integers(0, 10), st.floats(0, 1))
def test_relative_index_round_trip(values, gap_bits, zero_frac):
    values = values.copy()
    values[: int(zero_frac * values.size)] = 0  # long zero runs force filler entries
    gaps, idx = to_relative(values, gap_bits)
    if gap_bits:
        assert gaps.size == idx.size and (gaps < 1 << gap_bits).all()
        # a filler is needed exactly for each full span of zeros
        assert idx.size >= np.count_nonzero(values)
    assert np.array_equal(from_relative(gaps, idx, values.size, gap_bits), values)


def test_filler_zero_bridges_long_gap():
    values = np.zeros(20, np.int64)
    values[19] = 7
    gaps, idx = to_relative(values, 3)  # span 8: 19 skipped zeros -> two fillers + entry
    assert gaps.tolist() == [7, 7, 3] and idx.tolist() == [0, 0, 7]


def test_entries_past_the_tensor_are_refused():
    with pytest.raises(FormatError):
        from_relative(np.array([5, 5]), np.array([1, 1]), 10, 4)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int64, st.integers(0, 2000), elements=st.integers(0, 300)))
def test_huffman_round_trip_and_optimality(symbols):
    stream = huffman_encode(symbols)
    out = huffman_decode(stream.data, stream.nbits, stream.table, symbols.size, 301)
    assert np.array_equal(out, symbols)
    assert stream.nbits == huffman_coded_bits(symbols)
    # Huffman is within one bit per symbol of the entropy, never below it
    entropy = empirical_entropy_bits(symbols)
    assert entropy - 1e-6 <= stream.nbits <= entropy + symbols.size + 1e-6 or symbols.size == 0 \
        or np.unique(symbols).size == 1


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 500), elements=st.integers(0, 60)), st.data())
def test_corrupt_huffman_stream_raises_format_error(symbols, data):
    stream = huffman_encode(symbols)
    raw = bytearray(stream.data)
    raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    nbits = stream.nbits + data.draw(st.sampled_from([0, 0, -1, 1, 8]))
    try:
        out = huffman_decode(bytes(raw), nbits, stream.table, symbols.size, 61)
    except FormatError:
        return
    assert out.shape == symbols.shape and out.max() < 61


def test_bad_huffman_tables_are_refused():
    with pytest.raises(FormatError):  # over-subscribed: three 1-bit codes
        huffman_decode(b"\x00", 3, HuffmanTable((0, 3), (0, 1, 2)), 3, 4)
    with pytest.raises(FormatError):  # symbol beyond the alphabet
        huffman_decode(b"\x00", 2, HuffmanTable((0, 2), (0, 9)), 2, 4)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.int64, st.integers(0, 3000), elements=st.integers(0, 40)))
def test_rans_round_trip_and_near_entropy(symbols):
    stream = rans_encode(symbols)
    out = rans_decode(stream.data, stream.counts, symbols.size, 41)
    assert np.array_equal(out, symbols)
    if symbols.size >= 1000 and np.unique(symbols).size > 1:
        # rANS overhead: a few words of state, not a fraction of a bit per symbol
        assert 8 * len(stream.data) <= empirical_entropy_bits(symbols) * 1.02 + 64


def test_rans_histogram_mismatch_is_refused():
    stream = rans_encode(np.array([0, 1, 1, 2] * 50))
    counts = (stream.counts[0] + 1, stream.counts[1] - 1, stream.counts[2])
    with pytest.raises(FormatError):
        rans_decode(stream.data, counts, 200, 3)


@pytest.mark.parametrize("init", ["linear", "density", "forgy"])
def test_kmeans_1d_clusters_and_keeps_exact_values(init):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(-1, 0.05, 500), rng.normal(2, 0.05, 500)])
    centroids, labels = kmeans_1d(values, 2, init=init)
    assert sorted(np.round(centroids).tolist()) == [-1.0, 2.0]
    assert np.abs(centroids[labels] - values).max() < 0.5
    exact = np.array([0.5, -0.25, 0.5, 3.0])  # fewer distinct values than k: no error at all
    c, lab = kmeans_1d(exact, 31, init=init)
    assert np.array_equal(c[lab], exact.astype(np.float32))
