"""One trainer for every GAN objective in genhub.objectives, on the shared trainer base.

    trainer = GANTrainer(GenDCGAN(...), Critic(...), "dcgan", out="runs/dcgan-mnist")
    trainer.fit(images_uint8, epochs=5)         # grids, loss plot and checkpoint every epoch
    trainer = GANTrainer.from_checkpoint("runs/dcgan-mnist/checkpoint.pt")
    trainer.fit(images_uint8, epochs=10)        # continues exactly where it stopped

One "step" is n_critic critic updates, each on a fresh real batch, then one generator
update on the last critic update's fakes (as in the PyTorch DCGAN example, which saves a
generator forward pass); `step(real)` is one critic update and, every n_critic-th call, the
generator update. Budgets count generator steps. Batches are scaled to [-1, 1] on the device.
With `augment` (genhub.training.augment, DiffAugment), every critic call of every objective sees
augmented images: real and fake in the critic step (its gradient penalty included), the
generated batch in the generator step, gradients flowing back through the augmentation.
The speed path (`TrainSettings`, each option measured in benchmarks/throughput.py):
- `precision` "auto" runs the forward passes under bf16 autocast on CUDA and in fp32 on CPU;
  "bf16" asks for bf16 autocast on any device (CPUs with AVX512-BF16 or AMX), "fp32" for none.
- `channels_last` stores the conv networks' weights and the batches in NHWC.
- `compile` runs the networks through torch.compile ("reduce-overhead", CUDA graphs, on CUDA).
  A compiled graph has no double backward, so where the critic step differentiates through the
  critic twice (an objective with a gradient penalty) the critic step runs eager, with a note,
  and the generator (and the critic in the generator step) stay compiled; a double backward
  met anyway falls back to eager on the first step.
The loop, the budget, exact resume, the EMA and the NaN guard are genhub.training.base's.

Data-parallel (`distributed`, genhub.training.distributed): the generator and the critic are
wrapped in DistributedDataParallel for the step, so their gradients (the penalty's included)
are averaged over the processes; the generator step calls the critic unwrapped, since it needs
no critic gradients. Numbers an objective learns from its batches (BEGAN's k, MAGAN's margin,
Fisher's multiplier) are averaged over the processes after every critic step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from genhub.images import to_signed_range
from genhub.models.gan import GenGAN, critic_from_config
from genhub.models.hub import MODEL_CLASSES, config_changes, init_defaults, load_model
from genhub.objectives import Objective, get_objective
from genhub.runtime import atomic_write, save_image
from genhub.training.augment import DiffAugment
from genhub.training.base import CHECKPOINT_NAME, CheckpointError, Settings, Trainer, TrainingDiverged, read_checkpoint_state
from genhub.training.distributed import Distributed

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "GANTrainer", "TrainSettings", "TrainingDiverged", "initialise_from", "read_checkpoint",
           "refresh_batch_norm"]  # fmt: skip


@dataclass
class TrainSettings(Settings):
    n_critic: int | None = None  # None: the objective's default
    lr: float | None = None  # None: the objective's default, for both networks
    generator_lr_scale: float = 1.0  # the generator's learning rate relative to the critic's (two time-scale updates when != 1)
    r1: float | None = None  # gamma of an R1 penalty on real images; None: the objective's (none for the registered ones)
    ema_decay: float | None = 0.999
    augment: str = ""  # DiffAugment policies before every critic call, e.g. "color,translation,cutout"; "" for none
    augment_p: float = 1.0  # the probability each policy is applied to each image
    compile: bool = False  # torch.compile the networks (eager critic where a gradient penalty needs double backward)
    top_k: float = 1.0  # top-k generator updates: the smallest fraction of each batch kept (nu); 1: every fake counts
    top_k_decay: float = 0.99  # the kept fraction starts at 1 and is multiplied by this every epoch, down to top_k (gamma)

    def check(self) -> None:
        super().check()
        if not self.generator_lr_scale > 0:
            raise ValueError(f"generator_lr_scale must be positive, got {self.generator_lr_scale}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.r1 is not None and not (self.r1 >= 0 and math.isfinite(self.r1)):
            raise ValueError(f"r1 (gamma) must be >= 0, got {self.r1}")
        if self.ema_decay is None:
            raise ValueError("the GAN trainer samples from an EMA generator: ema_decay must be in [0, 1)")
        if self.augment:
            DiffAugment(self.augment, self.augment_p)  # raises on an unknown policy or a bad probability
        if not 0 < self.top_k <= 1:
            raise ValueError(f"top_k is the smallest fraction of each batch the generator step keeps, in (0, 1]; got {self.top_k}")
        if not 0 < self.top_k_decay <= 1:
            raise ValueError(f"top_k_decay is the kept fraction's factor per epoch, in (0, 1]; got {self.top_k_decay}")


class GANTrainer(Trainer):
    kind = "gan"

    def __init__(
        self,
        model: GenGAN,
        critic: nn.Module,
        objective: Objective | str,
        out=None,
        settings: TrainSettings | None = None,
        device="cpu",
        callbacks=(),
        distributed: Distributed | None = None,
    ):
        settings = settings or TrainSettings()
        self.objective = get_objective(objective) if isinstance(objective, str) else objective
        if settings.r1 is not None:
            if settings.r1 and not self.objective.takes_r1:
                name = self.objective.name
                raise ValueError(f"an R1 penalty needs a score objective with the standard critic step; {name!r} has its own")
            self.objective.r1_weight = settings.r1
        if settings.top_k < 1 and not self.objective.takes_top_k:
            name = self.objective.name
            raise ValueError(f"top-k updates need a score objective with the standard generator step; {name!r} has its own")
        self.n_critic = settings.n_critic or self.objective.n_critic
        if self.n_critic < 1:
            raise ValueError(f"n_critic must be positive, got {self.n_critic}")
        if tuple(critic.image_shape) != tuple(model.image_shape):
            raise ValueError(f"critic sees {critic.image_shape} images but the generator makes {model.image_shape}")
        super().__init__(model, settings, out=out, device=device, callbacks=callbacks, distributed=distributed)
        self.critic = critic.to(self.device).train()
        self.critic_lr = self.objective.optimizer.lr if settings.lr is None else settings.lr
        self.optimizer_g = self.objective.optimizer.build(self.model.parameters(), self.generator_lr)
        self.optimizer_d = self.objective.optimizer.build(self.critic.parameters(), self.critic_lr)
        self.critic_steps = 0
        self.generator_steps = 0
        self.fixed_noise = model.sample_latent(settings.grid_size, seed=settings.seed)
        if settings.channels_last:
            self.critic.to(memory_format=torch.channels_last)
        # The critic only ever sees T(x), real and generated alike (DiffAugment); identity without.
        self.augment = DiffAugment(settings.augment, settings.augment_p) if settings.augment else (lambda images: images)
        # What the step calls: the networks themselves, or their DistributedDataParallel wrappers.
        self.step_generator = self.distributed.wrap(self.model)
        self.step_critic = self.distributed.wrap(self.critic)
        self.generator_step_critic = self.critic  # the generator step needs no critic gradients: never DDP-wrapped
        if settings.compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self.step_generator = torch.compile(self.step_generator, mode=mode)
            self.generator_step_critic = torch.compile(self.critic, mode=mode)
            if self.objective.double_backward:  # autograd.grad through a compiled graph: no double backward
                print(f"note: --compile: {self.objective.name!r} has a gradient penalty (or R1), so its critic step runs eager", flush=True)
            else:
                self.step_critic = torch.compile(self.step_critic, mode=mode)

    @property
    def steps_done(self) -> int:
        return self.generator_steps

    @property
    def top_k_keep(self) -> int | None:
        """How many fakes of a (local) batch the generator step keeps: the batch times
        max(top_k_decay ** epoch, top_k), rounded up; None when every fake counts."""
        if self.settings.top_k >= 1:
            return None
        fraction = max(self.settings.top_k_decay**self.epoch, self.settings.top_k)
        return max(1, math.ceil(fraction * self.local_batch_size))

    @property
    def generator_lr(self) -> float:
        return self.critic_lr * self.settings.generator_lr_scale

    def scale(self, batch: torch.Tensor) -> torch.Tensor:
        return self.in_memory_format(to_signed_range(batch))

    def describe(self) -> str:
        return f"objective {self.objective.name!r}"

    # -- training -------------------------------------------------------------------------
    def step(self, real: torch.Tensor, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor] | None:
        """One critic update on `real` (in [-1, 1]), plus a generator update every n_critic-th
        call. Returns the logs (tensors) after a generator update, else None. `noise` (default:
        fresh N(0, I) codes) makes the step reproducible from outside."""
        generator_turn = (self.critic_steps + 1) % self.n_critic == 0
        self.follow_schedule((self.optimizer_d, self.critic_lr), (self.optimizer_g, self.generator_lr))
        if noise is None:
            noise = torch.randn(len(real), self.model.latent_dim, device=self.device)
        with self.autocast():
            with torch.set_grad_enabled(generator_turn):
                fake = self.step_generator(noise)
            real = self.augment(real)
            fake_seen = self.augment(fake.detach())
        logs = self._critic_backward(real, fake_seen)
        self.optimizer_d.step()
        self.objective.after_critic_step(self.critic)
        if self.distributed.active and self.objective.state_fields:
            self._average_objective_state()
        self.critic_steps += 1
        if not generator_turn:
            return None
        self.critic.requires_grad_(False)  # the generator step needs no critic weight gradients
        with self.autocast():
            keep = self.top_k_keep
            generator_loss, generator_logs = self.objective.generator_step_loss(
                self.generator_step_critic, self.augment(fake), real, **({"keep": keep} if keep else {})
            )
        self.optimizer_g.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.optimizer_g.step()
        self.critic.requires_grad_(True)
        self.generator_steps += 1
        self.update_ema()
        return {**logs, **generator_logs}

    def _critic_backward(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """The critic loss and its gradients. A compiled critic that meets double backward (a
        gradient penalty) is replaced by the eager one, once, and the loss recomputed."""
        try:
            with self.autocast():
                critic_loss, logs = self.objective.critic_step_loss(self.step_critic, real, fake)
            self.optimizer_d.zero_grad(set_to_none=True)
            critic_loss.backward()
        except RuntimeError as error:  # a penalty the rule above did not foresee (an objective's own autograd.grad)
            double_backward = any(word in str(error) for word in ("grad", "create_graph"))
            if not (self.settings.compile and hasattr(self.step_critic, "_orig_mod") and double_backward):
                raise
            print(f"note: --compile: {error}; the critic of {self.objective.name!r} runs eager, the generator compiled", flush=True)
            self.step_critic = self.step_critic._orig_mod  # what torch.compile wrapped: the critic or its DDP wrapper
            return self._critic_backward(real, fake)
        return logs

    def _average_objective_state(self) -> None:
        state = self.objective.state_dict()
        names = [name for name, value in state.items() if value is not None]
        if names:
            values = self.distributed.mean(torch.tensor([float(state[name]) for name in names], dtype=torch.float64, device=self.device))
            self.objective.load_state_dict({**state, **dict(zip(names, values.tolist()))})

    def end_of_epoch(self, summary: dict[str, float]) -> None:
        """Print the epoch's mean losses; with `out`, write the grid, the checkpoint and the loss plot."""
        line = f"epoch {self.epoch}  " + "  ".join(f"{k} {v:.4f}" for k, v in summary.items())
        if self.out is not None and self.saving_epoch():
            grid = self.save_grid(self.out / "samples" / f"epoch_{self.epoch:03d}.png")
            self.save_checkpoint(self.out / CHECKPOINT_NAME)
            self.plot_losses(self.out / "loss_curves.png")
            line += f"  grid {grid}"
        print(line, flush=True)

    # -- outputs ----------------------------------------------------------------------------
    @torch.no_grad()
    def sampling_model(self) -> GenGAN:
        """The EMA generator, its batch-norm statistics recomputed for the averaged weights."""
        refresh_batch_norm(self.ema, seed=self.settings.seed)
        return self.ema

    @torch.no_grad()
    def save_grid(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        model = self.sampling_model()
        images = model.decode(self.fixed_noise)
        scale = 2 if model.image_shape[1] <= 32 else 1
        grid = model.grid(images, scale=scale)
        save_image(grid, path)
        self.distributed.log_image("samples", grid, step=self.generator_steps)
        return path

    def plot_losses(self, path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.history:
            return
        keys = [k for k in ("critic_loss", "generator_loss", "gradient_penalty", "r1_penalty") if k in self.history]
        figure, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
        steps = self.history["step"]
        window = max(1, len(steps) // 100)
        for axis, key in zip(axes[0], keys):
            values = torch.tensor(self.history[key])
            axis.plot(steps, values, alpha=0.25, linewidth=0.6)
            if window > 1 and len(values) > window:
                smooth = values.unfold(0, window, 1).mean(1)
                axis.plot(steps[window - 1 :], smooth, linewidth=1.4)
            axis.set_title(key.replace("_", " "))
            axis.set_xlabel("generator step")
        figure.suptitle(f"{self.objective.name}: {self.epoch} epochs")
        figure.tight_layout()
        atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
        plt.close(figure)

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "critic_config": dict(self.critic.config),
            "objective": self.objective.name,
            "objective_state": self.objective.state_dict(),
            "generator": self.model.state_dict(),
            "ema_generator": self.ema.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "fixed_noise": self.fixed_noise.cpu(),
            "critic_steps": self.critic_steps,
            "generator_steps": self.generator_steps,
        }

    @classmethod
    def from_checkpoint(
        cls, path, out=None, device="cpu", progress: bool = True, distributed: Distributed | None = None, overrides: dict | None = None
    ) -> GANTrainer:
        """Rebuild networks, optimizers, counters and history from a checkpoint, ready to `fit` on.
        `overrides` replaces settings that change speed, not results (precision, channels_last, compile)."""
        state = read_checkpoint(path)
        settings = TrainSettings(**{**state["settings"], "progress": progress, **(overrides or {})})
        try:
            model = MODEL_CLASSES[state["model_class"]](**state["model_config"])
            critic = critic_from_config(state["critic_config"])
            trainer = cls(
                model,
                critic,
                state["objective"],
                out=out if out is not None else Path(path).parent,
                settings=settings,
                device=device,
                distributed=distributed,
            )
            trainer.model.load_state_dict(state["generator"])
            if trainer.ema is not None:
                trainer.ema.load_state_dict(state["ema_generator"])
            trainer.critic.load_state_dict(state["critic"])
            trainer.optimizer_g.load_state_dict(state["optimizer_g"])
            trainer.optimizer_d.load_state_dict(state["optimizer_d"])
            trainer.objective.load_state_dict(state["objective_state"])
            trainer.load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{path} does not fit genhub's GAN trainer ({type(error).__name__}: {error})") from error
        trainer.fixed_noise = state["fixed_noise"].to(trainer.device)
        trainer.critic_steps = state["critic_steps"]
        trainer.generator_steps = state["generator_steps"]
        return trainer


def read_checkpoint(path) -> dict:
    """A GAN trainer's checkpoint, checked (errors name the file)."""
    state = read_checkpoint_state(path, "gan")
    if state.get("model_class") not in MODEL_CLASSES:
        raise CheckpointError(f"{path} names an unknown model class {state.get('model_class')!r}")
    return state


@torch.no_grad()
def refresh_batch_norm(model: nn.Module, seed: int = 0, batches: int = 8, batch_size: int = 256) -> None:
    """Recompute batch-norm running statistics ("standing statistics") from fresh samples.

    The EMA generator's averaged weights do not match the live generator's running
    statistics; averaging the batch statistics of a few large batches fixes that.
    A model without batch norm is left alone.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        model(torch.randn(batch_size, model.latent_dim, generator=generator).to(model.device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    model.train(was_training)


def initialise_from(source, model: GenGAN, critic: nn.Module) -> str:
    """Start `model` and `critic` from another GAN's trained weights: transfer learning for small
    data (Wang et al. 2018, "Transferring GANs": a GAN pre-trained on a large related set and
    fine-tuned on the small one beats one trained from scratch on it). The optimizers, counters
    and EMA start fresh; only weights move.

    `source` is a GAN run folder or its checkpoint.pt (the EMA generator's weights, which sample
    best, and the critic's), or a saved GenGAN model folder or Hub id (the generator only; the
    critic starts fresh). The networks must be the ones `model` and `critic` are, layer for layer:
    a mismatch names the differing config fields and the source. Returns what was loaded."""
    path = Path(source)
    checkpoint = path / CHECKPOINT_NAME if path.is_dir() and (path / CHECKPOINT_NAME).exists() else path
    defaults = init_defaults(type(model))  # a config saved before a field existed stands for its default
    if checkpoint.suffix == ".pt":
        state = read_checkpoint(checkpoint)
        _same_networks(source, "generator", model._hub_mixin_config, {**defaults, **state["model_config"]})
        _same_networks(source, "critic", critic.config, state["critic_config"])
        try:
            model.load_state_dict(state["ema_generator"])
            critic.load_state_dict(state["critic"])
        except (KeyError, RuntimeError) as error:
            raise CheckpointError(f"{checkpoint} does not fit these networks ({type(error).__name__}: {error})") from error
        return "generator (EMA) and critic"
    pretrained = load_model(str(source))
    if not isinstance(pretrained, GenGAN):
        raise ValueError(f"{source} is a {type(pretrained).__name__}, not a GAN generator")
    _same_networks(source, "generator", model._hub_mixin_config, {**defaults, **pretrained._hub_mixin_config})
    model.load_state_dict(pretrained.state_dict())
    return "generator (the critic starts fresh)"


def _same_networks(source, what: str, wanted: dict, found: dict) -> None:
    """The config fields that shape the network must match; the objective a generator was trained
    with does not shape it."""
    changed = config_changes(wanted, found, ignore=("objective",))
    if changed:
        raise ValueError(f"--init-from {source}: its {what} is not the one these flags build: {'; '.join(changed)}")
