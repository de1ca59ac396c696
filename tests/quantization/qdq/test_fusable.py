"""Convs that feed hard-swish run as onnxruntime int8 kernels, and the file still computes
what the trained model computes.

Real nncf PTQ/QAT, real ONNX export, real onnxruntime sessions (optimized graph read back).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

from edgekit.export.onnx import export_onnx  # noqa: E402
from edgekit.export.verify import verify  # noqa: E402
from edgekit.quantization import QuantConfig, quantize  # noqa: E402
from tests.helpers import block_data  # noqa: E402


class HardSwishNet(torch.nn.Module):
    """MobileNetV3's pattern: conv + BN + hard-swish, depthwise and pointwise."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.Hardswish(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.Hardswish(),
            nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.Hardswish())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def _optimized_ops(path, tmp_path) -> list[str]:
    """The op types of onnxruntime's optimized CPU graph of ``path``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


@pytest.fixture(scope="module")
def trained():
    from edgekit.training import TrainConfig, train

    torch.manual_seed(0)
    net = HardSwishNet()
    train(net, block_data(512), TrainConfig(epochs=3, lr=1e-2, batch_size=64, progress=False))
    return net.eval()


def test_convs_before_hardswish_fuse_into_int8_kernels(trained, tmp_path):
    qm = quantize(trained, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=64),
                  calib_data=block_data(64))
    ops = _optimized_ops(export_onnx(qm, tmp_path / "ort.onnx").path, tmp_path)
    assert ops.count("QLinearConv") == 3
    assert ops.count("Conv") + ops.count("FusedConv") == 0

    # TensorRT fuses conv + activation itself: its file keeps nncf's placement
    trt = quantize(trained, QuantConfig(target="tensorrt", mode="ptq", calibration_size=64),
                   calib_data=block_data(64))
    trt_ops = _optimized_ops(export_onnx(trt, tmp_path / "trt.onnx").path, tmp_path)
    assert trt_ops.count("QLinearConv") < 3


def test_qat_file_with_conv_output_quantizers_matches_the_trained_model(trained, tmp_path):
    qm = quantize(trained, QuantConfig(target="onnxruntime", epochs=1, calibration_size=64),
                  train_data=block_data(256), val_data=block_data(64, seed=1))
    path = export_onnx(qm, tmp_path / "m.onnx").path
    report = verify(path, qm.model, block_data(256, seed=3))  # onnxruntime's fused kernels
    assert report.kernels == "optimized"
    assert report.agreement >= 0.995
    # QAT trained the added ranges: they are learnable nncf quantizers like the others
    from nncf.torch.function_hook.wrapper import get_hook_storage

    names = [name for name, _ in get_hook_storage(qm.model).named_hooks()]
    conv_outputs = [n for n in names if n.startswith("post_hooks") and "conv2d" in n]
    assert len(conv_outputs) == 3
    x = block_data(8, seed=4).x
    assert np.isfinite(qm.model(torch.from_numpy(x)).detach().numpy()).all()


class PoolThenLinear(torch.nn.Module):
    """LeNet-5's pattern: conv, max-pool, flatten, then a linear layer and a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Linear(6 * 6 * 6, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.features(x), 1))))


def test_linear_after_max_pool_fuses_into_an_int8_gemm(tmp_path):
    torch.manual_seed(0)
    net = PoolThenLinear().eval()
    qm = quantize(net, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=64),
                  calib_data=block_data(64))
    path = export_onnx(qm, tmp_path / "ort.onnx").path
    ops = _optimized_ops(path, tmp_path)
    # fc1 reads a re-quantized max-pool output; fc2 writes the float logits, so it has no
    # QuantizeLinear to fuse with and stays a float Gemm
    assert ops.count("QGemm") == 1 and ops.count("QLinearConv") == 1
    assert ops.count("Gemm") == 1
    assert verify(path, qm.model, block_data(256, seed=3)).agreement >= 0.995


def test_kept_float_modules_get_no_quantizers_and_still_verify(trained, tmp_path):
    from edgekit.core.errors import InvalidInputError

    config = QuantConfig(target="onnxruntime", mode="ptq", calibration_size=64,
                         keep_float=("body.3",))  # the depthwise conv
    qm = quantize(trained, config, calib_data=block_data(64))
    path = export_onnx(qm, tmp_path / "mixed.onnx").path
    ops = _optimized_ops(path, tmp_path)
    assert ops.count("QLinearConv") == 2  # the other two convs stay int8
    assert ops.count("Conv") + ops.count("FusedConv") == 1
    assert verify(path, qm.model, block_data(256, seed=3)).agreement >= 0.995

    # a kept layer still reads a quantized input, so the layer before it stays fused
    torch.manual_seed(0)
    qm = quantize(PoolThenLinear().eval(), QuantConfig(
        target="onnxruntime", mode="ptq", calibration_size=64, keep_float=("fc2",)),
        calib_data=block_data(64))
    ops = _optimized_ops(export_onnx(qm, tmp_path / "lenet.onnx").path, tmp_path)
    assert ops.count("QGemm") == 1 and ops.count("Gemm") == 1  # fc1 int8, fc2 float
    with pytest.raises(InvalidInputError, match="no module"):
        quantize(trained, QuantConfig(target="onnxruntime", mode="ptq", calibration_size=64,
                                      keep_float=("body.99",)), calib_data=block_data(64))


def test_shapes_are_read_from_quantized_tensors(tmp_path):
    """ShuffleNet's channel shuffle reads x.shape at run time: no Shape may make
    onnxruntime dequantize a whole tensor (arithmetic: test_ort_target's rewrite test)."""
    from edgekit.export.onnx import read_metadata
    from edgekit.quantization.qdq.onnx_uint8 import GraphIndex
    from tests.export.test_ort_target import SIZE, ShuffleBlockNet

    torch.manual_seed(1)
    qm = quantize(ShuffleBlockNet().eval(), QuantConfig(target="onnxruntime", mode="ptq",
                                                        calibration_size=64),
                  calib_data=block_data(64, size=SIZE))
    path = export_onnx(qm, tmp_path / "shuffle.onnx").path
    assert int(read_metadata(path)["shapes_read_from_quantized"]) >= 1
    g = GraphIndex(onnx.load(str(path)).graph)
    shapes = [n for n in g.graph.node if n.op_type == "Shape"]
    assert shapes and all(g.producer[n.input[0]].op_type != "DequantizeLinear" for n in shapes)
    assert verify(path, qm.model, block_data(128, seed=3, size=SIZE)).agreement >= 0.995
