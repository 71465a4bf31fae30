"""Each GAN objective against a hand computation, and the two Lipschitz tricks really acting."""

import math

import pytest
import torch
from torch import nn

from genhub.models.gan import Critic
from genhub.objectives import OBJECTIVES, Objective, clip_weights, get_objective, gradient_penalty, register

REAL = torch.tensor([1.0, -2.0])
FAKE = torch.tensor([0.5, 3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


HAND = {  # objective: (critic loss, generator loss) for REAL and FAKE scores, written out term by term
    "dcgan": (
        (softplus(-1.0) + softplus(2.0)) / 2 + (softplus(0.5) + softplus(3.0)) / 2,
        (softplus(-0.5) + softplus(-3.0)) / 2,
    ),
    "wgan": ((0.5 + 3.0) / 2 - (1.0 - 2.0) / 2, -(0.5 + 3.0) / 2),
    "wgan-gp": ((0.5 + 3.0) / 2 - (1.0 - 2.0) / 2, -(0.5 + 3.0) / 2),
    "lsgan": (0.5 * ((1 - 1) ** 2 + (-2 - 1) ** 2) / 2 + 0.5 * (0.5**2 + 3.0**2) / 2, 0.5 * ((0.5 - 1) ** 2 + (3 - 1) ** 2) / 2),
    "hinge": ((max(0, 1 - 1.0) + max(0, 1 + 2.0)) / 2 + (max(0, 1 + 0.5) + max(0, 1 + 3.0)) / 2, -(0.5 + 3.0) / 2),
}


@pytest.mark.parametrize("name", list(HAND))
def test_losses_match_hand_computation(name):
    objective = get_objective(name)
    critic_expected, generator_expected = HAND[name]
    assert objective.critic_loss(REAL, FAKE).item() == pytest.approx(critic_expected, rel=1e-6)
    assert objective.generator_loss(FAKE).item() == pytest.approx(generator_expected, rel=1e-6)
    # (N, 1) scores, as a critic with a trailing unit dimension gives, mean the same
    assert objective.critic_loss(REAL[:, None], FAKE[:, None]).item() == pytest.approx(critic_expected, rel=1e-6)


def test_registry_holds_the_issue_recipes():
    assert {"dcgan", "wgan", "wgan-gp", "lsgan", "hinge"} <= set(OBJECTIVES)
    dcgan, wgan, gp = get_objective("dcgan"), get_objective("wgan"), get_objective("wgan-gp")
    assert (dcgan.optimizer.name, dcgan.optimizer.lr, dcgan.optimizer.betas, dcgan.n_critic) == ("adam", 2e-4, (0.5, 0.999), 1)
    assert (wgan.optimizer.name, wgan.optimizer.lr, wgan.clip_value, wgan.n_critic) == ("rmsprop", 5e-5, 0.01, 5)
    assert (gp.optimizer.name, gp.optimizer.lr, gp.optimizer.betas, gp.penalty_weight) == ("adam", 1e-4, (0.0, 0.9), 10.0)
    assert gp.critic_norm != "batch"
    assert isinstance(gp.optimizer.build(nn.Linear(2, 1).parameters()), torch.optim.Adam)
    assert isinstance(wgan.optimizer.build(nn.Linear(2, 1).parameters()), torch.optim.RMSprop)


def test_unknown_and_duplicate_objectives_are_refused():
    with pytest.raises(ValueError, match="unknown GAN objective 'wgan_gp'.*wgan-gp"):
        get_objective("wgan_gp")
    with pytest.raises(ValueError, match="already registered"):
        register(get_objective("hinge"))


def test_get_objective_returns_an_independent_copy():
    first, second = get_objective("wgan"), get_objective("wgan")
    first.clip_value = 1.0
    assert second.clip_value == 0.01 and OBJECTIVES["wgan"].clip_value == 0.01


class LinearCritic(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight))

    def forward(self, x):
        return x.flatten(1) @ self.weight


def test_gradient_penalty_of_a_linear_critic_is_its_norm_gap():
    # f(x) = w.x has gradient w everywhere, so the penalty is (||w|| - 1)^2 = (5 - 1)^2.
    critic = LinearCritic([3.0, 4.0])
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    penalty = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx(16.0, rel=1e-5)
    penalty.backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(critic.weight.grad, torch.tensor([2 * 4 * 3 / 5, 2 * 4 * 4 / 5]), rtol=1e-5)


def test_gradient_penalty_backpropagates_into_every_conv_critic_weight():
    critic = Critic((3, 32, 32), width=8, norm="layer")
    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    gradient_penalty(critic, real, fake).backward()
    for name, parameter in critic.named_parameters():
        if name.endswith("weight") and parameter.dim() > 1:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_wgan_gp_critic_step_adds_ten_times_the_penalty():
    torch.manual_seed(1)
    objective = get_objective("wgan-gp")
    critic = LinearCritic([3.0, 4.0])
    real, fake = torch.randn(5, 2), torch.randn(5, 2)
    loss, logs = objective.critic_step_loss(critic, real, fake)
    wasserstein = critic(fake).mean() - critic(real).mean()
    assert logs["gradient_penalty"].item() == pytest.approx(16.0, rel=1e-5)
    assert loss.item() == pytest.approx(wasserstein.item() + 160.0, rel=1e-5)


def test_weight_clipping_bounds_every_critic_weight():
    critic = Critic((1, 28, 28), architecture="mlp", hidden_dims=(32, 32))
    assert max(p.abs().max().item() for p in critic.parameters()) > 0.01  # default init is wider
    get_objective("wgan").after_critic_step(critic)
    assert max(p.abs().max().item() for p in critic.parameters()) <= torch.tensor(0.01).item()  # float32 bound
    clip_weights(critic, 0.001)
    assert max(p.abs().max().item() for p in critic.parameters()) <= torch.tensor(0.001).item()


def test_objectives_without_clipping_leave_weights_alone():
    critic = Critic((1, 28, 28), architecture="mlp", hidden_dims=(16,))
    before = [p.clone() for p in critic.parameters()]
    get_objective("wgan-gp").after_critic_step(critic)
    assert all(torch.equal(a, b) for a, b in zip(before, critic.parameters()))


def test_a_new_objective_is_one_registration():
    objective = Objective(
        "test-mean", "mean scores", lambda r, f: f.mean() - r.mean(), lambda f: -f.mean(), get_objective("hinge").optimizer
    )
    assert objective.critic_step_loss(LinearCritic([1.0]), torch.ones(2, 1), torch.zeros(2, 1))[0].item() == -1.0


def test_a_per_sample_critic_scores_real_and_fake_in_one_call_with_the_same_numbers():
    from genhub.models.gan import build_critic
    from genhub.objectives import critic_scores, scores_each_sample_alone

    torch.manual_seed(0)
    real, fake = torch.randn(5, 1, 16, 16), torch.randn(3, 1, 16, 16)
    critics = {norm: build_critic("wgan-gp", (1, 16, 16), width=4, norm=norm) for norm in ("layer", "none", "batch", "spectral")}
    for norm, critic in critics.items():
        calls: list[int] = []
        critic.register_forward_hook(lambda module, args, out, calls=calls: calls.append(len(args[0])))
        assert scores_each_sample_alone(critic) == (norm in ("layer", "none"))
        critic.eval()  # fixed statistics and weights: both ways must give the same numbers
        with torch.no_grad():
            real_scores, fake_scores = critic_scores(critic, real, fake)
            torch.testing.assert_close(real_scores, critic(real), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(fake_scores, critic(fake), rtol=1e-5, atol=1e-6)
        assert calls[0] == (8 if norm in ("layer", "none") else 5)  # one call on both, or one per batch
    # the gradient penalty's and R1's gradients still reach the inputs through the joint call
    loss, logs = get_objective("wgan-gp").critic_step_loss(critics["layer"].train(), real[:3], fake)
    loss.backward()
    assert float(logs["gradient_penalty"]) > 0
