"""The rest of the GAN objective table (f-GAN, McGAN, GMMN, MMD-GAN, Cramér, Fisher, RWGAN,
EBGAN, BEGAN, MAGAN): each loss against a hand computation, and each objective running a few
trainer steps without NaN."""

import math

import pytest
import torch
from torch import nn

from genhub.models.gan import Critic, GenGAN
from genhub.objectives import OBJECTIVES, RWGAN_CLIP, clip_weights, get_objective, mean_covariance_distance, scaled_bandwidths
from genhub.objectives import divergences as dv
from genhub.training.gan import GANTrainer, TrainSettings

TABLE = [name for name in OBJECTIVES if name not in ("dcgan", "wgan", "wgan-gp", "lsgan", "hinge")]
AUTOENCODER = {name for name, objective in OBJECTIVES.items() if objective.critic_kind == "autoencoder"}


class Zero(nn.Module):
    """A critic that outputs zeros of the input's shape: reconstruction energy = |x|^p."""

    def forward(self, x):
        return torch.zeros_like(x)


class Identity(nn.Module):
    def forward(self, x):
        return x


def test_table_is_complete():
    expected = {"mcgan", "gmmn", "mmdgan", "cramer", "fisher", "rwgan", "ebgan", "began", "magan"}
    expected |= {
        "fgan-" + name.replace("_", "-")
        for name in ("kl", "reverse_kl", "pearson", "squared_hellinger", "jensen_shannon", "total_variation")
    }
    assert expected <= set(TABLE)


def test_fgan_losses_match_hand_computation():
    hellinger = get_objective("fgan-squared-hellinger")
    # critic: -(mean(1 - e^-v) on real [0, ln 2] - mean(e^v - 1) on fake [0, -ln 2]) = -(1/4 + 1/4)
    real, fake = torch.tensor([0.0, math.log(2)]), torch.tensor([0.0, -math.log(2)])
    assert hellinger.critic_loss(real, fake).item() == pytest.approx(-0.5, abs=1e-6)
    assert hellinger.generator_loss(torch.tensor([0.0, math.log(2)])).item() == pytest.approx(-0.25, abs=1e-6)
    kl = get_objective("fgan-kl")  # T = v, f*(T) = e^(T - 1)
    assert kl.critic_loss(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])).item() == pytest.approx(
        -(1.5 - (math.exp(-1) + 1) / 2), abs=1e-6
    )
    # the original GAN as an f-GAN: -bound = softplus(-v_real) + softplus(v_fake), the dcgan BCE exactly
    gan, dcgan = get_objective("fgan-gan"), get_objective("dcgan")
    real, fake = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    assert gan.critic_loss(real, fake).item() == pytest.approx(dcgan.critic_loss(real, fake).item(), rel=1e-6)


def test_mcgan_distance_matches_hand_computation():
    # equal means; covariances 1 (real: 0 and 2) and 0 (fake: 1 and 1) -> |1 - 0|_* = 1
    assert mean_covariance_distance(torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [1.0]])).item() == pytest.approx(1.0)
    # means (0,0) vs (3,4) and equal covariances -> 5
    real = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert mean_covariance_distance(real, real + torch.tensor([3.0, 4.0])).item() == pytest.approx(5.0, rel=1e-6)


def test_gmmn_and_mmdgan_use_the_unbiased_mmd():
    torch.manual_seed(0)
    real, fake = torch.randn(64, 2), torch.randn(64, 2) + 1
    gmmn = get_objective("gmmn")
    loss, _ = gmmn.generator_step_loss(Identity(), fake, real)
    assert loss.item() == pytest.approx(dv.mmd2_unbiased(real, fake, scaled_bandwidths(real, fake)).item(), rel=1e-6)
    critic_loss, _ = gmmn.critic_step_loss(nn.Linear(2, 1), real, fake)
    assert critic_loss.item() == 0.0
    mmdgan = get_objective("mmdgan")
    critic_loss, logs = mmdgan.critic_step_loss(Identity(), real, fake)
    assert critic_loss.item() == pytest.approx(-loss.item(), rel=1e-6)  # identity features: same MMD, maximised
    median = torch.cdist(real, fake).median().item()
    assert scaled_bandwidths(real, fake) == pytest.approx((median / 2, median, 2 * median))


def test_cramer_generator_loss_matches_hand_computation():
    # identity features; real halves [0], fake halves x' = [1], x'' = [3]: |0-1| + |0-3| - |1-3| = 2
    cramer = get_objective("cramer")
    loss, _ = cramer.generator_step_loss(Identity(), torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [0.0]]))
    assert loss.item() == pytest.approx(2.0)
    # critic surrogate f(x) = |x - x''| - |x|: f(0) - f(1) = (3 - 0) - (2 - 1) = 2, and |f'| = 0 or 2 between 0 and 1
    critic = nn.Linear(1, 1)
    with torch.no_grad():
        critic.weight.fill_(1.0)
        critic.bias.zero_()
    loss, logs = cramer.critic_step_loss(critic, torch.tensor([[0.0], [0.0]]), torch.tensor([[1.0], [3.0]]))
    assert logs["critic_loss"].item() == pytest.approx(-2.0)


