"""User data: image folders of real PNG/JPEG files and numpy arrays, good and bad."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekit.calibration import image_folder, load_dataset, load_splits, numpy_arrays
from edgekit.core.errors import DataError


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def grey_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = {}
    for cls in ("zebra", "ant"):  # classes are indexed in sorted order: ant=0, zebra=1
        for i in range(3):
            arr = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            _write_png(tmp_path / "root" / cls / f"{i}.png", arr)
            images[(cls, i)] = arr
    return tmp_path / "root", images


def test_image_folder_reads_pngs_with_sorted_classes(grey_folder):
    root, images = grey_folder
    ds = load_dataset(root)
    assert ds.x.shape == (6, 1, 8, 8) and ds.x.dtype == np.float32
    assert ds.class_names == ("ant", "zebra") and ds.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(ds.x[3, 0], images[("zebra", 0)] / np.float32(255))
    resized = image_folder(root, input_size=16, channels=3)
    assert resized.x.shape == (6, 3, 16, 16)


def test_image_folder_rgb_jpeg_and_mixed_sizes(tmp_path):
    rng = np.random.default_rng(1)
    for cls, size in (("a", (20, 30)), ("b", (24, 24))):
        arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        _write_png(tmp_path / cls / "img.jpg", arr)
    with pytest.raises(DataError, match="pass input_size"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, input_size=12)
    assert ds.x.shape == (2, 3, 12, 12) and ds.num_classes == 2


def test_image_folder_train_test_layout(tmp_path):
    arr = np.zeros((6, 6), dtype=np.uint8)
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("x", "y"):
            for i in range(n):
                _write_png(tmp_path / split / cls / f"{i}.png", arr)
    assert len(load_dataset(tmp_path, split="train")) == 6
    train, test = load_splits(tmp_path)
    assert (len(train), len(test)) == (6, 2)


def test_image_folder_bad_cases_name_the_path(tmp_path, grey_folder):
    with pytest.raises(DataError, match="not found"):
        image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        image_folder(tmp_path / "empty")
    root, _ = grey_folder
    (root / "bee").mkdir()
    with pytest.raises(DataError, match=r"bee: class folder has no PNG/JPEG"):
        image_folder(root)
    (root / "bee" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError, match=r"broken\.png: cannot decode image"):
        image_folder(root)
    # a valid header with a truncated body: the scan decodes every image, so it fails
    # there, before any model is built, not when its batch comes up
    good = (root / "ant" / "0.png").read_bytes()
    (root / "bee" / "broken.png").write_bytes(good[: len(good) // 2])
    with Image.open(root / "bee" / "broken.png") as img:
        assert img.size == (8, 8)  # the header alone reads fine
    with pytest.raises(DataError, match=r"broken\.png: cannot decode image.*truncated"):
        image_folder(root)


def test_numpy_pair_and_npz(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (10, 12, 12), dtype=np.uint8)
    y = rng.integers(0, 3, 10)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    ds = load_dataset(tmp_path / "x.npy")
    assert ds.x.shape == (10, 1, 12, 12) and np.allclose(ds.x[:, 0] * 255, x)
    assert ds.y.dtype == np.int64 and ds.num_classes == int(y.max()) + 1
    assert len(load_dataset(tmp_path)) == 10  # a folder holding x.npy + y.npy
    nhwc = rng.random((4, 9, 9, 3), dtype=np.float32)
    np.savez(tmp_path / "rgb.npz", x=nhwc, y=np.arange(4))
    rgb = numpy_arrays(tmp_path / "rgb.npz")
    assert rgb.x.shape == (4, 3, 9, 9) and np.array_equal(rgb.x[1, 2], nhwc[1, :, :, 2])
    seg = numpy_arrays(_npz(tmp_path / "seg.npz", x=x, y=(x > 128).astype(np.int32)))
    assert seg.task == "segmentation" and seg.y.shape == (10, 12, 12)
    train, held = load_splits(tmp_path / "x.npy", holdout=0.3, seed=1)
    assert (len(train), len(held)) == (7, 3)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_numpy_bad_inputs_raise_data_error(tmp_path):
    x = np.zeros((5, 4, 4), dtype=np.uint8)
    bad = {
        "lengths": (x, np.zeros(4, dtype=np.int64), "5 samples but y has 4"),
        "float labels": (x, np.zeros(5), "labels must be integers"),
        "int images": (x.astype(np.int32), np.zeros(5, dtype=np.int64), "uint8 or float"),
        "range": (np.full((5, 4, 4), 3.0), np.zeros(5, dtype=np.int64), r"\[0, 1\]"),
        "negative": (x, -np.ones(5, dtype=np.int64), ">= 0"),
    }
    for name, (bx, by, message) in bad.items():
        path = _npz(tmp_path / f"{name}.npz", x=bx, y=by)
        with pytest.raises(DataError, match=message) as info:
            numpy_arrays(path)
        assert str(path) in str(info.value)
    with pytest.raises(DataError, match="lacks array 'x'"):
        numpy_arrays(_npz(tmp_path / "nox.npz", y=np.zeros(5, dtype=np.int64)))
    # inputs alone are read as unlabelled inputs (data without labels)
    assert not numpy_arrays(_npz(tmp_path / "nolabels.npz", x=x)).labelled
    np.save(tmp_path / "alone_x.npy", x)
    assert not numpy_arrays(tmp_path / "alone_x.npy").labelled
    # object arrays would need unpickling: refused
    np.save(tmp_path / "obj_x.npy", np.array([{"a": 1}] * 5, dtype=object), allow_pickle=True)
    np.save(tmp_path / "obj_y.npy", np.zeros(5, dtype=np.int64))
    with pytest.raises(DataError, match="cannot read numpy data"):
        numpy_arrays(tmp_path / "obj_x.npy")
    (tmp_path / "trunc_x.npy").write_bytes((tmp_path / "alone_x.npy").read_bytes()[:60])
    np.save(tmp_path / "trunc_y.npy", np.zeros(5, dtype=np.int64))
    with pytest.raises(DataError, match=r"trunc_x\.npy"):
        numpy_arrays(tmp_path / "trunc_x.npy")
