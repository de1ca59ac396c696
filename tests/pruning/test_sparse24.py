"""2:4 sparsity: the pattern checker on hand-made tensors and ONNX files, masks by magnitude,
the dense layers' reasons, and masks kept through fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.pruning import (  # noqa: E402
    SparsityConfig,
    check_24,
    check_24_onnx,
    mask_24,
    mask_enforcer,
    pattern_ok,
    sparsify_24,
)
from edgekit.training import TrainConfig, train  # noqa: E402
from tests.helpers import block_data, small_model  # noqa: E402


def test_hand_made_tensors_pass_and_fail():
    good = np.zeros((2, 8, 3, 3), dtype=np.float32)
    good[:, 0] = 1.0
    good[:, 5] = -2.0
    good[:, 6] = 0.5  # two non-zeros in channels 4-7, one in 0-3
    assert check_24(good) == (True, "")
    assert check_24(torch.from_numpy(good))[0]
    bad = good.copy()
    bad[1, 7, 2, 1] = 0.25  # three in channels 4-7 at one kernel position of output 1
    ok, why = check_24(bad)
    assert not ok and "1 of 36 groups" in why and "output 1" in why and "4-7" in why
    assert check_24(np.ones((4, 6)))[1] == "input channels 6 not a multiple of 4"
    dense = np.ones((4, 8))
    assert not check_24(dense)[0]


def test_int8_zero_is_the_zero_point():
    q = np.array([[5, 5, 1, 9], [0, 3, 0, 0]], dtype=np.int8)
    assert check_24(q, zero_point=np.array([5, 0]))[0]  # row 0: 5 is its zero
    assert not check_24(q)[0]  # with zero point 0 row 0 has 4 non-zeros


def test_mask_keeps_the_two_largest_of_four():
    w = torch.tensor([0.1, -3.0, 0.2, 2.0, 1.0, 0.0, -0.5, 0.4]).reshape(1, 8, 1)
    mask = mask_24(w)
    assert mask[0, :, 0].tolist() == [False, True, False, True, True, False, True, False]
    big = torch.randn(16, 32, 3, 3)
    assert check_24(big * mask_24(big))[0]


def test_model_masks_dense_layers_and_share():
    model = small_model("mobilenet_v2")
    result = sparsify_24(model)
    assert result.masks and 0 < result.sparse_mac_share < 1
    assert any("depthwise" in why for why in result.dense.values())
    assert any("input channels 1 " in why for why in result.dense.values())  # the stem
    modules = dict(model.named_modules())
    for name in result.masks:
        assert check_24(modules[name].weight)[0]
        assert modules[name].weight.shape[1] % 16 == 0
    with pytest.raises(InvalidInputError):
        SparsityConfig.parse("4:8")


def test_masks_survive_training():
    torch.manual_seed(0)
    model = small_model("mobilenet_v2")
    data = block_data(128, size=28)
    result = sparsify_24(model)
    train(model, data, TrainConfig(epochs=1, lr=1e-2, batch_size=32, progress=False),
          after_step=mask_enforcer(result))
    modules = dict(model.named_modules())
    assert all(check_24(modules[n].weight)[0] for n in result.masks)


def _qdq_onnx(path, weight_q, zero_point):
    """A one-Conv QDQ file with an int8 weight initializer, as the exporters write it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    k = weight_q.shape[0]
    inits = [numpy_helper.from_array(weight_q.astype(np.int8), "w_q"),
             numpy_helper.from_array(np.full(k, 0.1, np.float32), "w_scale"),
             numpy_helper.from_array(zero_point.astype(np.int8), "w_zp")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], axis=0),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_onnx_int8_initializers(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.integers(1, 100, (8, 16, 1, 1))
    w[:, 0::2] = 0  # every other input channel: two zeros per group of four
    rows = check_24_onnx(_qdq_onnx(tmp_path / "ok.onnx", w, np.zeros(8)))
    assert [(r.op, r.shape, r.int8, r.eligible, r.conforms) for r in rows] == [
        ("Conv", (8, 16, 1, 1), True, True, True)]
    assert pattern_ok(rows)
    w[3, 2, 0, 0] = 7
    rows = check_24_onnx(_qdq_onnx(tmp_path / "bad.onnx", w, np.zeros(8)))
    assert not rows[0].conforms and "output 3" in rows[0].reason and not pattern_ok(rows)
    zp = np.full(8, 3)  # values equal to a non-zero zero point count as zeros
    w2 = np.where(w == 0, 3, w)
    w2[3, 2, 0, 0] = 3
    assert pattern_ok(check_24_onnx(_qdq_onnx(tmp_path / "zp.onnx", w2, zp)))


def test_recover_masks_of_a_reloaded_model():
    from edgekit.pruning import recover_24

    model = small_model("mobilenet_v2")
    made = sparsify_24(model)
    again = recover_24(model)
    assert sorted(again.masks) == sorted(made.masks)
    assert again.sparse_mac_share == made.sparse_mac_share
    fresh = recover_24(small_model("mobilenet_v2"))  # never sparsified: nothing claimed
    assert not fresh.masks and any("do not hold 2:4" in r for r in fresh.dense.values())