def test_fisher_lagrangian_and_multiplier_update():
    fisher = get_objective("fisher")
    # scores: real [1, 1], fake [0, 0]: IPM 1, Omega = (1 + 0)/2, constraint 1 - Omega = 1/2
    loss, logs = fisher.critic_step_loss(Identity(), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx(-(1 - fisher.rho / 2 * 0.25))
    assert fisher.lagrange == pytest.approx(-fisher.rho * 0.5)
    lagrange = fisher.lagrange  # the second step uses the updated multiplier
    loss, _ = fisher.critic_step_loss(Identity(), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx(-(1 + lagrange * 0.5 - fisher.rho / 2 * 0.25), rel=1e-6)
    assert fisher.state_dict() == {"lagrange": pytest.approx(-fisher.rho)}


def test_rwgan_losses_and_asymmetric_clipping_match_hand_computation():
    rwgan = get_objective("rwgan")
    real, fake = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    assert rwgan.critic_loss(real, fake).item() == pytest.approx((0.5 + 3.0) / 2 - (1.0 - 2.0) / 2)
    assert rwgan.generator_loss(fake).item() == pytest.approx(-(0.5 + 3.0) / 2)
    assert (rwgan.optimizer.name, rwgan.n_critic, rwgan.clip_value) == ("rmsprop", 5, RWGAN_CLIP)
    low, high = RWGAN_CLIP
    assert low < 0 < high and -low != high  # the box is asymmetric, unlike WGAN's [-c, c]
    critic = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[-1.0, 0.5, 0.015, -0.005]]))
    rwgan.after_critic_step(critic)
    assert critic.weight[0].tolist() == pytest.approx([low, high, 0.015, -0.005])
    with pytest.raises(ValueError, match="low < high"):
        clip_weights(critic, (0.02, -0.01))


def test_ebgan_and_magan_losses_match_hand_computation():
    ebgan = get_objective("ebgan")
    real, fake = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.5]])
    loss, logs = ebgan.critic_step_loss(Zero(), real, fake)  # energies 1 and 0.25; margin 1
    assert loss.item() == pytest.approx(1 + (1 - 0.25))
    assert ebgan.generator_step_loss(Zero(), fake, real)[0].item() == pytest.approx(0.25)
    magan = get_objective("magan")
    magan.critic_step_loss(Zero(), real, fake)
    assert magan.margin == pytest.approx(1.0)  # the first real energy
    magan.decay = 0.0  # averages = the latest batch, to follow the rule by hand
    magan.critic_step_loss(Zero(), torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, 2.0]]))
    assert magan.margin == pytest.approx(0.25)  # real energy 0.25 < margin 1 and fakes (4) above reals
    magan.critic_step_loss(Zero(), torch.tensor([[0.1, 0.1]]), torch.tensor([[0.0, 0.0]]))
    assert magan.margin == pytest.approx(0.25)  # fakes below reals: the margin stays


def test_began_balance_and_convergence_measure():
    began = get_objective("began")
    real, fake = torch.tensor([[2.0, 2.0]]), torch.tensor([[0.5, 0.5]])  # L(x) = 2, L(G(z)) = 0.5
    loss, logs = began.critic_step_loss(Zero(), real, fake)
    assert loss.item() == pytest.approx(2.0)  # k_0 = 0
    assert logs["convergence"].item() == pytest.approx(2 + abs(0.5 * 2 - 0.5))
    assert began.k == pytest.approx(1e-3 * (0.5 * 2 - 0.5))
    loss, _ = began.critic_step_loss(Zero(), real, fake)
    assert loss.item() == pytest.approx(2 - 5e-4 * 0.5)
    assert began.generator_step_loss(Zero(), fake, real)[0].item() == pytest.approx(0.5)
    began.k = 0.9999
    began.critic_step_loss(Zero(), real, fake)
    assert began.k == 1.0  # clipped to [0, 1]
    assert get_objective("began").k == 0.0  # a fresh copy starts clean


class TinyAutoencoder(nn.Module):
    def __init__(self, image_shape):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.config = {"image_shape": list(image_shape)}
        size = math.prod(image_shape)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(size, 16), nn.ELU(), nn.Linear(16, size), nn.Unflatten(1, self.image_shape))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("name", TABLE)
def test_each_objective_trains_a_few_steps_without_nan(name):
    torch.manual_seed(0)
    shape = (1, 28, 28)
    objective = get_objective(name)
    model = GenGAN(shape, latent_dim=8, architecture="mlp", hidden_dims=(32,))
    critic = TinyAutoencoder(shape) if name in AUTOENCODER else Critic(shape, architecture="mlp", hidden_dims=(32,))
    trainer = GANTrainer(model, critic, objective, settings=TrainSettings(batch_size=16, n_critic=1, progress=False))
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(4):
        logs = trainer.step(torch.rand(16, *shape) * 2 - 1)
        assert all(torch.isfinite(value).all() for value in logs.values()), logs
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the generator learned something
