"""GAN objectives, selected by name: `get_objective("wgan-gp")`.

An objective is two small pure loss functions on critic scores plus the recipe that goes
with them (optimizer, critic steps per generator step, weight clipping, gradient penalty):

    critic_loss(real_scores, fake_scores) -> scalar      minimized by the critic
    generator_loss(fake_scores)           -> scalar      minimized by the generator

The one trainer (genhub/trainer.py) only ever calls `Objective.critic_step_loss`,
`Objective.generator_step_loss` and `Objective.after_critic_step`, so a new objective is
one `register(Objective(...))` call with two functions. An objective that needs more than
scores (features for MMD-GAN, a balance term for BEGAN) subclasses `Objective`, overrides
those methods, and keeps any state in `state_dict()` / `load_state_dict()`, which the
trainer saves in its checkpoints. `get_objective` hands out a fresh copy, so state never
leaks between runs.

Scores are raw critic outputs (logits for the non-saturating GAN), shape (N,) or (N, 1).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Scores = torch.Tensor


# -- loss functions ------------------------------------------------------------------------
def nonsaturating_critic_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
    """Binary cross-entropy of a real/fake classifier on logits (Goodfellow et al. 2014):
    -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))."""
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def nonsaturating_generator_loss(fake_scores: Scores) -> torch.Tensor:
    """-log sigmoid(D(G(z))): the 'non-saturating' generator loss, strong gradients early on."""
    return F.softplus(-fake_scores).mean()


def wasserstein_critic_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
    """E[f(G(z))] - E[f(x)]; its negative estimates the Wasserstein-1 distance (Arjovsky et al. 2017)
    while the critic f is kept (roughly) 1-Lipschitz by clipping or a gradient penalty."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: Scores) -> torch.Tensor:
    return -fake_scores.mean()


def least_squares_critic_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
    """LSGAN with targets real=1, fake=0 (Mao et al. 2017)."""
    return 0.5 * (real_scores - 1).pow(2).mean() + 0.5 * fake_scores.pow(2).mean()


def least_squares_generator_loss(fake_scores: Scores) -> torch.Tensor:
    return 0.5 * (fake_scores - 1).pow(2).mean()


def hinge_critic_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): margins at +1 for real, -1 for fake."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_generator_loss(fake_scores: Scores) -> torch.Tensor:
    return -fake_scores.mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x f(x_hat)||_2 - 1)^2] at random points x_hat between real and fake images
    (Gulrajani et al. 2017). The graph is kept (create_graph) so the penalty trains the critic."""
    alpha = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    between = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(between)
    (gradients,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    norms = gradients.float().flatten(1).norm(2, dim=1)
    return (norms - 1).pow(2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, limit: float) -> None:
    """Clamp every parameter to [-limit, limit] (the original WGAN's crude Lipschitz bound)."""
    for parameter in module.parameters():
        parameter.clamp_(-limit, limit)


# -- recipes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer both networks use by default for an objective."""

    name: str  # "adam" or "rmsprop"
    lr: float
    betas: tuple[float, float] = (0.5, 0.999)

    def build(self, parameters, lr: float | None = None) -> torch.optim.Optimizer:
        lr = self.lr if lr is None else lr
        if self.name == "adam":
            return torch.optim.Adam(parameters, lr=lr, betas=self.betas)
        if self.name == "rmsprop":
            return torch.optim.RMSprop(parameters, lr=lr)
        raise ValueError(f"unknown optimizer {self.name!r}; use 'adam' or 'rmsprop'")


@dataclass
class Objective:
    """A loss pair plus the training recipe that makes it work."""

    name: str
    description: str
    critic_loss: Callable[[Scores, Scores], torch.Tensor]
    generator_loss: Callable[[Scores], torch.Tensor]
    optimizer: OptimizerSpec
    n_critic: int = 1  # critic updates per generator update
    clip_value: float | None = None  # weight clipping bound after each critic update
    penalty_weight: float = 0.0  # gradient-penalty weight (lambda)
    critic_norm: str = "batch"  # "layer"/"none" where a per-sample gradient penalty forbids batch norm
    hub_class: str = "GenGAN"  # the genhub class a trained generator is saved as

    def critic_step_loss(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The critic's loss on one batch, and detached numbers worth logging."""
        real_scores, fake_scores = critic(real), critic(fake)
        loss = self.critic_loss(real_scores, fake_scores)
        logs = {"critic_loss": loss.detach(), "real_score": real_scores.detach().float().mean(), "fake_score": fake_scores.detach().float().mean()}
        if self.penalty_weight:
            penalty = gradient_penalty(critic, real, fake)
            loss = loss + self.penalty_weight * penalty
            logs["gradient_penalty"] = penalty.detach()
        return loss, logs

    def generator_step_loss(self, critic: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss = self.generator_loss(critic(fake))
        return loss, {"generator_loss": loss.detach()}

    def after_critic_step(self, critic: nn.Module) -> None:
        if self.clip_value is not None:
            clip_weights(critic, self.clip_value)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


OBJECTIVES: dict[str, Objective] = {}


def register(objective: Objective) -> Objective:
    if objective.name in OBJECTIVES:
        raise ValueError(f"objective {objective.name!r} is already registered")
    OBJECTIVES[objective.name] = objective
    return objective


def get_objective(name: str) -> Objective:
    """A fresh copy of the named objective (so stateful objectives start clean)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown GAN objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    return copy.deepcopy(OBJECTIVES[name])


DCGAN_ADAM = OptimizerSpec("adam", 2e-4, (0.5, 0.999))  # Radford et al. 2016

register(Objective(
    "dcgan", "non-saturating GAN (binary cross-entropy on logits)",
    nonsaturating_critic_loss, nonsaturating_generator_loss, DCGAN_ADAM, hub_class="GenDCGAN",
))
register(Objective(
    "wgan", "Wasserstein GAN with weight clipping at 0.01",
    wasserstein_critic_loss, wasserstein_generator_loss, OptimizerSpec("rmsprop", 5e-5),
    n_critic=5, clip_value=0.01, hub_class="GenWGAN",
))
register(Objective(
    "wgan-gp", "Wasserstein GAN with gradient penalty, lambda = 10",
    wasserstein_critic_loss, wasserstein_generator_loss, OptimizerSpec("adam", 1e-4, (0.0, 0.9)),
    n_critic=5, penalty_weight=10.0, critic_norm="layer", hub_class="GenWGAN",
))
register(Objective(
    "lsgan", "least-squares GAN (targets 1 for real, 0 for fake)",
    least_squares_critic_loss, least_squares_generator_loss, DCGAN_ADAM,
))
register(Objective(
    "hinge", "hinge-loss GAN",
    hinge_critic_loss, hinge_generator_loss, DCGAN_ADAM,
))
