"""A result record for a calibrated device estimate, so reports can show it beside
measurements: the per-layer latency model of ``edgekit.devices.calibrated``, with its
interval and the number of published points it was fitted on."""

from __future__ import annotations

import datetime as _dt
import socket
from pathlib import Path
from typing import Any

from edgekit.bench.results import SCHEMA_VERSION, validate_result
from edgekit.devices import get_profile
from edgekit.devices.calibrated import energy_upper_bound_mj, estimate
from edgekit.devices.latency_model import LayerRecord


def estimated_result(profile_name: str, model: str | Path | list[LayerRecord], *,
                     model_name: str | None = None) -> dict[str, Any]:
    """``kind: "estimated"``: p50 is the calibrated estimate; ``estimate`` carries its interval
    (``interval_ms``), the number of points behind it and their leave-one-out error.
    ``model`` is an .onnx/.tflite file or its layer records."""
    from edgekit import __version__
    from edgekit.bench.layers import layer_records

    records = model if isinstance(model, list) else layer_records(model)
    name = model_name or (Path(model).name if not isinstance(model, list) else "model")
    profile = get_profile(profile_name)
    est = estimate(profile.name, records)
    ms = est.latency_ms
    energy, how = energy_upper_bound_mj(profile.name, ms)
    return validate_result({
        "schema_version": SCHEMA_VERSION,
        "kind": "estimated",
        "label": f"{name} {est.precision} @ {profile.name} ({est.text()})",
        "edgekit_version": __version__,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "model": {"name": name, "sha256": None, "size_bytes": None, "precision": est.precision,
                  "macs": sum(r.macs for r in records), "layers": len(records)},
        "runtime": {"name": profile.runtime},
        "device": {"profile": profile.name},
        "config": {"batch": 1},
        # one estimate, not a distribution: the percentiles are the estimate itself; its
        # interval (80%, from leave-one-out residuals) is in the label and in ``estimate``
        "latency_ms": {"p50": ms, "p90": ms, "p99": ms, "mean": ms, "std": 0.0,
                       "median_ci95": [ms, ms], "samples": []},
        "throughput_ips": 1e3 / ms if ms > 0 else None,
        "estimate": {**est.to_dict(), "energy_upper_bound_mj": energy, "energy_basis": how},
        "power": {"available": False, "reason": "estimated result: nothing was measured"},
    })
