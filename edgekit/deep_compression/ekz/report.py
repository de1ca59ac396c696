"""Per-layer compression report of an ``.ekz`` file, laid out like Deep Compression's
Tables 2–5, plus the empirical entropy of every coded stream and what general-purpose
compressors (``zstd -19``, ``xz -9``) make of the same quantized streams."""

from __future__ import annotations

import lzma
import math
from typing import Any

import numpy as np

from edgekit.deep_compression.ekz.container import EkzFile
from edgekit.deep_compression.ekz.limits import PREAMBLE_SIZE
from edgekit.deep_compression.ekz.records import dc_parts
from edgekit.deep_compression.huffman import empirical_entropy_bits


def layer_table(ekz: EkzFile) -> list[dict[str, Any]]:
    """One row per record; ``dc`` rows carry the paper's columns."""
    rows = []
    for info in ekz.records:
        row: dict[str, Any] = {"name": info.name, "kind": info.kind, "weights": info.numel,
                               "bytes": info.length,
                               "ratio": 4 * info.numel / info.length if info.length else math.inf}
        if info.kind == "dc":
            parts = dc_parts(info.params, ekz.payload(info), info.shape, ekz.limits)
            n, k, gap_bits = info.params["n"], info.params["k"], info.params["gap_bits"]
            fixed = max(1, math.ceil(math.log2(k + 1)))
            kept = int(np.count_nonzero(parts.dense_idx))
            row.update(
                codec=info.params["codec"], kept_pct=100 * kept / max(info.numel, 1),
                entries=n, weight_bits_pq=fixed,
                weight_bits_pqh=parts.sizes["idx_bits"] / max(n, 1),
                index_bits_pq=gap_bits, index_bits_pqh=parts.sizes["gap_bits"] / max(n, 1),
                ratio_pq=32 * info.numel / max(n * (fixed + gap_bits) + 32 * k, 1),
            )
        rows.append(row)
    return rows


def _symbol_bytes(symbols: np.ndarray) -> bytes:
    dtype = np.uint8 if symbols.size == 0 or symbols.max() < 256 else np.dtype("<u2")
    return symbols.astype(dtype).tobytes()


def stream_stats(ekz: EkzFile) -> dict[str, float]:
    """Coded bits vs entropy vs zstd-19 / xz-9 over all index and gap streams of the file.

    ``coded_bits`` excludes tables (the entropy bound excludes them too); ``zstd``/``xz``
    compress the same symbol streams, one byte per symbol (two above 255), each stream alone.
    """
    from edgekit.core.lazy import require

    zstd = require("zstandard", purpose="the zstd comparison")
    totals = dict.fromkeys(("idx_bits", "idx_entropy", "gap_bits", "gap_entropy", "table_bytes",
                            "zstd19_bytes", "xz9_bytes", "coded_bytes"), 0.0)
    for info in ekz.records:
        if info.kind != "dc":
            continue
        parts = dc_parts(info.params, ekz.payload(info), info.shape, ekz.limits)
        for part, stream in (("idx", parts.idx), ("gap", parts.gaps)):
            if info.params["gap_bits"] == 0 and part == "gap":
                continue
            totals[f"{part}_bits"] += parts.sizes[f"{part}_bits"]
            totals[f"{part}_entropy"] += empirical_entropy_bits(stream)
            totals["table_bytes"] += parts.sizes[f"{part}_table_bytes"]
            totals["coded_bytes"] += math.ceil(parts.sizes[f"{part}_bits"] / 8)
            raw = _symbol_bytes(stream)
            totals["zstd19_bytes"] += len(zstd.ZstdCompressor(level=19).compress(raw))
            totals["xz9_bytes"] += len(lzma.compress(raw, preset=9))
    coded = totals["idx_bits"] + totals["gap_bits"]
    entropy = totals["idx_entropy"] + totals["gap_entropy"]
    totals["bits_over_entropy"] = coded / entropy if entropy else 1.0
    totals["with_tables_bytes"] = totals["coded_bytes"] + totals["table_bytes"]
    totals["vs_zstd19"] = totals["with_tables_bytes"] / totals["zstd19_bytes"] if totals[
        "zstd19_bytes"] else 1.0
    totals["vs_xz9"] = totals["with_tables_bytes"] / totals["xz9_bytes"] if totals[
        "xz9_bytes"] else 1.0
    return totals


def file_summary(ekz: EkzFile) -> dict[str, float]:
    dense = sum(4 * info.numel for info in ekz.records)
    size = len(ekz.data)
    header = len(ekz.data) - sum(info.length for info in ekz.records) - PREAMBLE_SIZE
    return {"dense_fp32_bytes": dense, "file_bytes": size, "header_bytes": header,
            "ratio": dense / size if size else math.inf}


def format_table(ekz: EkzFile) -> str:
    """The per-layer table printed by ``edgekit inspect``."""
    head = (f"{'layer':<28}{'kind':<5}{'#weights':>10}{'kept%':>7}{'w.bits':>7}{'w.bits+H':>9}"
            f"{'idx.bits':>9}{'idx+H':>7}{'bytes':>9}{'ratio':>8}{'ratio P+Q':>10}")
    lines = [head, "-" * len(head)]
    for r in layer_table(ekz):
        if r["kind"] == "dc":
            lines.append(
                f"{r['name']:<28}{r['kind']:<5}{r['weights']:>10}{r['kept_pct']:>7.1f}"
                f"{r['weight_bits_pq']:>7}{r['weight_bits_pqh']:>9.2f}{r['index_bits_pq']:>9}"
                f"{r['index_bits_pqh']:>7.2f}{r['bytes']:>9}{r['ratio']:>7.1f}x"
                f"{r['ratio_pq']:>9.1f}x")
        else:
            lines.append(f"{r['name']:<28}{r['kind']:<5}{r['weights']:>10}{'':>7}{'':>7}{'':>9}"
                         f"{'':>9}{'':>7}{r['bytes']:>9}{r['ratio']:>7.1f}x")
    s = file_summary(ekz)
    lines.append("-" * len(head))
    lines.append(f"total: {s['dense_fp32_bytes']} fp32 bytes -> {s['file_bytes']} file bytes "
                 f"(header {s['header_bytes']}), ratio {s['ratio']:.1f}x")
    return "\n".join(lines)
