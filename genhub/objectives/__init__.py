"""GAN objectives, selected by name: `get_objective("wgan-gp")`.

An objective is two small pure loss functions on critic scores plus the recipe that goes
with them (optimizer, critic steps per generator step, weight clipping, gradient penalty):

    critic_loss(real_scores, fake_scores) -> scalar      minimized by the critic
    generator_loss(fake_scores)           -> scalar      minimized by the generator

The one GAN trainer (genhub/training/gan.py) only ever calls `Objective.critic_step_loss`,
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
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genhub.objectives.penalties import clip_weights, gradient_penalty, r1_penalty
from genhub.runtime import adam

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


# -- recipes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer both networks use by default for an objective."""

    name: str  # "adam" or "rmsprop"
    lr: float
    betas: tuple[float, float] = (0.5, 0.999)

    def build(self, parameters, lr: float | None = None, fused: bool | None = None) -> torch.optim.Optimizer:
        """The optimizer over `parameters`. Adam is fused where torch can (genhub.runtime.adam;
        `fused=False`: the stock loop, as the classic-loop benchmark uses)."""
        lr = self.lr if lr is None else lr
        if self.name == "adam":
            return adam(parameters, lr=lr, betas=self.betas, fused=fused)
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
    clip_value: float | tuple[float, float] | None = None  # weight clipping after each critic update: c for [-c, c], or (low, high)
    penalty_weight: float = 0.0  # gradient-penalty weight (lambda)
    critic_norm: str = "batch"  # "layer"/"none" where a per-sample gradient penalty forbids batch norm
    hub_class: str = "GenGAN"  # the genhub class a trained generator is saved as
    critic_kind: str = "score"  # what the critic outputs: one "score", `feature_dim` "features", or an "autoencoder" reconstruction
    feature_dim: int = 16  # critic outputs per sample when critic_kind is "features"
    r1_weight: float = 0.0  # gamma of the R1 penalty (gamma / 2) E_real ||grad D||^2; 0: none

    @property
    def double_backward(self) -> bool:
        """Whether the critic step differentiates through the critic's input gradient (a penalty)."""
        return bool(self.penalty_weight or self.r1_weight)

    @property
    def takes_r1(self) -> bool:
        """R1 is added by the plain score step below; objectives with their own step do not take it."""
        return self.critic_kind == "score" and type(self).critic_step_loss is Objective.critic_step_loss

    def critic_step_loss(self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The critic's loss on one batch, and detached numbers worth logging."""
        if self.r1_weight:
            real = real.detach().requires_grad_(True)
        real_scores, fake_scores = critic_scores(critic, real, fake)
        loss = self.critic_loss(real_scores, fake_scores)
        logs = {
            "critic_loss": loss.detach(),
            "real_score": real_scores.detach().float().mean(),
            "fake_score": fake_scores.detach().float().mean(),
        }
        if self.penalty_weight:
            penalty = gradient_penalty(critic, real, fake)
            loss = loss + self.penalty_weight * penalty
            logs["gradient_penalty"] = penalty.detach()
        if self.r1_weight:
            penalty = r1_penalty(real, real_scores)
            loss = loss + 0.5 * self.r1_weight * penalty
            logs["r1_penalty"] = penalty.detach()
        return loss, logs

    @property
    def takes_top_k(self) -> bool:
        """Top-k generator updates need one score per sample, higher for what the critic judges
        more real (the convention of every score objective here), and the plain generator step."""
        return self.critic_kind == "score" and type(self).generator_step_loss is Objective.generator_step_loss

    def generator_step_loss(
        self, critic: nn.Module, fake: torch.Tensor, real: torch.Tensor, keep: int | None = None
    ) -> tuple[torch.Tensor, dict]:
        """The generator's loss on one batch of fakes. `keep` k (top-k training, Sinha et al.
        2020): only the k fakes the critic scores highest enter the loss, so the others get no
        gradient; L_G = generator_loss(top_k(D(G(z_1..n)))). The whole batch still goes through
        the critic (its batch statistics are the batch's)."""
        scores = critic(fake)
        if keep is not None and keep < len(scores):
            scores = scores.topk(keep).values
        loss = self.generator_loss(scores)
        return loss, {"generator_loss": loss.detach()}

    def after_critic_step(self, critic: nn.Module) -> None:
        if self.clip_value is not None:
            clip_weights(critic, self.clip_value)

    # Numbers an objective learns while training (BEGAN's k, Fisher's multiplier, ...), checkpointed.
    state_fields: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.state_fields}

    def load_state_dict(self, state: dict) -> None:
        for name in self.state_fields:
            setattr(self, name, None if state[name] is None else float(state[name]))


