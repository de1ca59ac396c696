"""The training loop: it learns, it is seeded, its hooks run, early stop, metrics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from edgekit.calibration import load_dataset
from edgekit.core.errors import InvalidInputError
from edgekit.models import create_model
from edgekit.training import (
    TrainConfig,
    classes_of,
    evaluate,
    predict,
    predicted_classes,
    train,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist5k").subset(800), load_dataset("mnist5k", split="test").subset(300)


def test_training_lifts_accuracy_far_above_chance(digits):
    train_ds, test_ds = digits
    torch.manual_seed(0)
    model = create_model("lenet5")
    before = evaluate(model, test_ds)["accuracy"]
    result = train(model, train_ds, TrainConfig(epochs=3, lr=3e-3, progress=False),
                   val_data=test_ds)
    after = evaluate(model, test_ds)["accuracy"]
    assert before < 0.3  # chance is 0.1
    assert after > 0.8, result.history
    assert result.epochs_run == 3 and len(result.history) == 3
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    # the best epoch's weights are what the model holds at the end
    assert after == result.best_metric == max(h["val_accuracy"] for h in result.history)


def test_training_is_reproducible_with_a_seed(digits):
    train_ds, _ = digits
    histories = []
    for _ in range(2):
        model = create_model("lenet300_100")
        torch.manual_seed(123)  # same initial weights; train() seeds the rest
        for p in model.parameters():
            nn.init.normal_(p, std=0.05)
        cfg = TrainConfig(epochs=2, optimizer="sgd", lr=0.05, schedule="step", seed=4,
                          progress=False)
        histories.append([h["loss"] for h in train(model, train_ds, cfg).history])
    # equal up to float rounding (MKL may round differently with memory alignment)
    assert histories[0] == pytest.approx(histories[1], rel=1e-5)


def test_hooks_run_around_every_optimizer_step(digits):
    train_ds, _ = digits
    model = create_model("lenet300_100")
    first = model.fc1.weight
    mask = torch.rand_like(first) > 0.5
    with torch.no_grad():
        first.mul_(mask)
    frozen_before = model.fc3.weight.detach().clone()
    calls = {"before": 0, "after": 0}

    def before_step(m):  # weight sharing's place: gradients exist and can be rewritten
        calls["before"] += 1
        assert m.fc1.weight.grad is not None
        m.fc3.weight.grad.zero_()

    def after_step(m):  # pruning's place: re-apply the mask after the update
        calls["after"] += 1
        with torch.no_grad():
            m.fc1.weight.mul_(mask)

    cfg = TrainConfig(epochs=2, batch_size=100, optimizer="sgd", momentum=0.0, lr=0.05,
                      progress=False)
    train(model, train_ds, cfg, before_step=before_step, after_step=after_step)
    assert calls == {"before": 16, "after": 16}  # 800 samples / 100 per batch x 2 epochs
    assert torch.equal(model.fc1.weight[~mask], torch.zeros(int((~mask).sum())))
    assert torch.equal(model.fc3.weight, frozen_before)


def test_early_stop_after_patience_epochs_without_improvement(digits):
    train_ds, test_ds = digits
    model = create_model("lenet300_100")

    def freeze(m):  # no update can happen, so the metric never improves after epoch 1
        for p in m.parameters():
            p.grad.zero_()

    cfg = TrainConfig(epochs=10, patience=2, progress=False)
    result = train(model, train_ds, cfg, val_data=test_ds, before_step=freeze)
    assert result.epochs_run == 3 and result.stopped_early and result.best_epoch == 1
    with pytest.raises(InvalidInputError, match="needs val_data"):
        train(model, train_ds, cfg)


def test_keep_start_returns_the_starting_weights_when_training_only_hurts(digits):
    train_ds, test_ds = digits
    torch.manual_seed(0)
    model = create_model("lenet300_100")
    train(model, train_ds, TrainConfig(epochs=2, lr=3e-3, progress=False))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    start_acc = evaluate(model, test_ds)["accuracy"]

    def scramble(m):  # every step makes the model worse: noise instead of gradients
        for p in m.parameters():
            p.grad.normal_(0, 1)

    cfg = TrainConfig(epochs=2, lr=0.05, progress=False, keep_start=True)
    result = train(model, train_ds, cfg, val_data=test_ds, before_step=scramble)
    assert result.best_epoch == 0 and result.best_metric == result.start_metric == start_acc
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    assert all(h["val_accuracy"] < start_acc for h in result.history)


def test_distillation_teaches_what_the_labels_do_not(digits):
    """With distill=1 the loss is the teacher's alone: a student trained on scrambled labels
    still learns the digits from a trained teacher; without the teacher it cannot."""
    train_ds, test_ds = digits
    torch.manual_seed(0)
    teacher = create_model("lenet300_100")
    train(teacher, train_ds, TrainConfig(epochs=3, lr=3e-3, progress=False))
    assert evaluate(teacher, test_ds)["accuracy"] > 0.8
    scrambled = replace(train_ds, y=np.random.default_rng(0).permutation(train_ds.y))
    accuracy = {}
    for distill in (0.0, 1.0):
        torch.manual_seed(1)
        student = create_model("lenet300_100")
        cfg = TrainConfig(epochs=3, lr=3e-3, progress=False, distill=distill)
        train(student, scrambled, cfg, teacher=teacher if distill else None)
        accuracy[distill] = evaluate(student, test_ds)["accuracy"]
    assert accuracy[1.0] > 0.6 and accuracy[0.0] < 0.3, accuracy
    assert evaluate(teacher, test_ds)["accuracy"] > 0.8  # the teacher is never trained


def test_distillation_needs_a_teacher_and_a_weight(digits):
    train_ds, _ = digits
    model = create_model("lenet300_100")
    with pytest.raises(InvalidInputError, match=r"no teacher and distill=0\.5"):
        train(model, train_ds, TrainConfig(epochs=1, progress=False, distill=0.5))
    with pytest.raises(InvalidInputError, match="a teacher and distill=0"):
        train(model, train_ds, TrainConfig(epochs=1, progress=False), teacher=model)
    with pytest.raises(InvalidInputError, match="distill"):
        TrainConfig(distill=1.5)
    with pytest.raises(InvalidInputError, match="temperature"):
        TrainConfig(distill=0.5, temperature=0)
    wide = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 12))  # 12 outputs, not 10
    with pytest.raises(InvalidInputError, match=r"teacher's output \(64, 12\)"):
        train(model, train_ds, TrainConfig(epochs=1, progress=False, distill=0.5),
              teacher=wide)


class _TinySegNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, padding=4, dilation=4), nn.ReLU(),
                                  nn.Conv2d(16, 11, 1))

    def forward(self, x):
        return self.body(x)


def test_segmentation_training_with_a_custom_loss():
    train_ds = load_dataset("mnist5k_seg", input_size=32).subset(400)
    test_ds = load_dataset("mnist5k_seg", split="test", input_size=32).subset(100)
    torch.manual_seed(0)
    model = _TinySegNet()
    before = evaluate(model, test_ds)
    weight = torch.ones(11)
    weight[0] = 0.1  # background covers ~90 % of the pixels
    calls = []

    def weighted_ce(logits, target):
        calls.append(logits.shape)
        return torch.nn.functional.cross_entropy(logits, target, weight=weight)

    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e-2, progress=False)
    result = train(model, train_ds, cfg, val_data=test_ds, loss_fn=weighted_ce)
    after = evaluate(model, test_ds)
    assert len(calls) == 75 and calls[0] == (16, 11, 32, 32)  # per-pixel logits
    assert set(after) == {"miou", "pixel_accuracy"} and result.metric == "miou"
    assert after["pixel_accuracy"] > 0.8 > 0.1 > before["pixel_accuracy"]
    assert after["miou"] > 0.05 > before["miou"]
    assert result.history[-1]["loss"] < result.history[0]["loss"]


class _ForegroundModel(nn.Module):
    """Predicts class 1 wherever a pixel is brighter than 0.5, background elsewhere."""

    def forward(self, x):
        fg = (x[:, :1] > 0.5).float()
        return torch.cat([1 - fg, fg, torch.zeros_like(fg).expand(-1, 9, -1, -1)], 1)


def test_miou_counts_classes_present_in_labels_or_predictions():
    ds = load_dataset("mnist5k_seg", split="test", input_size=32).subset(50)
    scores = evaluate(_ForegroundModel(), ds, batch_size=7)
    truth, pred = ds.y, (ds.x[:, 0] > 0.5).astype(np.int64)
    ious = []
    for c in range(11):
        union = ((truth == c) | (pred == c)).sum()
        if union:
            ious.append(((truth == c) & (pred == c)).sum() / union)
    assert scores["miou"] == pytest.approx(np.mean(ious))
    assert scores["pixel_accuracy"] == pytest.approx((truth == pred).mean())


class _HalfSizeSeg(nn.Module):
    """Segmentation logits at half the input's size (the evaluation upsamples them)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(1, 11, 3, stride=2, padding=1)

    def forward(self, x):
        return self.body(x)


