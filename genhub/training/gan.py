"""One trainer for every GAN objective in genhub.objectives.

    trainer = GANTrainer(GenDCGAN(...), Critic(...), "dcgan", out="runs/dcgan-mnist")
    trainer.fit(images_uint8, epochs=5)         # grids, loss plot and checkpoint every epoch
    trainer = GANTrainer.from_checkpoint("runs/dcgan-mnist/checkpoint.pt")
    trainer.fit(images_uint8, epochs=10)        # continues exactly where it stopped

One "step" is n_critic critic updates, each on a fresh real batch, then one generator
update on the last critic update's fakes (as in the PyTorch DCGAN example, which saves a
generator forward pass). The whole dataset sits on the device as uint8 and each batch is
scaled to [-1, 1] there, so no DataLoader or per-image transform runs on the CPU. On CUDA
the forward passes run under bf16 autocast.

Every epoch reseeds torch from (seed, epoch), so a run resumed from an end-of-epoch
checkpoint replays the same batches and noise as an uninterrupted one. Losses are checked
every `check_every` steps; a NaN or inf stops training with TrainingDiverged and the
checkpoint on disk stays the last good one.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from genhub.models.gan import GenGAN, critic_from_config
from genhub.models.hub import MODEL_CLASSES
from genhub.objectives import Objective, get_objective

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


class TrainingDiverged(RuntimeError):
    """Losses became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or does not fit the run."""


@dataclass
class TrainSettings:
    batch_size: int = 64
    n_critic: int | None = None  # None: the objective's default
    lr: float | None = None  # None: the objective's default, for both networks
    generator_lr_scale: float = 1.0  # the generator's learning rate relative to the critic's
    ema_decay: float = 0.999
    seed: int = 0
    grid_size: int = 64  # fixed-noise samples drawn each epoch
    check_every: int = 50  # steps between NaN checks and progress updates
    progress: bool = True


class GANTrainer:
    def __init__(self, model: GenGAN, critic: nn.Module, objective: Objective | str, out=None, settings: TrainSettings | None = None, device="cpu"):
        self.settings = settings or TrainSettings()
        self.objective = get_objective(objective) if isinstance(objective, str) else objective
        if self.settings.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.settings.batch_size}")
        if self.settings.generator_lr_scale <= 0:
            raise ValueError(f"generator_lr_scale must be positive, got {self.settings.generator_lr_scale}")
        self.n_critic = self.settings.n_critic or self.objective.n_critic
        if self.n_critic < 1:
            raise ValueError(f"n_critic must be positive, got {self.n_critic}")
        if tuple(critic.image_shape) != tuple(model.image_shape):
            raise ValueError(f"critic sees {critic.image_shape} images but the generator makes {model.image_shape}")
        self.device = torch.device(device)
        self.model = model.to(self.device).train()
        self.critic = critic.to(self.device).train()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)  # the sampling / Hub copy
        critic_lr = self.objective.optimizer.lr if self.settings.lr is None else self.settings.lr
        self.optimizer_g = self.objective.optimizer.build(self.model.parameters(), critic_lr * self.settings.generator_lr_scale)
        self.optimizer_d = self.objective.optimizer.build(self.critic.parameters(), critic_lr)
        self.out = Path(out) if out is not None else None
        self.epoch = 0
        self.critic_steps = 0
        self.generator_steps = 0
        self.train_seconds = 0.0
        self.history: dict[str, list[float]] = {}
        self.commands: list[str] = []  # the command lines that trained this run, for its model card
        self.fixed_noise = model.sample_latent(self.settings.grid_size, seed=self.settings.seed)
        self.use_autocast = self.device.type == "cuda"

    # -- data -----------------------------------------------------------------------------
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Check a uint8 (N, C, H, W) dataset against the model and move it to the device."""
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError("training images must be a uint8 tensor (N, C, H, W), as genhub.load_images returns")
        if tuple(images.shape[1:]) != tuple(self.model.image_shape):
            raise ValueError(
                f"the data has images of shape {tuple(images.shape[1:])} but the model makes {tuple(self.model.image_shape)}; "
                "load the data with matching image_size/channels or build the model for this data"
            )
        if len(images) < self.settings.batch_size:
            raise ValueError(f"only {len(images)} training images, fewer than one batch of {self.settings.batch_size}")
        return images.to(self.device)

    # -- training -------------------------------------------------------------------------
    def fit(self, images: torch.Tensor, epochs: int) -> dict[str, list[float]]:
        """Train until `epochs` epochs are done in total (a resumed trainer counts its past epochs)."""
        data = self.prepare(images)
        for epoch in range(self.epoch, epochs):
            started = time.perf_counter()
            summary = self.train_epoch(data, epoch)
            self.train_seconds += time.perf_counter() - started
            self.epoch = epoch + 1
            line = f"epoch {self.epoch}/{epochs}  " + "  ".join(f"{k} {v:.4f}" for k, v in summary.items())
            if self.out is not None:
                self.out.mkdir(parents=True, exist_ok=True)
                grid = self.save_grid(self.out / "samples" / f"epoch_{self.epoch:03d}.png")
                self.save_checkpoint(self.out / CHECKPOINT_NAME)
                self.plot_losses(self.out / "loss_curves.png")
                line += f"  grid {grid}"
            print(line, flush=True)
        return self.history

    def train_epoch(self, data: torch.Tensor, epoch: int) -> dict[str, float]:
        """One pass over `data` (uint8 on the device) in shuffled batches; returns mean logs."""
        torch.manual_seed(self.settings.seed * 1_000_003 + epoch)
        batch_size = self.settings.batch_size
        order = torch.randperm(len(data), device=self.device)
        batches = len(data) // batch_size
        pending: list[dict[str, torch.Tensor]] = []
        epoch_rows: list[dict[str, float]] = []
        bar = tqdm(range(batches), desc=f"epoch {epoch + 1}", disable=not self.settings.progress, leave=False, mininterval=2)
        for index in bar:
            real = data[order[index * batch_size : (index + 1) * batch_size]].float().div_(127.5).sub_(1)
            logs = self.step(real)
            if logs is not None:
                pending.append(logs)
            if pending and (len(pending) >= self.settings.check_every or index == batches - 1):
                epoch_rows += self._record(pending, epoch)
                pending = []
                bar.set_postfix({k: f"{v:.3f}" for k, v in epoch_rows[-1].items() if k not in ("step", "epoch")})
        bar.close()
        if not epoch_rows:
            return {}
        keys = [k for k in epoch_rows[0] if k not in ("step", "epoch")]
        return {k: sum(row[k] for row in epoch_rows) / len(epoch_rows) for k in keys}

    def step(self, real: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """One critic update on `real` (in [-1, 1]), plus a generator update every n_critic-th
        call. Returns the logs (tensors) after a generator update, else None."""
        generator_turn = (self.critic_steps + 1) % self.n_critic == 0
        noise = torch.randn(len(real), self.model.latent_dim, device=self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_autocast):
            with torch.set_grad_enabled(generator_turn):
                fake = self.model(noise)
            critic_loss, logs = self.objective.critic_step_loss(self.critic, real, fake.detach())
        self.optimizer_d.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.optimizer_d.step()
        self.objective.after_critic_step(self.critic)
        self.critic_steps += 1
        if not generator_turn:
            return None
        self.critic.requires_grad_(False)  # the generator step needs no critic weight gradients
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_autocast):
            generator_loss, generator_logs = self.objective.generator_step_loss(self.critic, fake, real)
        self.optimizer_g.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.optimizer_g.step()
        self.critic.requires_grad_(True)
        self.generator_steps += 1
        self._update_ema()
        return {**logs, **generator_logs}

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up (1+t)/(10+t) so that short runs are not dominated by the random init.
        decay = min(self.settings.ema_decay, (1 + self.generator_steps) / (10 + self.generator_steps))
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.model.parameters()), 1 - decay)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.model.buffers()):
            ema_buffer.copy_(buffer)

    def _record(self, pending: list[dict[str, torch.Tensor]], epoch: int) -> list[dict[str, float]]:
        """Move a block of logged tensors to the host in one transfer; stop on NaN/inf."""
        keys = list(pending[0])
        values = torch.stack([torch.stack([row[k].float() for k in keys]) for row in pending]).tolist()
        first_step = self.generator_steps - len(pending) + 1
        rows = []
        for offset, row in enumerate(values):
            if any(v != v or v in (float("inf"), float("-inf")) for v in row):
                bad = ", ".join(f"{k}={v}" for k, v in zip(keys, row))
                kept = f"the last good checkpoint (epoch {self.epoch}) is kept in {self.out / CHECKPOINT_NAME}" if self.out and self.epoch else "no checkpoint was written yet"
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}, generator step {first_step + offset} with objective "
                    f"{self.objective.name!r} ({bad}); {kept}. Try a lower --lr, a different --objective, or another --seed."
                )
            rows.append({"step": first_step + offset, "epoch": epoch + 1, **dict(zip(keys, row))})
        for row in rows:
            for key, value in row.items():
                self.history.setdefault(key, []).append(value)
        return rows

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
        model.grid(images, scale=scale).save(path)
        return path

    def plot_losses(self, path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.history:
            return
        keys = [k for k in ("critic_loss", "generator_loss", "gradient_penalty") if k in self.history]
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
        figure.savefig(path, dpi=100)
        plt.close(figure)

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_class": type(self.model).__name__,
            "model_config": dict(self.model._hub_mixin_config),
            "critic_config": dict(self.critic.config),
            "objective": self.objective.name,
            "objective_state": self.objective.state_dict(),
            "settings": asdict(self.settings),
            "generator": self.model.state_dict(),
            "ema_generator": self.ema.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "fixed_noise": self.fixed_noise.cpu(),
            "epoch": self.epoch,
            "critic_steps": self.critic_steps,
            "generator_steps": self.generator_steps,
            "train_seconds": self.train_seconds,
            "history": self.history,
            "commands": self.commands,
        }

    def save_checkpoint(self, path) -> None:
        """Write atomically: a crash mid-save never replaces the last good checkpoint."""
        path = Path(path)
        temporary = path.with_suffix(".tmp")
        torch.save(self.state_dict(), temporary)
        temporary.replace(path)

    @classmethod
    def from_checkpoint(cls, path, out=None, device="cpu", progress: bool = True) -> "GANTrainer":
        """Rebuild networks, optimizers, counters and history from a checkpoint, ready to `fit` on."""
        state = read_checkpoint(path)
        settings = TrainSettings(**{**state["settings"], "progress": progress})
        try:
            model = MODEL_CLASSES[state["model_class"]](**state["model_config"])
            critic = critic_from_config(state["critic_config"])
            trainer = cls(model, critic, state["objective"], out=out if out is not None else Path(path).parent, settings=settings, device=device)
            trainer.model.load_state_dict(state["generator"])
            trainer.ema.load_state_dict(state["ema_generator"])
            trainer.critic.load_state_dict(state["critic"])
            trainer.optimizer_g.load_state_dict(state["optimizer_g"])
            trainer.optimizer_d.load_state_dict(state["optimizer_d"])
            trainer.objective.load_state_dict(state["objective_state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{path} does not fit genhub's GAN trainer ({type(error).__name__}: {error})") from error
        trainer.fixed_noise = state["fixed_noise"].to(trainer.device)
        trainer.epoch = state["epoch"]
        trainer.critic_steps = state["critic_steps"]
        trainer.generator_steps = state["generator_steps"]
        trainer.train_seconds = state["train_seconds"]
        trainer.history = state["history"]
        trainer.commands = state.get("commands", [])
        return trainer


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train without --resume first (checkpoints are written after each epoch)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and EOF errors all mean the same thing here
        raise CheckpointError(f"{path} is corrupt or not a torch checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a genhub GAN checkpoint (format {CHECKPOINT_FORMAT})")
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
