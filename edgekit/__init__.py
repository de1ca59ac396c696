"""edgekit: compress light-weight CNNs and deploy them to Jetson and ARM boards.

The public API is imported lazily (PEP 562): ``import edgekit`` loads no torch, onnx,
onnxruntime, LiteRT or nncf, so the on-device benchmark agent runs with numpy alone.
"""

from __future__ import annotations

from edgekit.core.lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "compress": "edgekit.pipeline.run",
    "CompressResult": "edgekit.pipeline.run",
    "EdgekitError": "edgekit.core.errors",
    "create_model": "edgekit.models",
    "list_models": "edgekit.models",
    "load_dataset": "edgekit.calibration",
    "as_dataset": "edgekit.calibration",
    "Preprocess": "edgekit.calibration",
    "CompressRecipe": "edgekit.pipeline.recipe",
    "train": "edgekit.training",
    "evaluate": "edgekit.training",
    "TrainConfig": "edgekit.training",
    "save_checkpoint": "edgekit.training.checkpoint",
    "load_checkpoint": "edgekit.training.checkpoint",
    "QuantConfig": "edgekit.quantization",
    "quantize": "edgekit.quantization",
    "export_onnx": "edgekit.export.onnx",
    "quantize_for_tflite": "edgekit.quantization.pt2e.quantize",
    "export_tflite": "edgekit.export.tflite",
    "run_tflite": "edgekit.export.tflite",
    "check_model": "edgekit.export.check",
    "verify": "edgekit.export.verify",
    "benchmark": "edgekit.bench",
    "BenchConfig": "edgekit.bench",
    "get_profile": "edgekit.devices",
    "list_profiles": "edgekit.devices",
    "estimate_latency": "edgekit.bench.compare",
    "roofline_bound": "edgekit.devices",
    "load_ekz": "edgekit.deep_compression.ekz",
    "read_ekz": "edgekit.deep_compression.ekz",
    "pack_model": "edgekit.deep_compression.ekz.pack",
    "ekz_to_onnx": "edgekit.export.ekz",
}

# sub-packages reachable after `import edgekit` alone (edgekit.export.export(...) ...)
_SUBPACKAGES = ("bench", "calibration", "devices", "export", "models", "quantization", "runtime")

__all__, __getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, eager=("__version__",),
                                             submodules=_SUBPACKAGES)
