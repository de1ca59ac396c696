"""TensorRT engines from the QDQ ONNX: the Python builder where it imports, else trtexec.

TensorRT is not installable on the development/CI machines, so the same decisions are
written twice from one ``EngineBuildConfig``: as calls on the real ``tensorrt`` Python API
(``build_engine``, imported lazily) and as the equivalent ``trtexec`` command line plus a
JSON build config written beside the ONNX, so the artifact builds on a Jetson unchanged.
Explicit quantization comes from the Q/DQ nodes; fp16 is the fallback for layers without
them; the batch axis gets an optimization profile; 2:4-sparse weights turn on
``SPARSE_WEIGHTS``.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import ExportError, InvalidInputError
from edgekit.core.io import atomic_write_bytes, atomic_write_json, sha256_file
from edgekit.core.lazy import require
from edgekit.export.artifact import Artifact


@dataclass
class EngineBuildConfig:
    onnx: str
    engine: str
    input_name: str
    input_shape: tuple[int, ...]  # (C, H, W)
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8
    int8: bool = False  # explicit quantization: the ONNX carries Q/DQ
    fp16: bool = True
    sparse_weights: bool = False
    sparse_layers: list[str] = field(default_factory=list)
    workspace_mib: int = 1024
    timing_cache: str | None = None

    def shape(self, batch: int) -> tuple[int, ...]:
        return (batch, *self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["trtexec"] = trtexec_command(self)
        return out


def engine_config(onnx_path: str | Path, engine_path: str | Path, *, fp16: bool = True,
                  min_batch: int = 1, opt_batch: int = 1, max_batch: int = 8,
                  workspace_mib: int = 1024, timing_cache: str | None = None
                  ) -> EngineBuildConfig:
    """Read the ONNX once and derive everything the build needs from it."""
    onnx = require("onnx", purpose="planning a TensorRT build")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise InvalidInputError(f"need 1 <= min_batch <= opt_batch <= max_batch, got "
                                f"{min_batch}, {opt_batch}, {max_batch}")
    proto = onnx.load(str(onnx_path))
    graph = proto.graph
    layers = sparse_2_4_layers(onnx_path)
    inp = graph.input[0]
    dims = inp.type.tensor_type.shape.dim
    shape = tuple(int(d.dim_value) for d in dims[1:])
    if dims[0].dim_value and max_batch > dims[0].dim_value:
        raise InvalidInputError(f"{Path(onnx_path).name} has a fixed batch of "
                                f"{dims[0].dim_value}; export it with dynamic_batch=True")
    return EngineBuildConfig(
        onnx=str(onnx_path), engine=str(engine_path), input_name=inp.name, input_shape=shape,
        min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
        int8=any(n.op_type == "QuantizeLinear" for n in graph.node), fp16=fp16,
        sparse_layers=layers, sparse_weights=bool(layers), workspace_mib=workspace_mib,
        timing_cache=timing_cache,
    )


def sparse_2_4_layers(onnx_path: str | Path) -> list[str]:
    """Conv/Gemm layers TensorRT can run 2:4 sparse whose weights hold the pattern (at most
    2 non-zeros in every group of 4 input channels): ``edgekit.pruning.check_24_onnx``."""
    from edgekit.pruning.check24 import check_24_onnx

    return [row.name for row in check_24_onnx(onnx_path) if row.eligible and row.conforms]


def trtexec_command(cfg: EngineBuildConfig) -> str:
    """The trtexec line that builds the same engine as ``build_engine(cfg)``."""
    def dims(batch: int) -> str:
        return f"{cfg.input_name}:" + "x".join(str(d) for d in cfg.shape(batch))

    args = ["trtexec", f"--onnx={cfg.onnx}", f"--saveEngine={cfg.engine}",
            f"--minShapes={dims(cfg.min_batch)}", f"--optShapes={dims(cfg.opt_batch)}",
            f"--maxShapes={dims(cfg.max_batch)}", f"--memPoolSize=workspace:{cfg.workspace_mib}M"]
    if cfg.int8:
        args.append("--int8")  # explicit quantization: scales come from the Q/DQ nodes
    if cfg.fp16:
        args.append("--fp16")
    if cfg.sparse_weights or cfg.sparse_layers:
        args.append("--sparsity=enable")
    if cfg.timing_cache:
        args.append(f"--timingCacheFile={cfg.timing_cache}")
    return shlex.join(args)


def write_build_config(cfg: EngineBuildConfig, path: str | Path | None = None) -> Path:
    """Write the build config (with its trtexec line) as JSON beside the ONNX."""
    path = Path(path) if path else Path(cfg.onnx).with_suffix(".trt.json")
    atomic_write_json(path, cfg.to_dict())
    return path


def build_engine(cfg: EngineBuildConfig) -> Path:
    """Build and serialize the engine with the tensorrt Python API (TensorRT 8.6 / 10)."""
    trt = require("tensorrt", purpose="building a TensorRT engine")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(cfg.onnx).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {cfg.onnx}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mib << 20)
    if cfg.int8:
        config.set_flag(trt.BuilderFlag.INT8)
    if cfg.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if cfg.sparse_weights or cfg.sparse_layers:
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    profile = builder.create_optimization_profile()
    profile.set_shape(cfg.input_name, cfg.shape(cfg.min_batch), cfg.shape(cfg.opt_batch),
                      cfg.shape(cfg.max_batch))
    config.add_optimization_profile(profile)
    cache_path = Path(cfg.timing_cache) if cfg.timing_cache else None
    cache = config.create_timing_cache(cache_path.read_bytes()
                                       if cache_path and cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {cfg.onnx}")
    if cache_path:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return atomic_write_bytes(cfg.engine, bytes(serialized))


def export_engine(model: Any, path: str | Path, *, input_shape: tuple[int, ...] | None = None,
                  metadata: dict[str, Any] | None = None, fp16: bool = True,
                  max_batch: int = 8, opt_batch: int = 1, workspace_mib: int = 1024,
                  timing_cache: str | None = None) -> Artifact:
    """QDQ ONNX + build config + trtexec line; the engine too where tensorrt imports.

    Returns the engine Artifact when it was built, otherwise the ONNX Artifact with
    ``metadata["engine"]`` saying why not and how to build it on the device.
    """
    import importlib.util

    from edgekit.export.onnx import export_onnx

    path = Path(path)
    onnx_art = export_onnx(model, path.with_suffix(".onnx"), input_shape=input_shape,
                           dynamic_batch=True, metadata=metadata)
    cfg = engine_config(onnx_art.path, path, fp16=fp16, opt_batch=opt_batch,
                        max_batch=max_batch, workspace_mib=workspace_mib,
                        timing_cache=timing_cache)
    config_path = write_build_config(cfg)
    plan = {"build_config": str(config_path), "trtexec": trtexec_command(cfg)}
    if importlib.util.find_spec("tensorrt") is None:
        onnx_art.metadata["engine"] = {"built": False, "reason": "tensorrt is not importable "
                                       "on this host; run the trtexec line on the device", **plan}
        return onnx_art
    build_engine(cfg)
    precision = "int8" if cfg.int8 else ("fp16" if fp16 else "fp32")
    return Artifact(path=path, format="engine", precision=precision,
                    input_shape=cfg.input_shape, sha256=sha256_file(path),
                    metadata={**onnx_art.metadata, "engine": {"built": True, **plan},
                              "onnx_sha256": onnx_art.sha256})


def run_engine(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run float32 N×C×H×W ``x`` through a serialized engine; float32 first output.

    The benchmark's TensorRT runner does the work (TensorRT 10 tensor API, CUDA buffers
    from torch or cuda-python); batches above the engine's profile maximum are chunked.
    """
    from edgekit.runtime.tensorrt_engine import TensorRTRunner

    runner = TensorRTRunner(path, device="cuda")
    try:  # load() inside too: close() frees whatever a failed load left allocated
        runner.load()
        return runner.predict(x)
    finally:
        runner.close()
