"""The critics' regularisers, written once for the GAN objectives and the divergence lab alike:
the Lipschitz constraints of the Wasserstein critics (gradient penalty, weight clipping) and
the R1 penalty on real images."""

from __future__ import annotations

import torch
from torch import nn


def interpolation_points(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """x_hat = a x + (1 - a) x~ with a ~ U(0, 1) per pair, detached and requiring grad: the
    points where the gradient penalty (and the divergence lab's gradient norm) look at f."""
    alpha = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    return (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, one_sided: bool = False) -> torch.Tensor:
    """E[(||grad_x f(x_hat)||_2 - 1)^2] at random points x_hat between paired real and fake
    samples (WGAN-GP, Gulrajani et al. 2017); `one_sided` penalises only norms above 1
    (Petzka et al. 2018). The graph is kept (create_graph) so the penalty trains the critic;
    the norms are taken in float32, also under bf16 autocast."""
    between = interpolation_points(real, fake)
    scores = critic(between)
    (gradients,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    excess = gradients.float().flatten(1).norm(2, dim=1) - 1
    if one_sided:
        excess = excess.clamp_min(0)
    return excess.pow(2).mean()


def r1_penalty(real: torch.Tensor, real_scores: torch.Tensor) -> torch.Tensor:
    """E_x ||grad_x D(x)||^2 over real images only (R1, Mescheder, Geiger & Nowozin 2018): it
    pushes the critic's gradient to zero on the data, which makes the non-saturating GAN converge
    locally where unregularised training circles. The objective adds (gamma / 2) times this.
    `real` must require grad and `real_scores` be D(real), so the critic's forward pass on the
    real batch serves the loss and the penalty alike. Norms in float32, also under bf16 autocast."""
    (gradients,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
    return gradients.float().flatten(1).pow(2).sum(1).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, limit: float | tuple[float, float]) -> None:
    """Clamp every parameter to [-limit, limit] (the original WGAN's crude Lipschitz bound), or to
    [low, high] for a (low, high) pair (RWGAN's asymmetric clipping)."""
    low, high = (-limit, limit) if isinstance(limit, (int, float)) else limit
    if not low < high:
        raise ValueError(f"weight clipping needs low < high, got [{low}, {high}]")
    for parameter in module.parameters():
        parameter.clamp_(low, high)