def test_classes_from_raw_outputs_equal_the_evaluated_predictions(digits):
    """The pipeline scores from outputs it keeps for verification: the same classes as
    ``predicted_classes`` (a classifier, and segmentation maps that must be upsampled)."""
    from edgekit.export.verify import torch_outputs

    _, test_ds = digits
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    assert np.array_equal(classes_of(torch_outputs(model, test_ds.x), test_ds),
                          predicted_classes(model, test_ds))
    seg = load_dataset("mnist5k_seg", split="test", input_size=32).subset(20)
    net = _HalfSizeSeg().eval()
    raw = torch_outputs(net, seg.x)
    assert raw.shape[-2:] == (16, 16)
    classes = classes_of(raw, seg)
    assert classes.shape == (20, 32, 32)
    assert np.array_equal(classes, predicted_classes(net, seg))
    with pytest.raises(InvalidInputError, match="outputs for"):
        classes_of(raw[:5], seg)


def test_subset_indices_are_the_rows_subset_takes(digits):
    train_ds, _ = digits
    rows = train_ds.subset_indices(50, seed=3)
    assert np.array_equal(train_ds.subset(50, seed=3).x, train_ds.x[rows])
    assert len(set(rows.tolist())) == 50 and set(train_ds.y[rows].tolist()) == set(range(10))


