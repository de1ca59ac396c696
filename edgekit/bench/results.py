"""The versioned result record: a JSON Schema (subset) and the validator that enforces it.

A result is plain JSON so that a board with only numpy can write it and a workstation can
read it. ``schema_version`` changes whenever a field changes meaning or a required field is
added; readers reject versions they do not know.

The schema is standard JSON Schema (draft 2020-12), but it is checked by the small validator
below rather than the ``jsonschema`` package: this module runs on the board, whose harness
needs only numpy and the runtime, and ``jsonschema`` brings ``referencing`` and the compiled
``rpds-py`` with it for the handful of keywords used here (type, required, properties,
const, enum).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.core.errors import DataError

# 2: memory says what it measures (peak during load + runs, not the process lifetime)
SCHEMA_VERSION = 2

_NUM = {"type": "number"}
_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_NUM = {"type": ["number", "null"]}
_MEMORY_MB = ("rss_before_load_mb", "peak_rss_during_bench_mb", "peak_rss_increase_mb",
              "process_lifetime_peak_rss_mb")

RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "edgekit benchmark result",
    "type": "object",
    "required": ["schema_version", "kind", "edgekit_version", "timestamp", "hostname", "model",
                 "runtime", "device", "config", "latency_ms", "power"],
    "properties": {
        "schema_version": {"type": "integer", "const": SCHEMA_VERSION},
        "kind": {"type": "string", "enum": ["measured", "estimated"]},
        "label": _NULLABLE_STR,
        "edgekit_version": _STR,
        "timestamp": _STR,
        "hostname": _STR,
        "model": {"type": "object", "required": ["name", "precision"], "properties": {
            "name": _STR, "sha256": _NULLABLE_STR, "size_bytes": {"type": ["integer", "null"]},
            "precision": _NULLABLE_STR}},
        "runtime": {"type": "object", "required": ["name"], "properties": {"name": _STR}},
        "device": {"type": "object", "required": ["profile"], "properties": {
            "profile": _NULLABLE_STR}},
        "config": {"type": "object"},
        "latency_ms": {"type": "object", "required": ["p50", "p90", "p99", "mean", "std"],
                       "properties": {"p50": _NUM, "p90": _NUM, "p99": _NUM, "mean": _NUM,
                                      "std": _NUM, "median_ci95": {"type": "array"},
                                      "samples": {"type": "array"}}},
        "throughput_ips": {"type": ["number", "null"]},
        "init_ms": {"type": ["number", "null"]},
        "first_run_ms": {"type": ["number", "null"]},
        "memory": {"type": "object", "required": [*_MEMORY_MB, "peak_rss_method"],
                   "properties": {**dict.fromkeys(_MEMORY_MB, _NULLABLE_NUM),
                                  "peak_rss_method": _STR,
                                  "gpu_bytes": {"type": ["integer", "null"]}}},
        "power": {"type": "object", "required": ["available"], "properties": {
            "available": {"type": "boolean"}}},
        "reference_check": {"type": ["object", "null"]},
        "state_before": {"type": "object"},
        "state_after": {"type": "object"},
    },
}

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def _check(value: Any, schema: dict[str, Any], where: str) -> None:
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        ok = any(
            isinstance(value, _TYPES[t]) and not (t in ("integer", "number")
                                                  and isinstance(value, bool))
            for t in names
        )
        if not ok:
            raise DataError(f"result field {where} must be {' or '.join(names)}, "
                            f"got {type(value).__name__}")
    if "const" in schema and value != schema["const"]:
        raise DataError(f"result field {where} is {value!r}; this edgekit reads "
                        f"{schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise DataError(f"result field {where} is {value!r}, not one of {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise DataError(f"result is missing field {where}.{key}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _check(value[key], sub, f"{where}.{key}")


def validate_result(result: Any) -> dict[str, Any]:
    """Return ``result`` if it matches RESULT_SCHEMA, else raise DataError naming the field."""
    _check(result, RESULT_SCHEMA, "result")
    power = result["power"]
    if power["available"] and "energy_per_inference_mj" not in power:
        raise DataError("result.power is available but has no energy_per_inference_mj")
    if not power["available"] and not power.get("reason"):
        raise DataError("result.power is unavailable but gives no reason")
    return result


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Read and validate result files; a file may hold one result or a list of them."""
    results = []
    for path in paths:
        path = Path(path)
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read result file {path}: {exc}") from None
        for item in data if isinstance(data, list) else [data]:
            try:
                results.append(validate_result(item))
            except DataError as exc:
                raise DataError(f"{path.name}: {exc}") from None
    return results
