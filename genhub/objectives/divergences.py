"""Distances between distributions, estimated from samples: the math GAN objectives share.

Three families, each in the form a GAN trains:

* **f-divergences** through their variational lower bound (Nguyen et al. 2010; f-GAN,
  Nowozin et al. 2016):  D_f(P || Q) = ∫ q f(p/q)  >=  sup_T  E_P[T(x)] - E_Q[f*(T(x))].
  A critic outputs an unbounded value v; the f-GAN *output activation* g_f maps it into the
  domain of the convex conjugate f*, T = g_f(v) (Nowozin et al. 2016, table 2). Here P is the
  data and Q the model, as in the paper.
* **Wasserstein-1** through its Kantorovich-Rubinstein dual,  W1 = sup_{|f|_L <= 1} E_P f - E_Q f,
  with the Lipschitz bound kept by a gradient penalty (Gulrajani et al. 2017) or, as an option,
  by clipping the critic's weights (Arjovsky et al. 2017; the estimate is then K * W1 for an
  unknown K).
* **Kernel and energy distances**, closed form from samples, no critic: the unbiased MMD^2
  with a sum of Gaussian kernels (Gretton et al. 2012) and the energy (Cramér) distance
  (Székely & Rizzo 2013).

Conventions (stated once, used everywhere):
  squared Hellinger  f(u) = (sqrt(u) - 1)^2  ->  H^2 = ∫ (sqrt p - sqrt q)^2 = 2 (1 - BC) in [0, 2]
  Jensen-Shannon     f(u) = u log u - (u + 1) log((u + 1) / 2)  ->  D_f = 2 JSD in [0, 2 log 2]
  total variation    f(u) = |u - 1| / 2  ->  TV = ∫ |p - q| / 2 in [0, 1]
(BC = ∫ sqrt(p q), the Bhattacharyya coefficient; JSD = KL(P||M)/2 + KL(Q||M)/2, M = (P + Q)/2.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genhub.models.nets import mlp
from genhub.objectives.penalties import clip_weights, gradient_penalty, interpolation_points

Sampler = Callable[[int], torch.Tensor]
LOG2 = math.log(2.0)


# ---------------------------------------------------------------------------------------
# f-divergences
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FDivergence:
    """One f-divergence in the f-GAN form.

    generator: f(u), convex with f(1) = 0 (used for exact values by quadrature).
    activation: g_f(v), the critic's output activation, into the domain of f*.
    conjugate: f*(t), the convex conjugate.
    conjugate_of_activation: f*(g_f(v)) simplified so it stays finite where the
        composition of the two would overflow or lose precision.
    """

    name: str
    definition: str
    generator: Callable[[torch.Tensor], torch.Tensor]
    activation: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]
    conjugate_of_activation: Callable[[torch.Tensor], torch.Tensor]

    def bound(self, critic_p: torch.Tensor, critic_q: torch.Tensor) -> torch.Tensor:
        """E_P[g_f(v)] - E_Q[f*(g_f(v))]: a lower bound on D_f(P || Q), tight at the best critic.

        critic_p, critic_q: raw critic outputs v on samples of P (data) and Q (model).
        """
        return self.activation(critic_p).mean() - self.conjugate_of_activation(critic_q).mean()

    def optimal_critic(self, ratio: torch.Tensor) -> torch.Tensor:
        """T* = f'(p/q), where the bound is tight (by autograd on the generator)."""
        ratio = ratio.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.generator(ratio).sum(), ratio)
        return grad


def _xlogx(u: torch.Tensor) -> torch.Tensor:
    return torch.where(u > 0, u * torch.log(u.clamp_min(1e-300)), torch.zeros_like(u))


