"""Preprocess: geometry policies, channel order and mean/std, the same for every source."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgekit.calibration import Preprocess, image_folder, load_dataset, load_splits
from edgekit.core.errors import InvalidInputError


def _folder(root, images):
    """root/<class>/<i>.png for {class: [HxWx3 or HxW uint8 arrays]}."""
    for cls, arrays in images.items():
        (root / cls).mkdir(parents=True)
        for i, arr in enumerate(arrays):
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def _wide_image():
    """20 wide × 10 high, RGB, every pixel distinct and non-zero: crops and pads show."""
    rows, cols = np.mgrid[0:10, 0:20]
    return np.stack([rows * 20 + cols + 1, np.full((10, 20), 200), 255 - cols], -1
                    ).astype(np.uint8)


def test_centre_crop_and_letterbox_geometry_on_a_hand_made_image(tmp_path):
    img = _wide_image()
    root = _folder(tmp_path / "f", {"a": [img], "b": [img]})
    np.save(tmp_path / "x.npy", np.stack([img, img]))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    scaled = img.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    for source in (root, tmp_path / "x.npy"):
        crop = load_dataset(source, preprocess=Preprocess(input_size=10)).x[0]
        assert np.array_equal(crop, scaled[:, :, 5:15])  # the centre square, no resize needed
        box = load_dataset(source, preprocess=Preprocess(input_size=20, resize="letterbox")).x[0]
        assert box.shape == (3, 20, 20)
        assert np.array_equal(box[:, 5:15], scaled)  # the whole image, centred vertically
        assert not box[:, :5].any() and not box[:, 15:].any()  # zero bands above and below
        half = load_dataset(source, preprocess=Preprocess(input_size=10, resize="letterbox"))
        assert half.x.shape == (2, 3, 10, 10)
        assert not half.x[:, :, :2].any() and not half.x[:, :, 7:].any()  # 10×5 at row 2
        assert half.x[:, :, 2:7].min() > 0


def test_mean_std_and_bgr_values_outside_unit_range_are_kept(tmp_path):
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[..., 0] = 255  # pure red
    img[0, 0] = (0, 51, 255)
    root = _folder(tmp_path, {"a": [img], "b": [img]})
    pre = Preprocess(mean=(0.5, 0.25, 0.0), std=(0.25, 0.5, 2.0))
    x = load_dataset(root, preprocess=pre).x[0]
    assert np.allclose(x[0, 1, 1], (1 - 0.5) / 0.25) and np.allclose(x[0, 0, 0], -2.0)
    assert np.allclose(x[1, 1, 1], -0.5) and np.allclose(x[1, 0, 0], (0.2 - 0.25) / 0.5)
    assert x.max() == pytest.approx(2.0) and x.min() == pytest.approx(-2.0)  # never clipped
    bgr = load_dataset(root, preprocess=Preprocess(channel_order="BGR")).x[0]
    assert bgr[2, 1, 1] == 1.0 and bgr[0, 1, 1] == 0.0 and bgr[0, 0, 0] == 1.0
    both = load_dataset(root, preprocess=Preprocess(channel_order="BGR", mean=(1, 0, 0))).x[0]
    assert both[0, 0, 0] == 0.0 and both[2, 1, 1] == 1.0  # mean applies in the output order


def test_folders_and_numpy_files_preprocess_identically(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 9, 9, 3), dtype=np.uint8)
    root = _folder(tmp_path / "f", {"a": list(images[:3]), "b": list(images[3:])})
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", np.array([0, 0, 0, 1, 1, 1]))
    pre = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                     channel_order="BGR")
    from_folder = load_dataset(root, preprocess=pre)
    from_numpy = load_dataset(tmp_path / "x.npy", preprocess=pre)
    assert np.array_equal(from_folder.x[:], from_numpy.x[:])
    train, test = load_splits(tmp_path / "x.npy", holdout=0.5, preprocess=pre)
    assert (len(train), len(test)) == (3, 3) and train.x[:].min() < 0  # normalized too
    assert np.allclose(np.concatenate([train.x[:], test.x[:]]).sum(0), from_numpy.x[:].sum(0),
                       atol=1e-5)


def test_no_or_default_preprocess_keeps_the_embedded_arrays_bit_identical():
    plain = load_dataset("mnist5k", split="test")
    same = load_dataset("mnist5k", split="test", preprocess=Preprocess())
    assert same.x.tobytes() == plain.x.tobytes()
    framed = load_dataset("mnist5k", split="test", input_size=32, channels=3)
    via = load_dataset("mnist5k", split="test", preprocess=Preprocess(input_size=32, channels=3))
    assert via.x.tobytes() == framed.x.tobytes()
    norm = load_dataset("mnist5k", split="test", preprocess=Preprocess(mean=(0.1307,),
                                                                      std=(0.3081,)))
    assert np.array_equal(norm.x, (plain.x - np.float32(0.1307)) / np.float32(0.3081))
    seg = load_dataset("mnist5k_seg", split="test", preprocess=Preprocess(input_size=32))
    assert seg.x.tobytes() == load_dataset("mnist5k_seg", split="test",
                                           input_size=32).x.tobytes()


def test_crop_fraction_takes_the_centre_share_of_the_short_side(tmp_path):
    """ImageNet's "resize to 256, crop 224" as a share of the short side: here half of 10
    px, so the 5×5 centre of the 20×10 image, already at the input size (no resize)."""
    img = _wide_image()
    root = _folder(tmp_path / "f", {"a": [img], "b": [img]})
    np.save(tmp_path / "x.npy", np.stack([img, img]))
    scaled = img.astype(np.float32).transpose(2, 0, 1) / np.float32(255)
    pre = Preprocess(input_size=5, crop_fraction=0.5)
    for source in (root, tmp_path / "x.npy"):
        np.testing.assert_array_equal(load_dataset(source, preprocess=pre).x[0],
                                      scaled[:, 2:7, 7:12])
    assert Preprocess.from_dict(pre.to_dict()) == pre


def test_preprocess_round_trips_through_json():
    pre = Preprocess(input_size=224, resize="letterbox", mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), channel_order="BGR", channels=3)
    data = json.loads(json.dumps(pre.to_dict()))
    assert data["mean"] == [0.485, 0.456, 0.406] and Preprocess.from_dict(data) == pre
    assert Preprocess.from_dict({}) == Preprocess()
    assert Preprocess.from_dict({"mean": [0.5], "std": [0.5]}).mean == (0.5,)
    with pytest.raises(InvalidInputError, match=r"unknown preprocess key\(s\) \['scale'\]"):
        Preprocess.from_dict({"scale": 2})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mean": (0.5, 0.5)}, r"mean must have 1 or 3 value\(s\).*got 2"),
    ({"channels": 3, "mean": (0.5,)}, r"mean must have 3 value\(s\)"),
    ({"std": (0.5, 0.0, 0.5)}, r"std values must be > 0"),
    ({"mean": (0.5,), "std": (1, 1, 1)}, "mean has 1 values but std has 3"),
    ({"mean": "0.5"}, "mean must be a list"),
    ({"mean": (float("nan"),)}, "finite numbers"),
    ({"resize": "stretch"}, r"resize must be one of \('centre-crop', 'letterbox'\)"),
    ({"channel_order": "rgb"}, "channel_order must be one of"),
    ({"channels": 2}, "channels must be 1 or 3"),
    ({"channels": 1, "channel_order": "BGR"}, "BGR' needs 3 channels"),
    ({"input_size": 0}, "input_size must be an integer >= 1"),
    ({"input_size": 8, "crop_fraction": 0}, r"crop_fraction must be a number in \(0, 1\]"),
    ({"input_size": 8, "crop_fraction": 1.5}, r"crop_fraction must be a number in \(0, 1\]"),
    ({"crop_fraction": 0.5}, "needs resize 'centre-crop' and an input_size"),
    ({"input_size": 8, "resize": "letterbox", "crop_fraction": 0.5}, "needs resize"),
])
def test_bad_preprocess_is_a_one_line_typed_error(kwargs, message):
    with pytest.raises(InvalidInputError, match=message) as info:
        Preprocess(**kwargs)
    assert "\n" not in str(info.value)


def test_mean_of_the_wrong_length_for_the_data_and_conflicting_sizes(tmp_path):
    grey = np.zeros((4, 4), dtype=np.uint8)
    root = _folder(tmp_path, {"a": [grey], "b": [grey]})
    with pytest.raises(InvalidInputError, match=r"mean has 3 value\(s\) but the images have 1"):
        image_folder(root, preprocess=Preprocess(mean=(0.5, 0.5, 0.5)))
    assert image_folder(root, channels=3, preprocess=Preprocess(mean=(0.5, 0.5, 0.5))
                        ).x[:].shape == (2, 3, 4, 4)
    with pytest.raises(InvalidInputError, match=r"input_size=32 conflicts with .* input_size=28"):
        load_dataset("mnist5k", input_size=32, preprocess=Preprocess(input_size=28))
    with pytest.raises(InvalidInputError, match=r"mean has 3 value\(s\) but the images have 1"):
        load_dataset("mnist5k", preprocess=Preprocess(mean=(0.5, 0.5, 0.5)))