_SCORES_ALONE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # critic -> scores_each_sample_alone, found once


def scores_each_sample_alone(critic: nn.Module) -> bool:
    """Whether a critic's output for one sample depends on that sample only, the same in any
    batch: no batch norm (batch statistics couple the samples) and no spectral norm (its power
    iteration advances once per training call, so the number of calls matters). Looked up once
    per critic: the critic step asks every step."""
    from torch.nn.utils.parametrize import is_parametrized

    if critic not in _SCORES_ALONE:
        _SCORES_ALONE[critic] = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) or is_parametrized(m) for m in critic.modules())
    return _SCORES_ALONE[critic]


def critic_scores(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D(real), D(fake). One call on both batches where the critic scores each sample alone (the
    same numbers, one pass: 5% more WGAN-GP steps per second in bf16 on the project's CPU), two
    calls where batch norm or spectral norm make the calls matter."""
    if real.shape[1:] != fake.shape[1:] or not scores_each_sample_alone(critic):
        return critic(real), critic(fake)
    return critic(torch.cat([real, fake])).split([len(real), len(fake)])


OBJECTIVES: dict[str, Objective] = {}
CRITIC_KINDS = ("score", "features", "autoencoder")


def register(objective: Objective) -> Objective:
    if objective.name in OBJECTIVES:
        raise ValueError(f"objective {objective.name!r} is already registered")
    if objective.critic_kind not in CRITIC_KINDS:
        raise ValueError(f"objective {objective.name!r}: critic_kind must be one of {CRITIC_KINDS}, got {objective.critic_kind!r}")
    OBJECTIVES[objective.name] = objective
    return objective


def get_objective(name: str) -> Objective:
    """A fresh copy of the named objective (so stateful objectives start clean)."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown GAN objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    return copy.deepcopy(OBJECTIVES[name])


DCGAN_ADAM = OptimizerSpec("adam", 2e-4, (0.5, 0.999))  # Radford et al. 2016

register(
    Objective(
        "dcgan",
        "non-saturating GAN (binary cross-entropy on logits)",
        nonsaturating_critic_loss,
        nonsaturating_generator_loss,
        DCGAN_ADAM,
        hub_class="GenDCGAN",
    )
)
register(
    Objective(
        "wgan",
        "Wasserstein GAN with weight clipping at 0.01",
        wasserstein_critic_loss,
        wasserstein_generator_loss,
        OptimizerSpec("rmsprop", 5e-5),
        n_critic=5,
        clip_value=0.01,
        hub_class="GenWGAN",
    )
)
register(
    Objective(
        "wgan-gp",
        "Wasserstein GAN with gradient penalty, lambda = 10",
        wasserstein_critic_loss,
        wasserstein_generator_loss,
        OptimizerSpec("adam", 1e-4, (0.0, 0.9)),
        n_critic=5,
        penalty_weight=10.0,
        critic_norm="layer",
        hub_class="GenWGAN",
    )
)
register(
    Objective(
        "lsgan",
        "least-squares GAN (targets 1 for real, 0 for fake)",
        least_squares_critic_loss,
        least_squares_generator_loss,
        DCGAN_ADAM,
    )
)
register(
    Objective(
        "hinge",
        "hinge-loss GAN",
        hinge_critic_loss,
        hinge_generator_loss,
        DCGAN_ADAM,
    )
)


# ==========================================================================================
# The rest of the GAN objective table. Each entry cites its paper. The f-divergence,
# MMD and energy-distance math lives once, in genhub.objectives.divergences.
#
# Critic outputs: each objective declares the critic it needs in `critic_kind`, and
# genhub.models.gan.build_critic builds it. "score" critics give one number per sample. Feature
# objectives (McGAN, MMD-GAN, Cramér GAN) read a critic's output as a feature vector of
# `feature_dim` numbers. Auto-encoder objectives (EBGAN, BEGAN, MAGAN) need a critic whose
# output has the input's shape (a reconstruction). GMMN has no adversary: it gets a score
# critic that it never calls.
# ==========================================================================================
from . import divergences as _divergences  # noqa: E402


def _features(outputs: torch.Tensor) -> torch.Tensor:
    return outputs.float().reshape(len(outputs), -1)


def _halves(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = len(batch) // 2
    return batch[:half], batch[half : 2 * half]


def scaled_bandwidths(x: torch.Tensor, y: torch.Tensor, factors=(0.5, 1.0, 2.0)) -> tuple[float, ...]:
    """Kernel bandwidths as multiples of the median pairwise distance (the median heuristic),
    so one setting serves 2-D points and 784-pixel images alike."""
    with torch.no_grad():
        median = float(torch.cdist(_features(x), _features(y)).median().clamp_min(1e-6))
    return tuple(factor * median for factor in factors)


# -- f-GAN ----------------------------------------------------------------------------------
def fgan_losses(divergence_name: str):
    """f-GAN (Nowozin, Cseke & Tomioka 2016): the critic maximises the variational bound
    E_P[g_f(V(x))] - E_Q[f*(g_f(V(G(z))))] on D_f(P_data || Q_model); the generator uses the
    paper's alternative update, maximising E_Q[g_f(V(G(z)))]. The bound, output activation
    g_f and conjugate f* come from genhub.objectives.divergences."""
    divergence = _divergences.f_divergence(divergence_name)

    def critic_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
        return -divergence.bound(real_scores.float(), fake_scores.float())

    def generator_loss(fake_scores: Scores) -> torch.Tensor:
        return -divergence.activation(fake_scores.float()).mean()

    return critic_loss, generator_loss


for _name in ("kl", "reverse_kl", "pearson", "squared_hellinger", "jensen_shannon", "total_variation", "gan"):
    register(
        Objective(
            "fgan-" + _name.replace("_", "-"),
            f"f-GAN on {_divergences.f_divergence(_name).definition}",
            *fgan_losses(_name),
            DCGAN_ADAM,
        )
    )


# -- IPMs on critic features ------------------------------------------------------------------
def mean_covariance_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """McGAN's IPM (Mroueh, Sercu & Goel 2017): |mean_r - mean_f|_2 + |cov_r - cov_f|_* (nuclear
    norm: the paper's sup over orthonormal U, V of the covariance difference's trace)."""
    real_features, fake_features = _features(real_features), _features(fake_features)
    mean_gap = (real_features.mean(0) - fake_features.mean(0)).norm()
    covariance_gap = torch.cov(real_features.T, correction=0).reshape(real_features.shape[1], -1) - torch.cov(
        fake_features.T, correction=0
    ).reshape(fake_features.shape[1], -1)
    return mean_gap + torch.linalg.matrix_norm(covariance_gap, ord="nuc")


@dataclass
class FeatureObjective(Objective):
    """An objective whose critic maximises a distance between real and fake features and whose
    generator minimises it (`distance(real_features, fake_features)`)."""

    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def critic_step_loss(self, critic, real, fake):
        value = self.distance(_features(critic(real)), _features(critic(fake)))
        return -value, {"critic_loss": -value.detach(), "distance": value.detach()}

    def generator_step_loss(self, critic, fake, real):
        value = self.distance(_features(critic(real)).detach(), _features(critic(fake)))
        return value, {"generator_loss": value.detach()}


def kernel_mmd2(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD^2 with Gaussian kernels at the median-heuristic bandwidths."""
    return _divergences.mmd2_unbiased(real_features, fake_features, scaled_bandwidths(real_features, fake_features))


register(
    FeatureObjective(
        "mcgan",
        "McGAN: mean and covariance feature matching, weight clipping 0.01 (Mroueh et al. 2017)",
        None,
        None,
        OptimizerSpec("rmsprop", 5e-5),
        n_critic=5,
        clip_value=0.01,
        critic_kind="features",
        distance=mean_covariance_distance,
    )
)
register(
    FeatureObjective(
        "mmdgan",
        "MMD-GAN: MMD^2 with an adversarially learned kernel on critic features, weight clipping 0.01 (Li et al. 2017)",
        None,
        None,
        OptimizerSpec("rmsprop", 5e-5),
        n_critic=5,
        clip_value=0.01,
        critic_kind="features",
        distance=kernel_mmd2,
    )
)


# -- GMMN: no adversary ----------------------------------------------------------------------------
@dataclass
class GMMNObjective(Objective):
    """GMMN (Li, Swersky & Zemel 2015; Dziugaite, Roy & Ghahramani 2015): the generator minimises
    the unbiased MMD^2 between real and generated samples in data space directly. There is
    no adversary: the critic's step is a zero loss (so the trainer's loop stays the same)."""

    def critic_step_loss(self, critic, real, fake):
        zero = sum(p.sum() for p in critic.parameters()) * 0.0
        return zero, {"critic_loss": zero.detach()}

    def generator_step_loss(self, critic, fake, real):
        real, fake = _features(real), _features(fake)
        value = _divergences.mmd2_unbiased(real, fake, scaled_bandwidths(real, fake))
        return value, {"generator_loss": value.detach()}


register(
    GMMNObjective(
        "gmmn", "GMMN: generator trained on MMD^2 in data space (Li et al. 2015)", None, None, OptimizerSpec("adam", 1e-3, (0.5, 0.999))
    )
)


# -- Cramér GAN ----------------------------------------------------------------------------------
@dataclass
class CramerObjective(Objective):
    """Cramér GAN (Bellemare et al. 2017, algorithm 1). With h the critic's features and x', x''
    two independent fake halves of the batch:
      generator: |h(x_r) - h(x')| + |h(x_r) - h(x'')| - |h(x') - h(x'')|   (energy distance, 1 sample)
      critic surrogate f(x) = |h(x) - h(x'')| - |h(x)|, maximise f(x_r) - f(x') - lambda GP(f)."""

    def critic_step_loss(self, critic, real, fake):
        fake_a, fake_b = _halves(fake)
        real = real[: len(fake_a)]
        anchor = _features(critic(fake_b))

        def surrogate(x):
            h = _features(critic(x))
            return (h - anchor).norm(dim=1) - h.norm(dim=1)

        value = surrogate(real).mean() - surrogate(fake_a).mean()
        penalty = _divergences.gradient_penalty(surrogate, real, fake_a)
        return -value + self.penalty_weight * penalty, {"critic_loss": -value.detach(), "gradient_penalty": penalty.detach()}

    def generator_step_loss(self, critic, fake, real):
        fake_a, fake_b = (_features(critic(half)) for half in _halves(fake))
        h_real = _features(critic(real[: len(fake_a)]))
        value = ((h_real - fake_a).norm(dim=1) + (h_real - fake_b).norm(dim=1) - (fake_a - fake_b).norm(dim=1)).mean()
        return value, {"generator_loss": value.detach()}


register(
    CramerObjective(
        "cramer",
        "Cramér GAN: energy distance on critic features, gradient penalty 10 (Bellemare et al. 2017)",
        None,
        None,
        OptimizerSpec("adam", 1e-4, (0.5, 0.9)),
        n_critic=5,
        penalty_weight=10.0,
        critic_norm="layer",
        critic_kind="features",
    )
)


# -- Fisher GAN -------------------------------------------------------------------------------------
@dataclass
class FisherObjective(Objective):
    """Fisher GAN (Mroueh & Sercu 2017): the critic maximises the augmented Lagrangian
    E_r f - E_f f + lam (1 - Omega) - rho/2 (1 - Omega)^2, Omega = (E_r f^2 + E_f f^2)/2 (a
    data-dependent second-moment constraint instead of a Lipschitz one); the multiplier takes a
    gradient step lam <- lam - rho (1 - Omega) after each critic step; the generator minimises -E_f f."""

    rho: float = 1e-6
    lagrange: float = 0.0

    def critic_step_loss(self, critic, real, fake):
        real_scores, fake_scores = critic(real).float(), critic(fake).float()
        ipm = real_scores.mean() - fake_scores.mean()
        constraint = 1 - 0.5 * (real_scores.pow(2).mean() + fake_scores.pow(2).mean())
        lagrangian = ipm + self.lagrange * constraint - self.rho / 2 * constraint**2
        self.lagrange -= self.rho * float(constraint.detach())
        return -lagrangian, {"critic_loss": -lagrangian.detach(), "ipm": ipm.detach(), "lagrange": torch.tensor(self.lagrange)}

    state_fields: ClassVar[tuple[str, ...]] = ("lagrange",)


register(
    FisherObjective(
        "fisher",
        "Fisher GAN: IPM under a second-moment constraint, augmented Lagrangian (Mroueh & Sercu 2017)",
        None,
        wasserstein_generator_loss,
        OptimizerSpec("adam", 2e-4, (0.5, 0.999)),
        n_critic=2,
        rho=1e-6,
    )
)


# -- RWGAN ------------------------------------------------------------------------------------------
RWGAN_CLIP = (-0.01, 0.02)  # genhub's bounds (see below)


def relaxed_wasserstein_objective() -> Objective:
    """RWGAN (Guo, Hong, Lin & Yang 2017, "Relaxed Wasserstein with Applications to GANs",
    arXiv:1705.07164). The relaxed Wasserstein divergence replaces W1's cost |x - y| with a
    Bregman divergence B_phi(x, y) = phi(x) - phi(y) - <grad phi(y), x - y>; the paper's GAN uses
    the KL cost (phi(x) = sum x log x) and trains like WGAN except that the critic's weights are
    clipped to an asymmetric box [c_l, c_u] instead of WGAN's [-c, c]. The losses are WGAN's:
    the critic minimises E f(G(z)) - E f(x), the generator -E f(G(z)). The recipe is genhub's:
    RMSProp 5e-5 and n_critic 5 as for `wgan`, and the box RWGAN_CLIP = [-0.01, 0.02]. The
    paper's own box and learning rate, and its authors' code, were not available offline to
    check these against."""
    return Objective(
        "rwgan",
        f"Relaxed WGAN (KL cost): Wasserstein critic under asymmetric weight clipping {list(RWGAN_CLIP)} (Guo et al. 2017)",
        wasserstein_critic_loss,
        wasserstein_generator_loss,
        OptimizerSpec("rmsprop", 5e-5),
        n_critic=5,
        clip_value=RWGAN_CLIP,
    )


register(relaxed_wasserstein_objective())


# -- auto-encoder critics: EBGAN, BEGAN, MAGAN ----------------------------------------------------
def reconstruction_energy(critic: nn.Module, x: torch.Tensor, power: int = 2) -> torch.Tensor:
    """Per-sample energy of an auto-encoder critic: mean |AE(x) - x|^power (2: EBGAN, 1: BEGAN)."""
    return (critic(x).float() - x.float()).abs().pow(power).flatten(1).mean(1)


@dataclass
class EBGANObjective(Objective):
    """EBGAN (Zhao, Mathieu & LeCun 2017): the critic is an auto-encoder whose reconstruction
    error is an energy; it minimises D(x) + max(0, m - D(G(z))), the generator minimises D(G(z))."""

    margin: float = 1.0

    def critic_step_loss(self, critic, real, fake):
        real_energy, fake_energy = reconstruction_energy(critic, real), reconstruction_energy(critic, fake)
        loss = real_energy.mean() + F.relu(self.margin - fake_energy).mean()
        return loss, {"critic_loss": loss.detach(), "real_energy": real_energy.mean().detach(), "fake_energy": fake_energy.mean().detach()}

    def generator_step_loss(self, critic, fake, real):
        loss = reconstruction_energy(critic, fake).mean()
        return loss, {"generator_loss": loss.detach()}


@dataclass
class MAGANObjective(EBGANObjective):
    """MAGAN (Wang, Cully, Chang & Demiris 2017): EBGAN whose margin shrinks to the mean real
    energy whenever that is below the margin and the fakes' energy is above the reals'. The paper
    adapts once per epoch after an auto-encoder pre-training; here running averages of the two
    energies stand in for the epoch means, and the first batch's real energy sets the margin."""

    margin: float = 0.0
    decay: float = 0.99
    real_average: float | None = None
    fake_average: float | None = None

    def critic_step_loss(self, critic, real, fake):
        loss, logs = super().critic_step_loss(critic, real, fake)
        real_mean, fake_mean = float(logs["real_energy"]), float(logs["fake_energy"])
        if self.real_average is None:
            self.real_average, self.fake_average = real_mean, fake_mean
            self.margin = real_mean
        else:
            self.real_average = self.decay * self.real_average + (1 - self.decay) * real_mean
            self.fake_average = self.decay * self.fake_average + (1 - self.decay) * fake_mean
        if self.real_average < self.margin and self.fake_average > self.real_average:
            self.margin = self.real_average
        logs["margin"] = torch.tensor(self.margin)
        return loss, logs

    state_fields: ClassVar[tuple[str, ...]] = ("margin", "real_average", "fake_average")


@dataclass
class BEGANObjective(Objective):
    """BEGAN (Berthelot, Schumm & Metz 2017): with L(v) = mean |AE(v) - v| the critic minimises
    L(x) - k_t L(G(z)), the generator L(G(z)); the balance k_{t+1} = clip(k_t + lambda_k (gamma L(x)
    - L(G(z))), 0, 1) keeps E L(G(z)) = gamma E L(x), and M = L(x) + |gamma L(x) - L(G(z))| is the
    convergence measure (logged as `convergence`)."""

    gamma: float = 0.5
    lambda_k: float = 1e-3
    k: float = 0.0

    def critic_step_loss(self, critic, real, fake):
        real_loss, fake_loss = reconstruction_energy(critic, real, 1).mean(), reconstruction_energy(critic, fake, 1).mean()
        loss = real_loss - self.k * fake_loss
        balance = self.gamma * real_loss.item() - fake_loss.item()
        logs = {"critic_loss": loss.detach(), "k": torch.tensor(self.k), "convergence": torch.tensor(real_loss.item() + abs(balance))}
        self.k = min(max(self.k + self.lambda_k * balance, 0.0), 1.0)
        return loss, logs

    def generator_step_loss(self, critic, fake, real):
        loss = reconstruction_energy(critic, fake, 1).mean()
        return loss, {"generator_loss": loss.detach()}

    state_fields: ClassVar[tuple[str, ...]] = ("k",)


register(
    EBGANObjective(
        "ebgan",
        "EBGAN: auto-encoder energy with a margin (Zhao et al. 2017)",
        None,
        None,
        DCGAN_ADAM,
        critic_norm="none",
        critic_kind="autoencoder",
        margin=1.0,
    )
)
register(
    BEGANObjective(
        "began",
        "BEGAN: auto-encoder L1 loss with k_t balance, gamma 0.5 (Berthelot et al. 2017)",
        None,
        None,
        OptimizerSpec("adam", 1e-4, (0.5, 0.999)),
        critic_norm="none",
        critic_kind="autoencoder",
    )
)
register(
    MAGANObjective(
        "magan",
        "MAGAN: EBGAN with an adaptive margin (Wang et al. 2017)",
        None,
        None,
        DCGAN_ADAM,
        critic_norm="none",
        critic_kind="autoencoder",
    )
)