F_DIVERGENCES: dict[str, FDivergence] = {
    divergence.name: divergence
    for divergence in (
        FDivergence(
            "kl",
            "KL(P || Q) = ∫ p log(p/q)",
            generator=_xlogx,
            activation=lambda v: v,
            conjugate=lambda t: torch.exp(t - 1),
            conjugate_of_activation=lambda v: torch.exp(v - 1),
        ),
        FDivergence(
            "reverse_kl",
            "KL(Q || P) = ∫ q log(q/p)",
            generator=lambda u: -torch.log(u),
            activation=lambda v: -torch.exp(-v),
            conjugate=lambda t: -1 - torch.log(-t),
            conjugate_of_activation=lambda v: v - 1,
        ),
        FDivergence(
            "pearson",
            "Pearson chi^2(P || Q) = ∫ (p - q)^2 / q",
            generator=lambda u: (u - 1) ** 2,
            activation=lambda v: v,
            conjugate=lambda t: t**2 / 4 + t,
            conjugate_of_activation=lambda v: v**2 / 4 + v,
        ),
        FDivergence(
            "squared_hellinger",
            "H^2(P, Q) = ∫ (sqrt p - sqrt q)^2 = 2 (1 - BC)",
            generator=lambda u: (torch.sqrt(u) - 1) ** 2,
            activation=lambda v: 1 - torch.exp(-v),
            conjugate=lambda t: t / (1 - t),
            conjugate_of_activation=lambda v: torch.expm1(v),
        ),
        FDivergence(
            "jensen_shannon",
            "2 JSD(P, Q) = KL(P || M) + KL(Q || M), M = (P + Q)/2",
            generator=lambda u: _xlogx(u) - (u + 1) * torch.log((u + 1) / 2),
            activation=lambda v: LOG2 - F.softplus(-v),
            conjugate=lambda t: -torch.log(2 - torch.exp(t)),
            conjugate_of_activation=lambda v: F.softplus(v) - LOG2,
        ),
        FDivergence(
            "total_variation",
            "TV(P, Q) = ∫ |p - q| / 2",
            generator=lambda u: (u - 1).abs() / 2,
            activation=lambda v: torch.tanh(v) / 2,
            conjugate=lambda t: t,
            conjugate_of_activation=lambda v: torch.tanh(v) / 2,
        ),
        FDivergence(
            "gan",
            "2 JSD(P, Q) - log 4 (the original GAN's divergence)",
            generator=lambda u: _xlogx(u) - _xlogx(u + 1),
            activation=lambda v: -F.softplus(-v),
            conjugate=lambda t: -torch.log(1 - torch.exp(t)),
            conjugate_of_activation=lambda v: F.softplus(v),
        ),
    )
}


def f_divergence(name: str) -> FDivergence:
    """The f-divergence called `name`; a clear error lists the known names."""
    try:
        return F_DIVERGENCES[name]
    except KeyError:
        raise ValueError(f"unknown f-divergence {name!r}; known: {sorted(F_DIVERGENCES)}") from None


# ---------------------------------------------------------------------------------------
# Wasserstein-1 critics
# ---------------------------------------------------------------------------------------
def wasserstein_bound(critic_p: torch.Tensor, critic_q: torch.Tensor) -> torch.Tensor:
    """E_P f - E_Q f: equals W1(P, Q) at the best 1-Lipschitz critic f."""
    return critic_p.mean() - critic_q.mean()


