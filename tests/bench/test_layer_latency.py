"""Per-layer latency from onnxruntime's profiler: real torch exports, real onnxruntime
sessions (fp32 and an nncf int8 file), node names mapped back to the model's modules."""

from __future__ import annotations

import pytest

from edgekit.bench.layer_latency import (
    UNATTRIBUTED,
    block_of,
    compare_layers,
    layer_of,
    layer_times,
)
from edgekit.core.errors import InvalidInputError

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(("node", "layer"), [
    ("/features/features.5/block/block.1/block.1.0/Conv", "features.5.block.1.0"),
    ("/features/features.1/features.1.0/Conv_token_85", "features.1.0"),
    ("/features/features.5/block/block.1/block.1.2/features/5/block/1/2/hardswish/0__0.0/"
     "QuantizeLinear", "features.5.block.1.2"),
    ("/classifier/classifier.0/classifier/0/linear/0__1.0/DequantizeLinear", "classifier.0"),
    ("Transpose_token_88", UNATTRIBUTED),
    ("fused /fc1/Gemm", "fc1"),  # a float Gemm fused with its ReLU (LeNet-5's fc1)
])
def test_node_names_map_to_modules(node, layer):
    assert layer_of(node) == layer


def test_blocks_join_a_conv_and_its_activation():
    assert block_of("features.4.block.1.0") == block_of("features.4.block.1.2") \
        == "features.4.block.1"
    assert block_of("features.2.block.1.gate") == "features.2.block.1.gate"


class TwoConvs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.big = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU())
        self.small = nn.Sequential(nn.Conv2d(64, 4, 1), nn.ReLU())

    def forward(self, x):
        return self.small(self.big(x)).mean((2, 3))  # no conv writes the graph's output


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pytest.importorskip("nncf")
    from edgekit.export.onnx import export_onnx
    from edgekit.quantization import QuantConfig, quantize

    out = tmp_path_factory.mktemp("layers")
    torch.manual_seed(0)
    net = TwoConvs().eval()
    fp32 = export_onnx(net, out / "fp32.onnx", input_shape=(3, 64, 64)).path
    calib = torch.rand(16, 3, 64, 64)
    qm = quantize(net, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=16),
                  calib_data=calib)
    return fp32, export_onnx(qm, out / "int8.onnx").path


def test_layer_times_name_each_conv_and_rank_the_costly_one_first(files):
    fp32, int8 = files
    times = {t.layer: t for t in layer_times(fp32, runs=5)}
    # onnxruntime names an fp32 conv fused with its ReLU after the ReLU (big.1, small.1)
    assert {"big", "small"} <= {block_of(layer) for layer in times}
    big = sum(t.us for name, t in times.items() if name.startswith("big"))
    small = sum(t.us for name, t in times.items() if name.startswith("small"))
    assert big > small > 0  # 64x more output channels at the same size
    int8_ops = {op for t in layer_times(int8, runs=5) for op in t.ops}
    assert "QLinearConv" in int8_ops


def test_compare_layers_pairs_fp32_and_int8_blocks(files):
    rows = {r["layer"]: r for r in compare_layers(*files, runs=3, rounds=1)}
    for block in ("big", "small"):
        assert rows[block]["fp32_us"] > 0 and rows[block]["int8_us"] > 0
        assert "QLinearConv" in rows[block]["int8_ops"]
        assert "Conv" in rows[block]["fp32_ops"]
    with pytest.raises(InvalidInputError):
        compare_layers(*files, rounds=0)
    with pytest.raises(InvalidInputError):
        layer_times(files[0].with_name("missing.onnx"))
