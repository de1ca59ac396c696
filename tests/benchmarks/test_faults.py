"""The faults benchmarks/verify_seeds.py plants in a deployed .tflite (benchmarks/
_tflite_faults.py): each leaves a file the real LiteRT interpreter still runs, and changes
its outputs; the ONNX faults' judging (``_faults.judge_file``) is exercised by the
benchmark itself on real compress bundles."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _tflite_faults

SHAPE = (1, 3, 12, 12)
# the fixture's PTQ and LiteRT conversion take ~12 s of CPU, over 20 s on a busy machine
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory) -> Path:
    """A full-integer .tflite from edgekit's PTQ of a five-layer net: enough layers for
    every fault (``wrong_scale`` edits the fourth weight, ``swapped_layers`` needs two of
    one shape)."""
    import torch

    from edgekit.export.tflite import export_tflite
    from edgekit.quantization import QuantConfig
    from edgekit.quantization.pt2e.quantize import quantize_for_tflite

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        *(m for _ in range(3) for m in (torch.nn.Conv2d(8, 8, 3, padding=1),
                                        torch.nn.ReLU())),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    calib = np.random.default_rng(2).standard_normal((32, *SHAPE[1:])).astype(np.float32)
    cfg = QuantConfig(target="tflite", mode="ptq", epochs=0, calibration_size=32,
                      batch_size=16)
    qm = quantize_for_tflite(net, cfg, calib_data=calib)
    path = tmp_path_factory.mktemp("models") / "five_layers_int8.tflite"
    return export_tflite(qm, path, calibration=calib[:4]).path


def _outputs(path: Path, x: np.ndarray) -> np.ndarray:
    from edgekit.runtime.registry import open_runner

    runner = open_runner(path, runtime="litert", threads=1, device="cpu")
    try:
        return runner.predict(x)
    finally:
        runner.close()


@pytest.mark.parametrize("fault", sorted(_tflite_faults.FAULTS))
def test_a_planted_fault_changes_what_litert_computes(fault, int8_tflite, tmp_path):
    x = np.random.default_rng(3).standard_normal((16, *SHAPE[1:])).astype(np.float32)
    good = int8_tflite.read_bytes()
    damaged = _tflite_faults.FAULTS[fault](good)
    assert len(damaged) == len(good) and damaged != good
    path = tmp_path / f"{fault}.tflite"
    path.write_bytes(damaged)
    before, after = _outputs(int8_tflite, x), _outputs(path, x)
    assert after.shape == before.shape
    assert np.abs(after - before).max() > 0, f"{fault} left the outputs unchanged"
    assert int8_tflite.read_bytes() == good  # the fault edits a copy


def test_weights_are_found_with_their_per_channel_scales(int8_tflite):
    weights = _tflite_faults._weights(bytearray(int8_tflite.read_bytes()))
    assert len(weights) == 5
    for weight in weights:
        assert weight.values.dtype == np.int8
        assert len(weight.scales) in (1, weight.values.shape[weight.axis])
