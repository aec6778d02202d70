"""The paper's losses, as the official train_images.py computes them.

- L_VAE: summed binary cross-entropy of the reconstruction + KL divergence, per sample (`vae_loss`);
- L_WGAN: the conditional critic's Wasserstein estimate with a gradient penalty of weight λ, which
  adapts during training (`critic_loss_and_gradients`, `adapt_lambda`);
- L_R: the semantic decoder's reconstruction of the class embedding, weighted L1 (or, in the
  action code's `bce_att` mode, BCE) (`decoder_loss`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tfvaegan.method.models import LEAK, Critic


def weighted_l1(pred: Tensor, target: Tensor) -> Tensor:
    """Official WeightedL1: |error| weighted by its squared error normalised per sample."""
    error = pred - target
    weight = error.pow(2)
    weight = weight / weight.sum(1, keepdim=True).sqrt()
    return (weight * error.abs()).sum() / pred.size(0)


def decoder_loss(pred: Tensor, target: Tensor, bce: bool) -> Tensor:
    """The semantic decoder's reconstruction loss: weighted L1, or (action code, bce_att) summed BCE."""
    if bce:
        return F.binary_cross_entropy(pred + 1e-12, target, reduction="sum") / pred.size(0)
    return weighted_l1(pred, target)


def vae_loss(recon: Tensor, x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """Official loss_fn: summed binary cross-entropy + KL divergence, both per sample."""
    bce = F.binary_cross_entropy(recon.float() + 1e-12, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp())
    return (bce + kld.float()) / x.size(0)


def gradient_penalty(grad: Tensor) -> Tensor:
    """WGAN-GP: mean of (‖∇ₓD‖₂ − 1)²; the caller scales it by λ and gammaD."""
    return ((grad.float().norm(2, dim=1) - 1) ** 2).mean()


def adapt_lambda(lambda1: Tensor, mean_penalty: Tensor) -> Tensor:
    """Official adaptive rule for the gradient-penalty weight."""
    up = torch.full_like(lambda1, 1.1)
    down = torch.full_like(lambda1, 1 / 1.1)
    same = torch.ones_like(lambda1)
    return lambda1 * torch.where(mean_penalty > 1.05, up, torch.where(mean_penalty < 1.001, down, same))


def critic_loss_and_gradients(critic: Critic, x: Tensor, fake: Tensor, att: Tensor, alpha: Tensor,
                              gamma_d: float, penalty_weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The critic's WGAN-GP loss and its exact gradients, written into the critic's `.grad`.

    loss = −γD·(mean D(x, a) − mean D(x̃, a)) + penalty_weight·mean (‖∇ₓD(x̂, a)‖ − 1)²,
    x̂ = α·x + (1 − α)·x̃; penalty_weight is γD·λ. Returns (penalty, loss, γD·wasserstein), detached.

    Why by hand: the critic D = w₂ᵀ·lrelu(W₁[x; a] + b₁) + b₂ is piecewise linear in x, so
    ∇ₓD(x̂) = W₁ₓᵀ(s ⊙ w₂) with s the LeakyReLU slopes at x̂, and since the first layer is affine
    x̂'s pre-activations are α·h(x) + (1 − α)·h(x̃), no forward pass of their own. Autograd's double
    backward reaches the same gradients but also pushes the activation's zero second derivative
    back through the first layer and accumulates three weight-sized gradients: four wasted
    weight-sized GEMMs and two weight-sized additions per critic step. Written out, the loss and all
    its gradients take four GEMMs, the last producing the whole W₁ gradient in place.
    Checked against autograd in the tests.
    """
    batch, res = x.size(0), x.size(1)
    w1, b1, w2, b2 = critic.fc1.weight, critic.fc1.bias, critic.fc2.weight, critic.fc2.bias
    exact = torch.promote_types(w1.dtype, torch.float32)  # sums and norms out of bf16 under autocast
    with torch.no_grad():
        inputs = torch.cat((torch.cat((x, fake)), att.repeat(2, 1)), dim=1)  # real rows, then fake rows
        pre = F.linear(inputs, w1, b1)
        slopes = leaky_slopes(pre, exact)
        activation = pre * slopes
        score = F.linear(activation, w2, b2).to(exact)
        real, fake_score = score[:batch], score[batch:]
        wasserstein = gamma_d * (real.mean() - fake_score.mean())

        hat_slopes = leaky_slopes(alpha * pre[:batch] + (1 - alpha) * pre[batch:], exact)
        slope_weighted = hat_slopes * w2  # s ⊙ w₂ per sample
        w1_x = w1[:, :res]
        input_gradient = slope_weighted @ w1_x  # ∇ₓD(x̂)
        penalty = gradient_penalty(input_gradient)
        norm = input_gradient.to(exact).norm(dim=1)
        loss = -wasserstein + penalty_weight * penalty

        # d loss / d score: −γD/B on real rows, +γD/B on fake rows.
        d_score = torch.full((2 * batch, 1), gamma_d / batch, device=x.device, dtype=exact)
        d_score[:batch] = -gamma_d / batch
        d_pre = d_score * w2 * slopes
        # d loss / d ∇ₓD(x̂); zero where the norm is (as autograd's norm backward).
        scale = torch.where(norm > 0, (norm - 1) / norm, torch.zeros_like(norm)) * (2 / batch) * penalty_weight
        d_input_gradient = scale[:, None] * input_gradient.to(exact)

        # W₁: scores path d_preᵀ·inputs and penalty path (s ⊙ w₂)ᵀ·[d∇ₓD, 0], as one GEMM.
        left = torch.cat((d_pre, slope_weighted))
        right = torch.cat((inputs, F.pad(d_input_gradient, (0, inputs.size(1) - res))))
        _write_grad(w1, left.t(), right)
        _set_grad(b1, d_pre.sum(0))
        _set_grad(w2, d_score.t() @ activation + (hat_slopes * (d_input_gradient @ w1_x.t())).sum(0, keepdim=True))
        _set_grad(b2, d_score.sum(0))
    return penalty, loss, wasserstein


def leaky_slopes(pre: Tensor, dtype: torch.dtype) -> Tensor:
    """LeakyReLU's slope at each pre-activation, 1 or LEAK; filled from Python scalars, because a
    0-d tensor made from one is a host-to-device copy that would stall the step on a GPU."""
    return torch.full_like(pre, LEAK, dtype=dtype).masked_fill_(pre > 0, 1.0)


def _write_grad(param: Tensor, left: Tensor, right: Tensor) -> None:
    """param.grad = left @ right, into the existing buffer when there is one (no page faults)."""
    if param.grad is not None and param.grad.dtype == left.dtype and param.grad.is_contiguous():
        torch.mm(left, right, out=param.grad)
    else:
        param.grad = (left @ right).to(param.dtype)


def _set_grad(param: Tensor, value: Tensor) -> None:
    param.grad = value.to(param.dtype).reshape(param.shape)
