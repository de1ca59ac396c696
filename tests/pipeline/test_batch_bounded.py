"""Memory bounded by the batch: a compress run on data read from a file never decodes more
samples at once than a batch or the calibration set, however large the data set is
(benchmarks/pretrained_memory.py measures the peak RSS this keeps flat)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

import edgekit  # noqa: E402
from edgekit.calibration.lazy import LazyImages  # noqa: E402
from tests.pipeline.test_pretrained import ThirdPartyNet  # noqa: E402


@pytest.mark.slow
def test_compress_decodes_batches_never_the_whole_data_set(tmp_path, monkeypatch):
    from edgekit.calibration import mnist5k
    from edgekit.pipeline.bundle import MAX_SAMPLES

    n, calibration = 3000, 48
    np.save(tmp_path / "x.npy", np.asarray(mnist5k("train").x[:n]))  # memory-mapped: lazy
    decoded: list[int] = []
    decode = LazyImages._decode

    def counted(self, positions):
        decoded.append(len(positions))
        return decode(self, positions)

    monkeypatch.setattr(LazyImages, "_decode", counted)
    torch.manual_seed(0)
    result = edgekit.compress(ThirdPartyNet().eval(), "jetson", data=tmp_path / "x.npy",
                              epochs=0, qat_epochs=0, out=tmp_path / "run",
                              calibration_size=calibration, batch_size=32, bench_runs=3,
                              bench_power="none", fp32_baseline=False, ptq_rounding="nearest")
    test = result.verification.samples
    assert test == 600  # a fifth of the data, judged batch by batch
    # every test sample was read, but no read took more than verification's batch of 64,
    # the calibration set or the board's reference inputs (at most MAX_SAMPLES): less than
    # the test split, far less than the data
    assert sum(decoded) >= test and max(decoded) <= max(64, calibration, MAX_SAMPLES) < test
