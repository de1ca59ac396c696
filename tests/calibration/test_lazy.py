"""Lazy reading: image folders and .npy files decode only the samples a batch asks for."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from edgekit.calibration import (
    ArrayDataset,
    LazyImages,
    image_folder,
    is_lazy,
    load_dataset,
    numpy_arrays,
)
from edgekit.calibration.dataset import convert_channels, fit_images
from edgekit.core.errors import DataError

N_PER_CLASS = 100
CLASSES = ("cat", "dog", "emu")
SIDE = 16


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """300 small RGB PNGs in 3 class folders, and the pixels each one holds."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    files = []
    for cls in CLASSES:
        (root / cls).mkdir()
        for i in range(N_PER_CLASS):
            path = root / cls / f"{i:03d}.png"
            Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(path)
            files.append(path)
    return root, files


def _reference(files, size=None):
    """Eager decoding, written out here independently of the library."""
    out = []
    for path in files:
        img = Image.open(path).convert("RGB")
        if size is not None:
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize(
                (size, size), Image.Resampling.BILINEAR)
        out.append(np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / np.float32(255))
    return np.stack(out)


def test_lazy_folder_equals_eager_decoding(photo_folder):
    root, files = photo_folder
    ds = load_dataset(root)
    assert is_lazy(ds.x) and ds.x.shape == (300, 3, SIDE, SIDE) and ds.x.dtype == np.float32
    assert ds.class_names == CLASSES and np.bincount(ds.y).tolist() == [N_PER_CLASS] * 3
    ref = _reference(files)
    idx = np.array([299, 0, 150, 7, 7])
    assert np.array_equal(ds.x[idx], ref[idx])  # fancy index, unsorted, repeated
    assert np.array_equal(ds.x[10:20], ref[10:20]) and np.array_equal(ds.x[-1], ref[-1])
    assert np.array_equal(ds.x[5, 1, 2:4], ref[5, 1, 2:4])
    assert np.array_equal(np.asarray(ds.x), ref)
    assert np.array_equal(ds.materialized().x, ref) and not is_lazy(ds.materialized().x)
    small = image_folder(root, input_size=12)
    assert np.array_equal(small.x[idx], _reference([files[i] for i in idx], size=12))


def test_batches_decode_only_the_samples_asked_for(photo_folder, tmp_path):
    _, files = photo_folder
    copy = tmp_path / "photos"
    for path in files:
        (copy / path.parent.name).mkdir(parents=True, exist_ok=True)
        (copy / path.parent.name / path.name).write_bytes(path.read_bytes())
    ds = image_folder(copy)
    kept = np.array([3, 120, 250])
    for i, path in enumerate(files):  # every other file becomes undecodable after loading
        if i not in kept:
            (copy / path.parent.name / path.name).write_bytes(b"gone")
    assert np.array_equal(ds.x[kept], _reference([files[i] for i in kept]))
    sub = ds.subset(30, seed=1)  # choosing samples decodes nothing
    train, held = ds.split(0.2, seed=0)
    assert is_lazy(sub.x) and is_lazy(train.x) and is_lazy(held.x)
    with pytest.raises(DataError, match=r"000\.png: cannot decode image"):
        ds.x[0]


def test_memory_follows_the_batch_not_the_data_set(photo_folder):
    root, _ = photo_folder
    full_bytes = 300 * 3 * SIDE * SIDE * 4
    tracemalloc.start()
    try:
        ds = load_dataset(root)
        _, peak_load = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        batch = ds.x[np.arange(8)]
        _, peak_batch = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batch.nbytes == 8 * 3 * SIDE * SIDE * 4
    assert peak_load < full_bytes / 4  # paths, labels and headers only
    assert peak_batch < full_bytes / 4
    # nothing decoded is held: the lazy array pickles to its paths and settings
    assert not any(isinstance(v, np.ndarray) and v.size > 1000 for v in vars(ds.x._load).values())
    assert len(pickle.dumps(ds.x)) < full_bytes / 10


def test_subset_split_and_resized_stay_lazy_and_compose(photo_folder):
    root, files = photo_folder
    ds = load_dataset(root)
    ref = _reference(files)
    sub = ds.subset(30, seed=2)
    assert np.bincount(sub.y).tolist() == [10, 10, 10]
    assert len(set(_rows_of(sub, ref))) == 30  # distinct images of the folder
    adapted = sub.resized(8, 1)
    assert is_lazy(adapted.x) and adapted.x.shape == (30, 1, 8, 8)
    assert np.array_equal(adapted.x[:], convert_channels(fit_images(np.asarray(sub.x), 8), 1))
    inner = sub.x.take([4, 2]).take([1])  # a view of a view
    assert np.array_equal(inner[:], sub.x[[2]])


def _rows_of(sub: ArrayDataset, ref: np.ndarray) -> np.ndarray:
    """Which rows of ``ref`` the subset's images are (each must be one of them)."""
    flat = ref.reshape(len(ref), -1)
    return np.array([int(np.flatnonzero((flat == row.ravel()).all(1))[0]) for row in sub.x])