def test_predict_and_bad_inputs(digits):
    _, test_ds = digits
    model = create_model("lenet5")
    model.train()
    logits = predict(model, test_ds.x[:10], batch_size=3)
    assert logits.shape == (10, 10) and logits.dtype == np.float32 and model.training
    with pytest.raises(InvalidInputError, match="float32"):
        predict(model, test_ds.x[:2].astype(np.float64))
    with pytest.raises(InvalidInputError, match="cannot take inputs"):
        evaluate(model, load_dataset("mnist5k", split="test", input_size=40).subset(10))
    with pytest.raises(InvalidInputError, match="does not fit segmentation"):
        evaluate(model, load_dataset("mnist5k_seg", split="test", input_size=28).subset(4))
    with pytest.raises(InvalidInputError, match="optimizer"):
        TrainConfig(optimizer="lion")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_runs_on_the_models_device(digits):
    train_ds, test_ds = digits
    model = create_model("lenet300_100").to("cuda")
    train(model, train_ds, TrainConfig(epochs=2, lr=3e-3, progress=False), val_data=test_ds)
    assert next(model.parameters()).is_cuda
    assert evaluate(model, test_ds)["accuracy"] > 0.7


def test_public_api_names_resolve_lazily():
    import edgekit
    from edgekit import calibration, training
    from edgekit.training import checkpoint

    assert edgekit.load_dataset is calibration.load_dataset
    assert edgekit.train is training.train and edgekit.evaluate is training.evaluate
    assert edgekit.TrainConfig is training.TrainConfig
    assert edgekit.save_checkpoint is checkpoint.save_checkpoint
    assert edgekit.load_checkpoint is checkpoint.load_checkpoint
