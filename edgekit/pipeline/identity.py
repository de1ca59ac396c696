"""Is a board's record about this run? Its file, reference and bundle hashes, checked.

`edgekit verify --expected` records the SHA-256 of the file it ran, of the reference it
compared with and the bundle's id (``identity``); `edgekit bench` records the SHA-256 of the
file it timed. `edgekit deploy` merges a record only when every one of them belongs to the
run's bundle: results from another model's bundle, another run's reference or a modified
file are refused, naming which hash differs.
"""

from __future__ import annotations

from typing import Any

from edgekit.core.errors import InvalidInputError
from edgekit.pipeline.bundle import REFERENCE


def check_record(bundle: dict[str, Any], record: dict[str, Any], board: str) -> None:
    """Raise InvalidInputError unless ``record``'s verify and bench results name files of
    ``bundle`` (the run's bundle.json)."""
    engine = None
    verify = record.get("verify")
    # {"error": ...} alone: the agent gave no JSON, so nothing claims to be this run's
    if verify and ("identity" in verify or "error" not in verify):
        engine = _check_verify(bundle, verify, board)
    known = {e["sha256"]: name for name, e in bundle["files"].items()}
    if engine:
        known[engine] = "the engine the board built from the bundle's ONNX"
    for label, result in record.get("bench", {}).items():
        if "error" in result:
            continue
        digest = (result.get("model") or {}).get("sha256")
        name = (result.get("model") or {}).get("name", label)
        if not digest:
            raise InvalidInputError(f"{board}: the bench result of {name} records no SHA-256 "
                                    "of the file it timed; run `edgekit bench` from this "
                                    "run's bundle")
        if digest not in known:
            raise InvalidInputError(
                f"{board}: the bench result of {name} timed a file that is not in this run's "
                f"bundle (SHA-256 {digest[:16]}… matches none of its files): results of "
                "another model or bundle?")


def _check_verify(bundle: dict[str, Any], verify: dict[str, Any], board: str) -> str | None:
    """The checks of one verify record; the engine's SHA-256 when it verified an engine."""
    identity = verify.get("identity") or {}
    what = f"{board}: the verify result of {identity.get('file') or verify.get('artifact')}"
    if not identity.get("file_sha256") or not identity.get("reference_sha256"):
        raise InvalidInputError(f"{what} records no SHA-256 of the file or the reference it "
                                "used (made by an older edgekit?); run verify again with "
                                "this run's bundle")
    ours = bundle["files"][REFERENCE]["sha256"]
    if identity["reference_sha256"] != ours:
        raise InvalidInputError(
            f"{what} compared with a reference.npz that is not this run's (SHA-256 "
            f"{identity['reference_sha256'][:16]}…, this run's {ours[:16]}…): results of "
            "another run or model")
    if identity.get("bundle_id") != bundle.get("bundle_id"):
        raise InvalidInputError(f"{what} names bundle {identity.get('bundle_id')}, not this "
                                f"run's {bundle.get('bundle_id')}")
    if identity.get("match") == "modified":
        raise InvalidInputError(f"{what} ran a modified file (its SHA-256 differs from the "
                                "one the reference lists)")
    if identity.get("match") == "engine":
        return identity["file_sha256"]
    listed = {e["sha256"] for e in bundle["files"].values()}
    if identity["file_sha256"] not in listed:
        raise InvalidInputError(f"{what} ran a file that is not in this run's bundle (SHA-256 "
                                f"{identity['file_sha256'][:16]}…)")
    return None
