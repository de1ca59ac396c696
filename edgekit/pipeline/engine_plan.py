"""The TensorRT engine plan of a compress run: ``build_engine.sh`` and the build config in
the bundle (paths relative to it, for the board), and the engine itself where TensorRT is
installed on this host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.core.io import atomic_write_text

# Finds trtexec where JetPack puts it (not on PATH by default); $TRTEXEC overrides.
_BUILD_SCRIPT = r"""#!/bin/sh
# Build the TensorRT engine on the target from the ONNX beside this script.
# Works from any directory and after the folder is copied; TRTEXEC=/path/to/trtexec overrides.
set -e
cd "$(dirname "$0")"
if [ -z "$TRTEXEC" ]; then
  TRTEXEC=$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)
fi
if [ ! -x "$TRTEXEC" ]; then
  echo "build_engine.sh: trtexec not found; JetPack installs it in" \
       "/usr/src/tensorrt/bin (or set TRTEXEC=/path/to/trtexec)" >&2
  exit 127
fi
"$TRTEXEC" {args}
"""


def tensorrt_plan(ctx: Any, onnx_path: Path) -> dict[str, Path]:
    """build_engine.sh and the build config, paths relative to the bundle; the engine itself
    where TensorRT is installed on this host."""
    import dataclasses
    import importlib.util
    import shlex

    from edgekit.export.tensorrt import (
        build_engine,
        engine_config,
        trtexec_command,
        write_build_config,
    )

    folder = onnx_path.parent
    engine = folder / (onnx_path.stem + ".engine")
    # relative names: the bundle is built and verified on another machine, in another folder
    cfg = dataclasses.replace(engine_config(onnx_path, engine), onnx=onnx_path.name,
                              engine=engine.name)
    files = {"tensorrt_build_config": write_build_config(cfg, folder / "tensorrt_build.json")}
    args = shlex.split(trtexec_command(cfg))[1:]
    script = folder / "build_engine.sh"
    atomic_write_text(script, _BUILD_SCRIPT.replace("{args}", shlex.join(args)))
    script.chmod(0o755)
    files["tensorrt_build_script"] = script
    if importlib.util.find_spec("tensorrt") is not None:
        files["engine"] = build_engine(dataclasses.replace(cfg, onnx=str(onnx_path),
                                                           engine=str(engine)))
    else:
        ctx.notes.append("TensorRT is not installed on this workstation: the engine was not "
                         "built here; `edgekit deploy` (or bundle/build_engine.sh on the "
                         "Jetson) builds it with JetPack's trtexec.")
    return files
