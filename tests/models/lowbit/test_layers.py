"""Low-bit quantizers, layers and materialization: values, gradients, exactness."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import edgekit.lowbit as lb  # noqa: E402
from edgekit.core import hashing  # noqa: E402
from edgekit.core.errors import InvalidInputError  # noqa: E402
from edgekit.models.lowbit import quantizers  # noqa: E402


def test_binarize_is_exactly_pm1_with_hardtanh_gradient():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.5], requires_grad=True)
    y = quantizers.binarize_ste(x)
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]  # 1 inside [-1, 1], else 0


def test_xnor_weight_uses_per_channel_mean_abs():
    w = torch.tensor([[0.5, -1.5], [0.1, 0.3]])
    q = quantizers.xnor_weight(w)
    assert q.tolist() == [[1.0, -1.0], [pytest.approx(0.2), pytest.approx(0.2)]]
    assert torch.equal(q.abs()[0], torch.full((2,), 1.0))


def test_twn_threshold_and_scale_follow_the_paper():
    rng = np.random.default_rng(0)
    w_np = rng.normal(size=(8, 16)).astype(np.float32)
    codes, alpha = quantizers.twn_codes_and_scale(torch.from_numpy(w_np))
    delta = 0.7 * np.abs(w_np).mean()
    expected = np.where(w_np > delta, 1, np.where(w_np < -delta, -1, 0))
    assert np.array_equal(codes.numpy(), expected)
    assert alpha.item() == pytest.approx(np.abs(w_np)[expected != 0].mean(), rel=1e-6)
    q = quantizers.twn_weight(torch.from_numpy(w_np))
    assert set(np.unique(q.numpy())) <= {-alpha.item(), 0.0, alpha.item()}


def test_ttq_gradients_reach_both_scales_and_the_latent_weight():
    w = torch.tensor([1.0, -1.0, 0.001, 0.5], requires_grad=True)  # threshold 0.05 * 1
    w_pos = torch.tensor(2.0, requires_grad=True)
    w_neg = torch.tensor(3.0, requires_grad=True)
    q = quantizers.ttq_weight(w, w_pos, w_neg)
    assert q.tolist() == [2.0, -3.0, 0.0, 2.0]
    grad = torch.tensor([1.0, 10.0, 100.0, 1000.0])
    q.backward(grad)
    assert w_pos.grad.item() == 1001.0  # sum of grads at positive codes
    assert w_neg.grad.item() == -10.0  # d(-W_n)/dW_n at the negative code
    assert w.grad.tolist() == [2.0, 30.0, 100.0, 2000.0]  # scaled by W_p / W_n / 1


def test_hash_is_pinned_deterministic_and_balanced():
    index, sign = hashing.hash_positions(8, 5, 0)
    # Pinned: a change here would make every stored hashed file decode differently.
    assert index.tolist() == [0, 0, 0, 4, 4, 2, 0, 3]
    assert sign.tolist() == [-1, 1, -1, -1, 1, 1, -1, -1]
    big, signs = hashing.hash_positions(100_000, 1000, 3)
    counts = np.bincount(big, minlength=1000)
    assert counts.min() > 50 and counts.max() < 160  # ~Poisson(100)
    assert abs(signs.mean()) < 0.02
    other, _ = hashing.hash_positions(100_000, 1000, 4)
    assert (other != big).mean() > 0.9


def test_hash_rejects_bad_arguments():
    with pytest.raises(InvalidInputError):
        hashing.hash_positions(10, 0, 0)
    with pytest.raises(InvalidInputError):
        hashing.buckets_for(100, 0.0)


def test_hashed_linear_gradient_is_signed_scatter_of_virtual_gradient():
    torch.manual_seed(0)
    layer = lb.HashedLinear(20, 7, compression=1 / 4, seed=5)
    assert layer.n_buckets == 35
    x = torch.randn(3, 20)
    virtual = layer.quantized_weight().detach().requires_grad_(True)
    torch.nn.functional.linear(x, virtual, layer.bias).sum().backward()
    layer(x).sum().backward()
    expected = torch.zeros(35).index_add_(0, layer.bucket_index,
                                          virtual.grad.flatten() * layer.bucket_sign)
    assert torch.allclose(layer.buckets.grad, expected, atol=1e-6)
    assert set(layer.state_dict()) == {"buckets", "bias"}  # the hash tables are rebuilt


def test_xnor_conv_scales_binary_input_by_box_filtered_mean_abs():
    torch.manual_seed(0)
    conv = lb.XnorConv2d(3, 4, 3, padding=1, bias=True).eval()
    x = torch.randn(2, 3, 6, 6)
    alpha = conv.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
    a = x.abs().mean(dim=1, keepdim=True)
    k = nn.functional.avg_pool2d(a, 3, 1, 1, count_include_pad=True)
    want = nn.functional.conv2d(torch.where(x >= 0, 1.0, -1.0), alpha * torch.sign(conv.weight),
                                None, 1, 1) * k + conv.bias.view(1, -1, 1, 1)
    assert torch.allclose(conv(x), want, atol=1e-5)
    with pytest.raises(ValueError):
        lb.XnorConv2d(4, 4, 3, groups=2)


LAYER_CASES = [
    lambda: lb.BinaryConv2d(3, 5, 3, padding=1),
    lambda: lb.BinaryLinear(12, 6),
    lambda: lb.XnorConv2d(3, 5, 3, stride=2, padding=1),
    lambda: lb.XnorConv2d(3, 5, 3, binary_input=False),
    lambda: lb.XnorLinear(12, 6),
    lambda: lb.TernaryConv2d(3, 5, 3),
    lambda: lb.TernaryLinear(12, 6),
    lambda: lb.TTQConv2d(3, 5, 1),
    lambda: lb.TTQLinear(12, 6),
    lambda: lb.HashedConv2d(3, 5, 3, compression=1 / 8, seed=2),
    lambda: lb.HashedLinear(12, 6, compression=1 / 8),
]


@pytest.mark.parametrize("make", LAYER_CASES)
def test_materialize_gives_standard_layers_with_bit_identical_output(make):
    torch.manual_seed(0)
    layer = make()
    is_conv = hasattr(layer, "kernel_size")
    x = torch.randn(4, 3, 8, 8) if is_conv else torch.randn(4, 12)
    model = nn.Sequential(layer, lb.BinaryActivation()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = lb.materialize(model)
    assert not lb.lowbit_layers(plain)
    assert isinstance(plain[0], nn.Conv2d if is_conv else nn.Linear)
    assert isinstance(plain[1], lb.SignActivation)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the model trains: every parameter receives a gradient
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
