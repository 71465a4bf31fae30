"""genhub.objectives.divergences: the f-GAN table is self-consistent, the closed forms are right,
and trained critics reach the accuracy bars (fewer steps than the lab, same bounds)."""

import math

import numpy as np
import ot
import pytest
import torch

from genhub.objectives import divergences as dv

REQUIRED = ["kl", "reverse_kl", "jensen_shannon", "squared_hellinger", "pearson", "total_variation"]
P, Q = (0.0, 1.0), (1.0, 1.2)  # the lab's Gaussian case: N(0, 1) data, N(1, 1.2^2) model


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny critics run ~50x faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def normal(mean, std):
    return lambda n: mean + std * torch.randn(n, 1)


def segment(theta):
    theta = torch.as_tensor(theta, dtype=torch.float32)
    return lambda n: torch.stack([theta.expand(n), torch.rand(n)], 1)


# -- the f-GAN table --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(dv.F_DIVERGENCES))
def test_conjugate_of_activation_is_the_composition(name):
    divergence = dv.f_divergence(name)
    v = torch.linspace(-4, 4, 81, dtype=torch.float64)
    assert torch.allclose(divergence.conjugate_of_activation(v), divergence.conjugate(divergence.activation(v)), atol=1e-9)


@pytest.mark.parametrize("name", sorted(dv.F_DIVERGENCES))
def test_fenchel_young_equality_at_the_optimal_critic(name):
    """f*(f'(u)) = u f'(u) - f(u): the conjugate belongs to the generator f; f(1) = 0
    (the GAN's f is shifted: f(1) = -log 4, so its divergence is 2 JSD - log 4)."""
    divergence = dv.f_divergence(name)
    u = torch.linspace(0.2, 5, 49, dtype=torch.float64)
    t = divergence.optimal_critic(u)
    assert torch.allclose(divergence.conjugate(t), u * t - divergence.generator(u), atol=1e-9)
    at_one = -math.log(4) if name == "gan" else 0.0
    assert float(divergence.generator(torch.ones(1, dtype=torch.float64))) == pytest.approx(at_one, abs=1e-12)


@pytest.mark.parametrize("name", sorted(dv.F_DIVERGENCES))
def test_bound_at_the_optimal_critic_is_the_divergence(name):
    """∫ p T* - q f*(T*) with T* = f'(p/q) equals ∫ q f(p/q): the bound is tight (quadrature)."""
    divergence = dv.f_divergence(name)
    x = torch.linspace(-12, 13, 200_001, dtype=torch.float64)
    p = torch.exp(-0.5 * ((x - P[0]) / P[1]) ** 2) / (P[1] * math.sqrt(2 * math.pi))
    q = torch.exp(-0.5 * ((x - Q[0]) / Q[1]) ** 2) / (Q[1] * math.sqrt(2 * math.pi))
    t = divergence.optimal_critic(p / q)
    bound = float(torch.trapezoid(p * t - q * divergence.conjugate(t), x))
    assert bound == pytest.approx(dv.exact_f_divergence_normal(name, *P, *Q), rel=1e-5)


def test_bound_on_a_toy_batch_matches_hand_computation():
    hellinger = dv.f_divergence("squared_hellinger")
    # T = 1 - e^-v on P: [0, 1/2]; f*(T) = e^v - 1 on Q: [0, -1/2]  ->  1/4 - (-1/4)
    bound = hellinger.bound(torch.tensor([0.0, math.log(2)]), torch.tensor([0.0, -math.log(2)]))
    assert float(bound) == pytest.approx(0.5, abs=1e-6)
    kl = dv.f_divergence("kl")  # T = v; f*(T) = e^(v - 1)
    assert float(kl.bound(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]))) == pytest.approx(1.5 - (math.exp(-1) + 1) / 2, abs=1e-6)
    tv = dv.f_divergence("total_variation")  # T = tanh(v)/2, f*(T) = T: separated critics reach 1
    assert float(tv.bound(torch.full((4,), 30.0), torch.full((4,), -30.0))) == pytest.approx(1.0, abs=1e-6)


def test_unknown_divergence_names_the_known_ones():
    with pytest.raises(ValueError, match="squared_hellinger"):
        dv.f_divergence("hellinger2")


# -- exact values -------------------------------------------------------------------------------
def test_quadrature_matches_closed_forms():
    assert dv.exact_f_divergence_normal("kl", *P, *Q) == pytest.approx(dv.kl_normal(*P, *Q), rel=1e-7)
    assert dv.exact_f_divergence_normal("reverse_kl", *P, *Q) == pytest.approx(dv.kl_normal(*Q, *P), rel=1e-7)
    assert dv.exact_f_divergence_normal("squared_hellinger", *P, *Q) == pytest.approx(dv.squared_hellinger_normal(*P, *Q), rel=1e-7)
    assert dv.exact_f_divergence_normal("pearson", 0, 1, 1, 1) == pytest.approx(math.e - 1, rel=1e-7)  # exp(d^2) - 1
    assert dv.exact_f_divergence_normal("total_variation", 0, 1, 1, 1) == pytest.approx(math.erf(0.5 / math.sqrt(2)), rel=1e-7)
    assert dv.exact_f_divergence_normal("jensen_shannon", 0, 1, 0, 1) == pytest.approx(0, abs=1e-9)


