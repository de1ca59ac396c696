"""A result record for a roofline estimate, so reports can show it beside measurements."""

from __future__ import annotations

import datetime as _dt
import socket
from typing import Any

from edgekit.bench.results import SCHEMA_VERSION, validate_result
from edgekit.devices import estimate_latency, get_profile


def estimated_result(profile_name: str, macs: float, bytes_moved: float, precision: str,
                     *, model_name: str = "model") -> dict[str, Any]:
    """``kind: "estimated"``; every latency statistic is the roofline lower bound, std 0."""
    from edgekit import __version__

    profile = get_profile(profile_name)
    est = estimate_latency(profile, macs, bytes_moved, precision)
    ms = est.latency_ms
    return validate_result({
        "schema_version": SCHEMA_VERSION,
        "kind": "estimated",
        "label": f"{model_name} {precision} @ {profile.name} (estimated)",
        "edgekit_version": __version__,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "model": {"name": model_name, "sha256": None, "size_bytes": None, "precision": precision,
                  "macs": macs, "bytes_moved": bytes_moved},
        "runtime": {"name": profile.runtime},
        "device": {"profile": profile.name},
        "config": {},
        "latency_ms": {"p50": ms, "p90": ms, "p99": ms, "mean": ms, "std": 0.0,
                       "median_ci95": [ms, ms], "samples": []},
        "throughput_ips": 1e3 / ms if ms > 0 else None,
        "estimate": est.to_dict(),
        "power": {"available": False, "reason": "estimated result: nothing was measured"},
    })
