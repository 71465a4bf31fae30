"""One training update, the same on one process or on N: the worker of tests/test_distributed.py.

    python tests/distributed_steps.py KIND OUT                                   # one process
    accelerate launch --cpu --num_processes 2 tests/distributed_steps.py KIND OUT  # two (gloo)

KIND is dcgan, wgan-gp or vae. Every process builds the same networks (seed 0) and the same
global batch, noise and penalty interpolation weights; process r of N trains on rows
r * B/N ... (r + 1) * B/N of them, so a correct data-parallel update equals the one-process
update of the whole batch. Rank 0 saves the networks' weights after the update to OUT.
"""

from __future__ import annotations

import sys

import torch

from genhub.models.gan import GenDCGAN, GenWGAN, build_critic
from genhub.models.vae import GenVAE
from genhub.objectives import get_objective, penalties
from genhub.training.distributed import Distributed
from genhub.training.gan import GANTrainer, TrainSettings
from genhub.training.vae import VAESettings, VAETrainer

BATCH = 16
SHAPE = (1, 16, 16)


def build(kind: str, distributed: Distributed):
    torch.manual_seed(0)
    if kind == "vae":
        model = GenVAE(image_shape=SHAPE, latent_dim=8, architecture="conv", width=8, likelihood="bernoulli", prior="mog")
        return VAETrainer(model, settings=VAESettings(batch_size=BATCH, progress=False), distributed=distributed)
    objective = get_objective(kind)
    model = (GenDCGAN if kind == "dcgan" else GenWGAN)(image_shape=SHAPE, latent_dim=8, architecture="conv", width=8, objective=kind)
    critic = build_critic(objective, SHAPE, architecture="conv", width=8)
    settings = TrainSettings(batch_size=BATCH, progress=False, precision="fp32")
    return GANTrainer(model, critic, kind, settings=settings, distributed=distributed)


def update(kind: str, distributed: Distributed) -> dict[str, torch.Tensor]:
    """The weights after one update (a GAN: n_critic critic steps and one generator step)."""
    trainer = build(kind, distributed)
    rank, world = distributed.rank, distributed.world_size
    part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    data = torch.Generator().manual_seed(1)
    if kind == "vae":
        x = (torch.rand(BATCH, *SHAPE, generator=data) > 0.5).float()
        eps = torch.randn(BATCH, 8, generator=data)
        trainer.step(x[part], eps=eps[part])
        return {f"model.{k}": v.clone() for k, v in trainer.model.state_dict().items()}
    for _ in range(trainer.n_critic):
        real = torch.rand(BATCH, *SHAPE, generator=data) * 2 - 1
        noise = torch.randn(BATCH, 8, generator=data)
        alpha = torch.rand(BATCH, 1, 1, 1, generator=data)[part]

        def points(real_part, fake_part, alpha=alpha):  # the global batch's weights, this process's rows
            return (alpha * real_part.detach() + (1 - alpha) * fake_part.detach()).requires_grad_(True)

        penalties.interpolation_points = points
        trainer.step(real[part], noise=noise[part])
    assert trainer.generator_steps == 1
    weights = {f"generator.{k}": v.clone() for k, v in trainer.model.state_dict().items()}
    return {**weights, **{f"critic.{k}": v.clone() for k, v in trainer.critic.state_dict().items()}}


if __name__ == "__main__":
    kind, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    distributed = Distributed.create("cpu", sync_bn=True)
    weights = update(kind, distributed)
    if distributed.is_main:
        torch.save({"world_size": distributed.world_size, "weights": weights}, out)
    distributed.barrier()
    if torch.distributed.is_initialized():  # leave the group before exiting: gloo torn down at exit once aborted a rank
        torch.distributed.destroy_process_group()