def test_mixed_sizes_are_found_in_the_scan(tmp_path):
    rng = np.random.default_rng(5)
    for cls, size in (("a", (10, 12)), ("b", (10, 10))):
        (tmp_path / cls).mkdir()
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / cls / "0.png")
    with pytest.raises(DataError, match=r"0\.png: image is 10x10 but 0\.png is 12x10; pass "):
        load_dataset(tmp_path)


def test_one_class_folder_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "only" / "0.png")
    with pytest.raises(DataError, match=r"one class folder \('only'\).*needs >= 2 classes"):
        load_dataset(tmp_path)


def test_npy_is_memory_mapped_and_converted_per_batch(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)  # channels last
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(40) % 4)
    ds = load_dataset(tmp_path / "x.npy")
    assert is_lazy(ds.x) and ds.x.shape == (40, 3, 6, 6)
    expected = x.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255)
    assert np.array_equal(ds.x[[5, 1]], expected[[5, 1]])
    # the file is read when a batch is asked for: a change on disk shows in the next batch
    on_disk = np.load(tmp_path / "x.npy", mmap_mode="r+")
    on_disk[7] = 255
    on_disk.flush()
    del on_disk
    assert ds.x[7].min() == 1.0
    held = ds.split(0.25, seed=0)[1]
    assert is_lazy(held.x) and len(held) == 10


def test_float_npy_is_range_checked_in_chunks(tmp_path, monkeypatch):
    import edgekit.calibration.files as files

    x = np.zeros((50, 4, 4), dtype=np.float32)
    x[37, 1, 1] = 1.5
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(50, dtype=np.int64))
    monkeypatch.setattr(files, "RANGE_CHECK_BYTES", 4 * 16 * 3)  # 3 rows per chunk
    message = r"x\.npy: float images must lie in \[0, 1\], found 0\.\.1\.5"
    with pytest.raises(DataError, match=message):
        numpy_arrays(tmp_path / "x.npy")


def test_a_memmap_given_as_x_stays_on_disk_through_subset(tmp_path):
    data = np.random.default_rng(4).random((20, 1, 3, 3), dtype=np.float32)
    np.save(tmp_path / "f.npy", data)
    mapped = np.load(tmp_path / "f.npy", mmap_mode="r")
    ds = ArrayDataset(x=mapped, y=np.arange(20) % 2, task="classification", num_classes=2,
                      name="mapped")
    sub = ds.subset(6, seed=0)
    assert is_lazy(sub.x) and np.array_equal(sub.x[:], data[np.sort(_picked(sub, data))])


def _picked(sub: ArrayDataset, data: np.ndarray) -> np.ndarray:
    return np.array([int(np.flatnonzero((data == row).all((1, 2, 3)))[0]) for row in sub.x])


def test_lazy_images_index_like_an_array():
    base = np.arange(5 * 2 * 3 * 3, dtype=np.float32).reshape(5, 2, 3, 3)
    lazy = LazyImages.from_array(base)
    assert (lazy.shape, lazy.dtype, lazy.ndim, len(lazy)) == (base.shape, np.float32, 4, 5)
    assert np.array_equal(lazy[1], base[1]) and np.array_equal(lazy[-2], base[-2])
    assert np.array_equal(lazy[::2], base[::2]) and np.array_equal(lazy[[4, 0]], base[[4, 0]])
    mask = np.array([True, False, True, False, False])
    assert np.array_equal(lazy[mask], base[mask]) and lazy[[]].shape == (0, 2, 3, 3)
    assert np.array_equal(lazy[:, 1, 0], base[:, 1, 0]) and np.array_equal(lazy[2, 0], base[2, 0])
    assert np.array_equal(np.stack(list(lazy)), base) and np.array_equal(np.asarray(lazy), base)
    view = lazy.take([3, 1, 4])
    assert np.array_equal(view[1:], base[[1, 4]]) and view.shape == (3, 2, 3, 3)
    doubled = view.map(lambda b: b * 2, (2, 3, 3))
    assert np.array_equal(doubled[0], base[3] * 2)
    for bad in (5, -6, [0, 9], np.zeros((2, 2), dtype=int)):
        with pytest.raises(IndexError):
            lazy[bad]
    with pytest.raises(DataError, match="expected"):
        lazy.map(lambda b: b[:, :1], (2, 3, 3))[0]


def test_lazy_reading_and_preprocessing_need_no_torch(photo_folder, tmp_path):
    import subprocess
    import sys

    root, _ = photo_folder
    np.save(tmp_path / "x.npy", np.zeros((4, 5, 5), dtype=np.uint8))
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    code = ("import sys; from edgekit.calibration import Preprocess, load_dataset;"
            "p = Preprocess(input_size=8, mean=(0.5,) * 3, std=(0.5,) * 3);"
            f"load_dataset({str(root)!r}, preprocess=p).x[:4];"
            f"load_dataset({str(tmp_path / 'x.npy')!r}, channels=3, preprocess=p).x[:4];"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
