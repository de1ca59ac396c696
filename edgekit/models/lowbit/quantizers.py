"""Weight and activation quantizers with straight-through gradients.

Every function here uses the ``q.detach() + (s - s.detach())`` idiom instead of a custom
``autograd.Function``: the forward value is *exactly* ``q`` (``s - s`` is exactly zero),
the gradient is that of the surrogate ``s``, and the ops trace without symbolic
registrations. Exact values matter: stored codes must reproduce the trained model.
"""

from __future__ import annotations

import torch

# TWN (Li & Liu 2016): threshold 0.7 * E|W| approximates the optimal ternary threshold
# for uniformly/normally distributed weights.
TWN_THRESHOLD_FACTOR = 0.7
# TTQ (Zhu et al. 2017): threshold t * max|W| with t = 0.05 in the paper.
TTQ_THRESHOLD_FACTOR = 0.05


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """Sign with sign(0) = +1, so every value is exactly -1 or +1 (torch.sign gives 0)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def binarize_ste(x: torch.Tensor) -> torch.Tensor:
    """BNN binarization: forward sign(x), backward the hard-tanh gradient 1_{|x|<=1}."""
    return _straight_through(sign_pm1(x), x.clamp(-1.0, 1.0))


def _straight_through(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Forward ``value`` exactly, backward the gradient of ``surrogate``."""
    return value.detach() + (surrogate - surrogate.detach())


def channel_mean_abs(w: torch.Tensor) -> torch.Tensor:
    """Mean |W| per output channel, shaped to broadcast against ``w``."""
    dims = tuple(range(1, w.dim()))
    return w.abs().mean(dim=dims, keepdim=True)


def xnor_weight(w: torch.Tensor) -> torch.Tensor:
    """XNOR-Net weights: alpha_c * sign(W_c) with alpha_c = mean|W_c| per output channel.

    The gradient reaches W through alpha (exact) and through sign (straight-through,
    scaled by alpha), as in the XNOR-Net paper.
    """
    alpha = channel_mean_abs(w)
    return alpha * binarize_ste(w)


def twn_threshold(w: torch.Tensor) -> torch.Tensor:
    return TWN_THRESHOLD_FACTOR * w.abs().mean()


def twn_codes_and_scale(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary codes in {-1, 0, +1} and the TWN scale alpha = mean |W| over survivors."""
    with torch.no_grad():
        delta = twn_threshold(w)
        codes = torch.where(w > delta, 1.0, torch.where(w < -delta, -1.0, 0.0)).to(w.dtype)
        survivors = codes != 0
        n = survivors.sum()
        alpha = (w.abs() * survivors).sum() / n.clamp(min=1)
    return codes, alpha


def twn_weight(w: torch.Tensor) -> torch.Tensor:
    """TWN: alpha * ternary(W), straight-through gradient to W."""
    codes, alpha = twn_codes_and_scale(w)
    return _straight_through(alpha * codes, w)


def ttq_codes(w: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        delta = TTQ_THRESHOLD_FACTOR * w.abs().max()
        return torch.where(w > delta, 1.0, torch.where(w < -delta, -1.0, 0.0)).to(w.dtype)


def ttq_weight(w: torch.Tensor, w_pos: torch.Tensor, w_neg: torch.Tensor) -> torch.Tensor:
    """TTQ: W_p for positive codes, -W_n for negative ones, 0 otherwise.

    Gradients follow the paper: dW_p = sum of grads at positive codes, dW_n likewise
    (sign flipped), and the latent W receives the grad scaled by W_p / 1 / W_n.
    """
    codes = ttq_codes(w)
    pos = (codes > 0).to(w.dtype)
    neg = (codes < 0).to(w.dtype)
    quantized = w_pos * pos - w_neg * neg
    latent_scale = (w_pos * pos + w_neg * neg + (1.0 - pos - neg)).detach()
    return quantized + latent_scale * (w - w.detach())
