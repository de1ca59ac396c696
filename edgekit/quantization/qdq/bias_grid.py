"""Conv/Gemm biases rounded to the int32 grid onnxruntime's fused int8 kernels add them on.

QLinearConv adds an int32 bias whose step is input scale × weight scale (per output
channel); onnxruntime rounds a float bias onto that grid when it fuses a QDQ Conv. The
ONNX reference arithmetic (DequantizeLinear → float Conv → QuantizeLinear) adds the float
bias instead, so near a rounding boundary the deployed output is one step off, and over a
deep net the steps compound. Rounding the trained model's biases to the grid before export
makes the model, the file and the fused kernels compute the same thing (a PTQ MobileNetV2
reached full agreement between them; docs/results.md, "One-off checks").

The grid is read from an export of the model itself: the scales there are the ones the
deployed file will hold, whatever quantizer placement nncf chose.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgekit.core.errors import ExportError
from edgekit.quantization.qdq.onnx_graph import rewrite_for_target, stripped_module, trace_onnx
from edgekit.quantization.types import QdqQuantizedModel

GRID_OPSET = 17  # export_onnx's default: the graph the deployed file is written from


def round_biases_to_int32_grid(qmodel: QdqQuantizedModel) -> int:
    """Round the biases of ``qmodel`` in place; return how many."""
    import onnx
    import torch

    example = torch.zeros(1, *qmodel.input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.onnx"
        trace_onnx(stripped_module(qmodel, example), example, path, opset=GRID_OPSET,
                   dynamic_batch=True)
        proto = onnx.load(str(path))
        rewrite_for_target(proto, qmodel.config.target)
        onnx.save(proto, str(path))
        steps = bias_steps(path)
    params = dict(qmodel.model.named_parameters())
    with torch.no_grad():
        for name, step in steps.items():
            bias = params.get(name)
            if bias is None or step.size not in (1, bias.numel()):
                raise ExportError(f"cannot match the exported bias {name} to the model")
            grid = torch.as_tensor(np.broadcast_to(step, bias.shape).copy(), dtype=bias.dtype)
            bias.copy_(torch.round(bias / grid) * grid)
    return len(steps)


def bias_steps(path: str | Path) -> dict[str, np.ndarray]:
    """{bias initializer name: its int32 step} for each Conv/Gemm fed by DequantizeLinear."""
    import onnx

    from edgekit.quantization.qdq.onnx_uint8 import GraphIndex

    g = GraphIndex(onnx.load(str(path)).graph)

    def dq_scale(tensor: str) -> np.ndarray | None:
        node = g.producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        return g.constants.get(node.input[1])

    initializers = {init.name for init in g.graph.initializer}
    steps = {}
    for node in g.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3:
            continue
        bias, x_scale, w_scale = node.input[2], dq_scale(node.input[0]), dq_scale(node.input[1])
        if bias in initializers and x_scale is not None and w_scale is not None:
            steps[bias] = (x_scale.astype(np.float32) * w_scale.astype(np.float32)).ravel()
    return steps
