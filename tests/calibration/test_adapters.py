"""Users' torch Datasets and DataLoaders: read lazily, labels once, wrong samples refused."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset  # noqa: E402

from edgekit.calibration import (  # noqa: E402
    ArrayDataset,
    Preprocess,
    as_dataset,
    is_lazy,
    load_dataset,
    load_splits,
)
from edgekit.calibration.forms import inputs_array, labels_array, sample_inputs  # noqa: E402
from edgekit.core.errors import DataError  # noqa: E402


class Digits(Dataset):
    """A user's Dataset: the transform runs in __getitem__, which counts its calls."""

    def __init__(self, n=40, with_targets=True, sample=None):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (n, 12, 12), dtype=np.uint8)
        self.labels = np.arange(n) % 4
        if with_targets:
            self.targets = self.labels.tolist()
            self.classes = ["w", "x", "y", "z"]
        self.sample = sample
        self.reads = 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.reads += 1
        x = torch.from_numpy(self.images[i]).float().div(255).sub(0.5).unsqueeze(0)
        if self.sample is not None:
            return self.sample(x, int(self.labels[i]))
        return x, int(self.labels[i])


def _expected(ds, idx):
    return (ds.images[idx].astype(np.float32) / 255 - 0.5)[:, None]


def test_dataset_reads_labels_from_targets_and_inputs_per_batch():
    users = Digits()
    ds = as_dataset(users)
    assert isinstance(ds, ArrayDataset) and is_lazy(ds.x) and ds.x.shape == (40, 1, 12, 12)
    assert users.reads == 1  # one sample for the shape; labels came from .targets
    assert ds.task == "classification" and ds.num_classes == 4
    assert ds.class_names == ("w", "x", "y", "z") and np.array_equal(ds.y, users.labels)
    idx = np.array([7, 3, 39])
    batch = ds.x[idx]
    assert users.reads == 4 and np.allclose(batch, _expected(users, idx))
    assert batch.min() < 0  # the user's normalization is kept as it is
    sub = ds.subset(8, seed=0)
    assert users.reads == 4 and np.bincount(sub.y).tolist() == [2, 2, 2, 2]


def test_dataset_without_targets_reads_labels_in_one_pass_and_loaders_use_their_dataset():
    users = Digits(with_targets=False)
    ds = as_dataset(DataLoader(users, batch_size=5, shuffle=True))
    assert users.reads == 1 + 40 and np.array_equal(ds.y, users.labels)
    assert ds.num_classes == 4 and ds.class_names is None and ds.name == "Digits"
    assert np.allclose(ds.x[:3], _expected(users, [0, 1, 2]))


def test_random_split_subsets_take_their_parents_targets():
    users = Digits()
    part = Subset(users, [5, 2, 30])
    ds = as_dataset(part)
    assert ds.y.tolist() == [1, 2, 2] and users.reads == 1
    assert np.allclose(ds.x[:], _expected(users, [5, 2, 30]))


def test_wrong_samples_are_one_line_data_errors():
    triple = Digits(sample=lambda x, y: (x, y, "meta"))
    with pytest.raises(DataError, match=r"Digits: sample 0 must be an \(x, y\) pair, got a "
                                        r"3-tuple \(Tensor, int, str\)") as info:
        as_dataset(DataLoader(triple, batch_size=4))
    assert "\n" not in str(info.value)
    keyed = Digits(sample=lambda x, y: {"image": x, "label": y})
    with pytest.raises(DataError, match=r"got a dict with keys \['image', 'label'\]"):
        as_dataset(keyed)
    flat = Digits(sample=lambda x, y: (x.reshape(-1), y))
    with pytest.raises(DataError, match=r"sample 0 input must be C×H×W, got a Tensor of shape"):
        as_dataset(flat)

    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.zeros(1, 4, 4), 0

    with pytest.raises(DataError, match="IterableDataset, which has no length"):
        as_dataset(DataLoader(Stream()))
    with pytest.raises(DataError, match="cannot read samples from int"):
        as_dataset(3)


def test_array_datasets_and_pairs_pass_through():
    mine = load_dataset("mnist5k", split="test")
    assert as_dataset(mine) is mine
    x = np.random.default_rng(1).random((6, 3, 5, 5), dtype=np.float32)
    pair = as_dataset((x, np.array([0, 1, 2, 0, 1, 2])))
    assert pair.x is x and pair.num_classes == 3 and pair.task == "classification"
    seg = as_dataset((torch.from_numpy(x), torch.zeros(6, 5, 5, dtype=torch.long)))
    assert seg.task == "segmentation" and np.shares_memory(seg.x, x)
    lazy = as_dataset((load_dataset(Digits()).x, np.arange(40) % 2))
    assert is_lazy(lazy.x) and lazy.num_classes == 2


def test_forms_decode_only_what_they_are_asked_for():
    users = Digits(with_targets=False)
    calib = sample_inputs(users, 5, seed=0)
    assert isinstance(calib, torch.Tensor) and calib.shape == (5, 1, 12, 12)
    assert users.reads == 1 + 5
    x = inputs_array(DataLoader(users))
    assert is_lazy(x) and len(x) == 40 and users.reads == 7
    assert labels_array(users).tolist() == users.labels.tolist()
    bare = Digits(sample=lambda x, y: x)
    assert inputs_array(bare)[:2].shape == (2, 1, 12, 12) and labels_array(bare) is None
    folder_like = load_dataset(Digits())
    assert len(sample_inputs(folder_like, 8, seed=1)) == 8  # stratified draw, 8 decoded


def test_load_dataset_and_splits_accept_users_objects_with_a_model_size():
    users = Digits()
    ds = load_dataset(DataLoader(users), input_size=16, channels=3)
    assert is_lazy(ds.x) and ds.x.shape == (40, 3, 16, 16) and ds.x[:2].shape == (2, 3, 16, 16)
    assert ds.x[:].min() < 0  # a normalized Dataset is resized, not clipped to [0, 1]
    train, test = load_splits(users, holdout=0.25, seed=0)
    assert (len(train), len(test)) == (30, 10) and is_lazy(test.x)
    norm = load_dataset(users, preprocess=Preprocess(mean=(0.5,), std=(2.0,)))
    assert np.allclose(norm.x[:3], (_expected(users, [0, 1, 2]) - 0.5) / 2)


def test_training_and_evaluation_run_on_a_lazy_dataset():
    from edgekit.training import TrainConfig, evaluate, train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 4))
    data = as_dataset(Digits())
    train(model, data, TrainConfig(epochs=1, batch_size=16, progress=False))
    assert 0.0 <= evaluate(model, data, batch_size=16)["accuracy"] <= 1.0
