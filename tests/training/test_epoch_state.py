"""Epoch checkpoints: a run stopped mid-training and resumed ends bit for bit as the run that
was never stopped (weights, buffers, best-epoch choice, history)."""

from __future__ import annotations

import pytest
import torch

from edgekit.training import TrainConfig, train
from tests.helpers import SmallNet, block_data

CFG = TrainConfig(epochs=3, batch_size=32, lr=3e-3, progress=False, keep_start=True)


class Stop(Exception):
    pass


def _fresh() -> SmallNet:
    torch.manual_seed(0)
    net = SmallNet(channels=1)
    net.head = torch.nn.Sequential(torch.nn.Dropout(0.3), net.head)  # uses torch's RNG
    return net


def test_resumed_training_equals_the_uninterrupted_run(tmp_path):
    data, val = block_data(256), block_data(64, seed=1)
    whole = _fresh()
    expected = train(whole, data, CFG, val_data=val)

    checkpoint = tmp_path / "epochs.pt"
    steps = 0

    def stop_in_epoch_2(_model):
        nonlocal steps
        steps += 1
        if steps == 8 + 3:  # 8 steps per epoch: three steps into the second epoch
            raise Stop

    with pytest.raises(Stop):
        train(_fresh(), data, CFG, val_data=val, after_step=stop_in_epoch_2,
              checkpoint=checkpoint)
    assert checkpoint.is_file()
    resumed_net = _fresh()
    resumed = train(resumed_net, data, CFG, val_data=val, checkpoint=checkpoint)

    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed_net.state_dict()[name]), name
    assert resumed.best_epoch == expected.best_epoch
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in expected.history]
    assert resumed.start_metric == expected.start_metric


def test_a_checkpoint_of_another_run_is_not_loaded(tmp_path):
    data = block_data(128)
    checkpoint = tmp_path / "epochs.pt"
    train(_fresh(), data, CFG, checkpoint=checkpoint)
    other = TrainConfig(epochs=3, batch_size=32, lr=1e-3, progress=False)  # another lr
    net = _fresh()
    result = train(net, data, other, checkpoint=checkpoint)
    assert result.epochs_run == 3 and len(result.history) == 3  # trained from the start
    checkpoint.write_bytes(b"not a checkpoint")  # a torn file: start again, no crash
    assert train(_fresh(), data, CFG, checkpoint=checkpoint).epochs_run == 3