# ---------------------------------------------------------------------------------------
# Closed forms from samples: MMD and energy distance
# ---------------------------------------------------------------------------------------
DEFAULT_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, bandwidths=DEFAULT_BANDWIDTHS) -> torch.Tensor:
    """sum_s exp(-|x - y|^2 / (2 s^2)) for every pair: an (n, m) matrix."""
    distances = torch.cdist(x.flatten(1), y.flatten(1)).pow(2)
    return sum(torch.exp(-distances / (2 * s**2)) for s in bandwidths)


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidths=DEFAULT_BANDWIDTHS) -> torch.Tensor:
    """Unbiased estimate of MMD^2(P, Q) from x ~ P (n) and y ~ Q (m), Gaussian kernels of
    several bandwidths summed (Gretton et al. 2012, eq. 3; Li et al. 2015). Can be < 0."""
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("the unbiased MMD needs at least 2 samples from each distribution")
    k_xx, k_yy, k_xy = gaussian_kernel(x, x, bandwidths), gaussian_kernel(y, y, bandwidths), gaussian_kernel(x, y, bandwidths)
    same_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    same_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return same_x + same_y - 2 * k_xy.mean()


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased estimate of the energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'|
    (Székely & Rizzo 2013); in 1-D it equals 2 ∫ (F_P - F_Q)^2, the Cramér distance (x2)."""
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError("the energy distance needs at least 2 samples from each distribution")
    x, y = x.flatten(1), y.flatten(1)
    within_x = _pairwise_norm(x, x).sum() / (n * (n - 1))
    within_y = _pairwise_norm(y, y).sum() / (m * (m - 1))
    return 2 * _pairwise_norm(x, y).mean() - within_x - within_y


def _pairwise_norm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # cdist's gradient is NaN at zero distance (the diagonal); a tiny floor keeps it finite
    squared = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
    return torch.sqrt(squared + 1e-12)


# ---------------------------------------------------------------------------------------
# Estimating by training a critic
# ---------------------------------------------------------------------------------------
@dataclass
class Estimate:
    """A divergence estimated by a trained critic on fresh samples it never trained on."""

    value: float
    critic: nn.Module


def make_critic(in_features: int, width: int = 64, depth: int = 2) -> nn.Module:
    """A small MLP critic (SiLU, so its gradient is smooth for the gradient penalty)."""
    return mlp([in_features] + [width] * depth + [1])


def train_critic(
    critic: nn.Module,
    loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    sample_p: Sampler,
    sample_q: Sampler,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 2e-3,
    clip: float | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    """Minimise `loss(critic, p_batch, q_batch)` with Adam (RMSprop when clipping weights,
    as the original WGAN did: momentum and clipping do not mix well). `on_step(step, critic)`
    runs after every step (to watch the critic as it trains)."""
    if clip is None:
        optimizer = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    else:
        optimizer = torch.optim.RMSprop(critic.parameters(), lr=lr)
    critic.train()
    for step in range(1, steps + 1):
        value = loss(critic, sample_p(batch_size), sample_q(batch_size))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if clip is not None:
            clip_weights(critic, clip)
        if on_step is not None:
            on_step(step, critic)
    return critic


def estimate_f_divergence(
    name: str,
    sample_p: Sampler,
    sample_q: Sampler,
    *,
    steps: int = 1500,
    batch_size: int = 256,
    eval_size: int = 50_000,
    lr: float = 2e-3,
    width: int = 64,
    critic: nn.Module | None = None,
) -> Estimate:
    """Train a critic to maximise the f-GAN bound, then evaluate the bound on fresh samples."""
    divergence = f_divergence(name)
    probe = sample_p(2)
    critic = critic or make_critic(probe[0].numel(), width).to(probe.device)
    train_critic(
        critic,
        lambda c, p, q: -divergence.bound(c(p), c(q)),
        sample_p,
        sample_q,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
    )
    with torch.no_grad():
        value = divergence.bound(critic(sample_p(eval_size)), critic(sample_q(eval_size)))
    return Estimate(float(value), critic)


def estimate_w1(
    sample_p: Sampler,
    sample_q: Sampler,
    *,
    steps: int = 1500,
    batch_size: int = 256,
    eval_size: int = 50_000,
    lr: float = 1e-3,
    penalty: float = 10.0,
    one_sided: bool = False,
    clip: float | None = None,
    normalize: bool = True,
    width: int = 64,
    critic: nn.Module | None = None,
) -> Estimate:
    """W1(P, Q) from a critic trained on the dual: gradient penalty by default; with
    `clip` set, weight clipping instead (then the value is K * W1 for an unknown K).

    A penalised critic buys extra slope s at a cost penalty * (s - 1)^2, so it settles at a
    slope of about 1 + W1 / (2 * penalty) and overshoots W1 by that factor (5% at W1 = 1 with
    the usual penalty 10). With `normalize` the bound is divided by the critic's mean
    gradient norm between P and Q, which removes that first-order overshoot; a larger
    penalty would too, but it makes the critic much slower to train.
    """
    probe = sample_p(2)
    critic = critic or make_critic(probe[0].numel(), width).to(probe.device)

    def loss(c: nn.Module, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        value = -wasserstein_bound(c(p), c(q))
        if clip is None:
            value = value + penalty * gradient_penalty(c, p, q, one_sided=one_sided)
        return value

    train_critic(critic, loss, sample_p, sample_q, steps=steps, batch_size=batch_size, lr=lr, clip=clip)
    p, q = sample_p(eval_size), sample_q(eval_size)
    with torch.no_grad():
        value = wasserstein_bound(critic(p), critic(q))
    if normalize and clip is None:
        value = value / mean_gradient_norm(critic, p, q)
    return Estimate(float(value), critic)


def mean_gradient_norm(critic: nn.Module, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean |grad f| at random points between paired samples of P and Q."""
    between = interpolation_points(p, q)
    (grad,) = torch.autograd.grad(critic(between).sum(), between)
    return grad.flatten(1).norm(dim=1).mean().detach()