# -- MMD and energy distance --------------------------------------------------------------------
def test_mmd_and_energy_on_toy_batches_match_hand_computation():
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
    k = lambda d: math.exp(-(d**2) / 2)  # one bandwidth, s = 1
    hand = k(1) + k(1) - 2 * (k(2) + k(3) + k(1) + k(2)) / 4
    assert float(dv.mmd2_unbiased(x, y, bandwidths=(1.0,))) == pytest.approx(hand, abs=1e-6)
    # 2 E|X - Y| - E|X - X'| - E|Y - Y'| = 2 * 2 - 1 - 1
    assert float(dv.energy_distance(x, y)) == pytest.approx(2.0, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        dv.mmd2_unbiased(x[:1], y)


def test_mmd_and_energy_are_unbiased_against_closed_forms():
    torch.manual_seed(1)
    mean_q, cov_q = torch.tensor([1.0, -0.5]), torch.tensor([[1.5, 0.3], [0.3, 0.8]])
    chol = torch.linalg.cholesky(cov_q)
    mmd = [float(dv.mmd2_unbiased(torch.randn(500, 2), mean_q + torch.randn(500, 2) @ chol.T)) for _ in range(20)]
    exact = dv.mmd2_normal([0.0, 0.0], torch.eye(2), mean_q, cov_q)
    assert abs(np.mean(mmd) - exact) < 4 * np.std(mmd) / math.sqrt(20) + 1e-3
    energy = [float(dv.energy_distance(normal(*P)(500), normal(*Q)(500))) for _ in range(20)]
    exact = dv.energy_distance_normal(*P, *Q)
    assert abs(np.mean(energy) - exact) < 4 * np.std(energy) / math.sqrt(20) + 1e-3
    same = [float(dv.mmd2_unbiased(torch.randn(300, 2), torch.randn(300, 2))) for _ in range(10)]
    assert abs(np.mean(same)) < 0.01  # no positive bias at P = Q


# -- Wasserstein critics --------------------------------------------------------------------------
def test_gradient_penalty_and_clipping_of_a_linear_critic():
    critic = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.6, 0.8]]))  # |grad| = 1 everywhere
    p, q = torch.randn(64, 2), torch.randn(64, 2)
    assert float(dv.gradient_penalty(critic, p, q)) == pytest.approx(0, abs=1e-10)
    with torch.no_grad():
        critic.weight.mul_(3)  # |grad| = 3 -> (3 - 1)^2
    assert float(dv.gradient_penalty(critic, p, q)) == pytest.approx(4, rel=1e-5)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.2, 0.9]]))  # |grad| < 1: one-sided ignores it
    assert float(dv.gradient_penalty(critic, p, q, one_sided=True)) == pytest.approx(0, abs=1e-10)
    dv.clip_weights(critic, 0.5)
    assert critic.weight.tolist() == [[pytest.approx(0.2), 0.5]]


@pytest.mark.parametrize("theta", [-1.0, 0.0, 0.3])
def test_w1_on_parallel_segments_within_0_05(theta):
    torch.manual_seed(0)
    estimate = dv.estimate_w1(segment(0.0), segment(theta), steps=500, eval_size=20_000)
    assert abs(estimate.value - abs(theta)) <= 0.05
    if theta != 0:  # the critic gives the generator a slope of about 1 toward the data
        moving = torch.tensor(theta, requires_grad=True)
        (grad,) = torch.autograd.grad(-estimate.critic(segment(moving)(4096)).mean(), moving)
        assert 0.8 < float(grad) * math.copysign(1, theta) < 1.2


@pytest.mark.parametrize("theta", [-1.0, 0.2])
def test_squared_hellinger_on_parallel_segments_saturates_with_no_slope(theta):
    torch.manual_seed(0)
    estimate = dv.estimate_f_divergence("squared_hellinger", segment(0.0), segment(theta), steps=400, eval_size=20_000)
    assert estimate.value == pytest.approx(2.0, rel=0.10)  # disjoint supports: H^2 = 2(1 - 0)
    moving = torch.tensor(theta, requires_grad=True)
    term = -dv.f_divergence("squared_hellinger").conjugate_of_activation(estimate.critic(segment(moving)(4096))).mean()
    (grad,) = torch.autograd.grad(term, moving)
    assert abs(float(grad)) < 1e-3


def test_w1_on_point_clouds_matches_exact_optimal_transport():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 2, generator=generator), torch.randn(500, 2, generator=generator) + torch.tensor([1.5, 0.5])
    exact = ot.emd2(ot.unif(500), ot.unif(500), ot.dist(x.double().numpy(), y.double().numpy(), metric="euclidean"))
    torch.manual_seed(0)
    pick = lambda points: lambda n: points[torch.randint(0, len(points), (n,))]
    critic = dv.estimate_w1(pick(x), pick(y), steps=800, eval_size=2).critic
    with torch.no_grad():
        bound = dv.wasserstein_bound(critic(x), critic(y))
    index = torch.randint(0, 500, (2, 10_000))
    estimate = float(bound / dv.mean_gradient_norm(critic, x[index[0]], y[index[1]]))
    assert estimate == pytest.approx(float(exact), rel=0.05)


# -- trained f-divergence critics on two Gaussians --------------------------------------------------
@pytest.mark.parametrize("name", REQUIRED)
def test_f_divergence_estimate_within_10_percent_on_gaussians(name):
    torch.manual_seed(0)
    estimate = dv.estimate_f_divergence(name, normal(*P), normal(*Q), steps=800, eval_size=50_000)
    assert estimate.value == pytest.approx(dv.exact_f_divergence_normal(name, *P, *Q), rel=0.10)