# ---------------------------------------------------------------------------------------
# Exact values for Gaussians (to check the estimators against)
# ---------------------------------------------------------------------------------------
def _normal_log_density(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def exact_f_divergence_normal(name: str, mean_p: float, std_p: float, mean_q: float, std_q: float, points: int = 400_001) -> float:
    """D_f(N(mean_p, std_p^2) || N(mean_q, std_q^2)) = ∫ q f(p/q) by quadrature (float64,
    trapezoid on ±20 standard deviations); matches the closed forms where they exist."""
    divergence = f_divergence(name)
    low = min(mean_p - 20 * std_p, mean_q - 20 * std_q)
    high = max(mean_p + 20 * std_p, mean_q + 20 * std_q)
    x = torch.linspace(low, high, points, dtype=torch.float64)
    log_p, log_q = _normal_log_density(x, mean_p, std_p), _normal_log_density(x, mean_q, std_q)
    # in far tails where both densities underflow the integrand is 0; keep it out of 0 * inf
    q = log_q.exp()
    integrand = torch.where(q > 0, q * divergence.generator((log_p - log_q).exp()), torch.zeros_like(q))
    if name == "reverse_kl":  # q f(p/q) = q log(q/p): written in logs so the tails stay finite
        integrand = q * (log_q - log_p)
    return float(torch.trapezoid(integrand, x))


def kl_normal(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    """KL(N(mean_p, std_p^2) || N(mean_q, std_q^2)) in closed form."""
    return math.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2 * std_q**2) - 0.5


def squared_hellinger_normal(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    """H^2 = 2 (1 - BC) between two normals, closed form."""
    variance = std_p**2 + std_q**2
    bc = math.sqrt(2 * std_p * std_q / variance) * math.exp(-((mean_p - mean_q) ** 2) / (4 * variance))
    return 2 * (1 - bc)


def mmd2_normal(mean_p, cov_p, mean_q, cov_q, bandwidths=DEFAULT_BANDWIDTHS) -> float:
    """Population MMD^2 between N(mean_p, cov_p) and N(mean_q, cov_q) for the kernel of
    `gaussian_kernel`: E k(X, Y) = det(I + S/s^2)^(-1/2) exp(-d^T (s^2 I + S)^-1 d / 2),
    with d and S the mean and covariance of X - Y."""
    mean_p, mean_q = torch.as_tensor(mean_p, dtype=torch.float64), torch.as_tensor(mean_q, dtype=torch.float64)
    cov_p, cov_q = torch.as_tensor(cov_p, dtype=torch.float64), torch.as_tensor(cov_q, dtype=torch.float64)
    eye = torch.eye(mean_p.numel(), dtype=torch.float64)

    def expected_kernel(difference, covariance):
        total = 0.0
        for s in bandwidths:
            scale = torch.linalg.det(eye + covariance / s**2) ** -0.5
            total += float(scale * torch.exp(-0.5 * difference @ torch.linalg.solve(s**2 * eye + covariance, difference)))
        return total

    zero = torch.zeros_like(mean_p)
    return expected_kernel(zero, 2 * cov_p) + expected_kernel(zero, 2 * cov_q) - 2 * expected_kernel(mean_p - mean_q, cov_p + cov_q)


def energy_distance_normal(mean_p: float, std_p: float, mean_q: float, std_q: float) -> float:
    """Energy distance between two 1-D normals: E|N(d, s^2)| = s sqrt(2/pi) exp(-d^2/2s^2) + d erf(d / (s sqrt 2))."""

    def mean_abs(d, s):
        return s * math.sqrt(2 / math.pi) * math.exp(-(d**2) / (2 * s**2)) + d * math.erf(d / (s * math.sqrt(2)))

    between = mean_abs(mean_p - mean_q, math.hypot(std_p, std_q))
    return 2 * between - mean_abs(0.0, math.sqrt(2) * std_p) - mean_abs(0.0, math.sqrt(2) * std_q)
