"""The VAE trainer, on the shared trainer base.

    trainer = VAETrainer(GenVAE(...), out="runs/vae", settings=VAESettings(lr=1e-3))
    trainer.fit(train_uint8, epochs=100, validation=validation_uint8)   # or seconds=1800
    trainer = VAETrainer.from_checkpoint("runs/vae/checkpoint.pt")
    trainer.fit(train_uint8, epochs=200, validation=validation_uint8)   # continues exactly

A step is one Adam update on the negative bound of a batch in [0, 1]: the ELBO with the KL
term weighted by beta (`kl_weight`, ramped up linearly over the first `kl_warmup` epochs), or
the k-sample IWAE bound when `train_k` > 1. Free bits (`free_bits`, Kingma et al. 2016) keep a
strong decoder (a PixelCNN) from ignoring z: the batch's mean KL enters the loss as
max(KL, free_bits), so below that many nats the encoder is not pushed towards the prior. The
KL is logged (train and validation), so a reader sees how much the latent is used. The learning rate decays on a cosine from `lr` to 0
over the budget (whichever of its epochs, steps or seconds runs out first), so a time-budgeted
run anneals too. A run resumed with the budget it was started with continues exactly; resumed
with a larger one, the rest of its schedule stretches to the new end. After every epoch the
validation ELBO is computed; with `out`, the model with the best one is saved to out/best, the
per-epoch record to out/history.json, a sample grid and reconstructions to out/epochs/, and the
checkpoint to out/checkpoint.pt.

Data-parallel (`distributed`, genhub.training.distributed), the model trains through one
DistributedDataParallel wrapper of its bound methods, so the gradients are the global batch's;
validation, the best model and every file are the main process's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from genhub.images import to_unit_range
from genhub.models.hub import MODEL_CLASSES
from genhub.models.vae import GenVAE
from genhub.runtime import adam, environment_summary, eval_mode, save_image
from genhub.training.base import CHECKPOINT_NAME, CheckpointError, Settings, Trainer, read_checkpoint_state, save_json
from genhub.training.distributed import Distributed

BEST_FOLDER = "best"
HISTORY_NAME = "history.json"
NLL_RECORD_NAME = "nll_bounds.json"  # the IWAE evaluation's per-image bounds, so an interrupted one continues


@dataclass
class VAESettings(Settings):
    batch_size: int = 100
    lr: float = 1e-3
    kl_weight: float = 1.0  # beta; 1 trains the true ELBO
    kl_warmup: int = 0  # epochs over which the KL weight ramps from 0 to kl_weight
    train_k: int = 1  # importance samples in the training bound (1 = ELBO)
    free_bits: float = 0.0  # nats: the batch's mean KL counts as at least this much (0: off)
    schedule: str = "cosine"  # the learning rate over the budget (genhub.training.base.lr_factor)
    precision: str = "fp32"  # a likelihood model: bf16 autocast only when asked ("bf16"; evaluation stays fp32)

    def check(self) -> None:
        super().check()
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not (self.kl_weight >= 0 and math.isfinite(self.kl_weight)):
            raise ValueError(f"kl_weight must be >= 0, got {self.kl_weight}")
        if not (self.free_bits >= 0 and math.isfinite(self.free_bits)):
            raise ValueError(f"free_bits must be >= 0 nats, got {self.free_bits}")
        if self.kl_warmup < 0 or self.train_k < 1:
            raise ValueError(f"kl_warmup must be >= 0 and train_k >= 1, got {self.kl_warmup} and {self.train_k}")


@torch.no_grad()
def mean_elbo_terms(model: GenVAE, images: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """The mean ELBO and mean KL(q(z|x) || p(z)) (nats per image) of uint8 `images`, in eval mode."""
    elbo = kl = 0.0
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            reconstruction, divergence = model.elbo_terms(to_unit_range(images[i : i + batch_size].to(model.device)))
            elbo += (reconstruction - divergence).sum().item()
            kl += divergence.sum().item()
    return elbo / len(images), kl / len(images)


def save_epoch_images(model: GenVAE, validation: torch.Tensor, prefix: Path, seed: int = 0):
    """<prefix>_samples.png (64 samples) and <prefix>_reconstructions.png (32 validation images,
    each beside its reconstruction); returns the sample grid."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with eval_mode(model):
        samples = model.grid(model.sample(64, seed=seed), nrow=8, scale=2)
        save_image(samples, f"{prefix}_samples.png")
        originals = to_unit_range(validation[:32].to(model.device))
        pairs = torch.stack([originals, model.reconstruct(originals)], dim=1).flatten(0, 1)
        save_image(model.grid(pairs, nrow=8, scale=2), f"{prefix}_reconstructions.png")
    return samples


class VAETrainer(Trainer):
    kind = "vae"
    drop_last = False

    def __init__(
        self,
        model: GenVAE,
        out=None,
        settings: VAESettings | None = None,
        device="cpu",
        callbacks=(),
        distributed: Distributed | None = None,
    ):
        super().__init__(model, settings or VAESettings(), out=out, device=device, callbacks=callbacks, distributed=distributed)
        self.optimizer = adam(self.model.parameters(), lr=self.settings.lr)
        self.step_model = self.distributed.wrap(self.model, by_method=True)  # step_model("elbo_terms", x)
        self.optimizer_steps = 0
        self.best_elbo = -math.inf
        self.validation: torch.Tensor | None = None

    @property
    def steps_done(self) -> int:
        return self.optimizer_steps

    def scale(self, batch: torch.Tensor) -> torch.Tensor:
        return self.in_memory_format(to_unit_range(batch))

    def kl_weight(self) -> float:
        settings = self.settings
        return settings.kl_weight * (min(1.0, (self.epoch + 1) / settings.kl_warmup) if settings.kl_warmup else 1.0)

    def fit(self, images: torch.Tensor, epochs: int | None = None, *, validation: torch.Tensor | None = None, **budget):
        """`validation` (uint8) is scored after every epoch; without it, 5% of `images` are held out."""
        if validation is None:
            held_out = max(1, len(images) // 20)
            images, validation = images[held_out:], images[:held_out]
        self.validation = validation.to(self.device)
        return super().fit(images, epochs, **budget)

    def step(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One Adam update on the batch `x` in [0, 1]; `eps` (the reparameterisation noise,
        default fresh) makes the ELBO step reproducible from outside."""
        settings = self.settings
        self.follow_schedule((self.optimizer, settings.lr))
        logs = {}
        if settings.train_k > 1:
            with self.autocast():
                bound = self.step_model("iwae_bound", x, settings.train_k)
            loss = -bound.float().mean()
        else:
            with self.autocast():
                reconstruction, kl = self.step_model("elbo_terms", x, eps)
            reconstruction, kl = reconstruction.float(), kl.float()
            kl_term = kl.mean().clamp(min=settings.free_bits) if settings.free_bits else kl.mean()
            loss = -reconstruction.mean() + self.kl_weight() * kl_term
            logs["kl"] = kl.mean().detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.optimizer_steps += 1
        if self.ema is not None:
            self.update_ema()
        return {"loss": loss.detach(), **logs}

    def end_of_epoch(self, summary: dict[str, float]) -> None:
        """Validation ELBO; with `out`: the best model, the history, the images and the checkpoint."""
        model = self.ema if self.ema is not None else self.model
        val_elbo, val_kl = mean_elbo_terms(model, self.validation)
        improved = val_elbo > self.best_elbo
        self.best_elbo = max(self.best_elbo, val_elbo)
        self.epoch_log.append(
            {
                "epoch": self.epoch,
                "train_loss": summary.get("loss"),
                "val_elbo": val_elbo,
                "val_kl": val_kl,
                "train_kl": summary.get("kl"),
                "best": improved,
                "minutes": self.train_seconds / 60,
                "wall_minutes": self.wall_seconds / 60,
            }
        )
        self.distributed.log({"val_elbo": val_elbo, "val_kl": val_kl}, step=self.optimizer_steps)
        if self.out is not None:
            if improved:
                model.save_pretrained(self.out / BEST_FOLDER)
            save_json(self.out / HISTORY_NAME, {"history": self.epoch_log, "hardware": environment_summary(self.device)})
            if self.saving_epoch():
                samples = save_epoch_images(model, self.validation, self.out / "epochs" / f"{self.epoch:03d}", seed=self.settings.seed)
                self.distributed.log_image("samples", samples, step=self.optimizer_steps)
                self.save_checkpoint(self.out / CHECKPOINT_NAME)
        loss = summary.get("loss", float("nan"))
        print(
            f"epoch {self.epoch}: train loss {loss:.2f}, validation -ELBO {-val_elbo:.2f} (KL {val_kl:.2f})"
            f"{' (best)' if improved else ''}, "
            f"{self.train_seconds / 60:.1f} min",
            flush=True,
        )

    def best_epoch(self) -> dict:
        if not self.epoch_log:
            raise ValueError("no epoch has finished yet")
        return max(self.epoch_log, key=lambda row: row["val_elbo"])

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "optimizer_steps": self.optimizer_steps,
            "best_elbo": self.best_elbo,
        }

    @classmethod
    def from_checkpoint(
        cls, path, out=None, device="cpu", progress: bool = True, distributed: Distributed | None = None, overrides: dict | None = None
    ) -> VAETrainer:
        """`overrides` replaces settings that change speed (precision, channels_last), as for GANs."""
        state = read_checkpoint_state(path, "vae")
        try:
            model = MODEL_CLASSES[state["model_class"]](**state["model_config"])
            settings = VAESettings(**{**state["settings"], "progress": progress, **(overrides or {})})
            out = out if out is not None else Path(path).parent
            trainer = cls(model, out=out, settings=settings, device=device, distributed=distributed)
            trainer.model.load_state_dict(state["model"])
            if trainer.ema is not None:
                trainer.ema.load_state_dict(state["ema"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{path} does not fit genhub's VAE trainer ({type(error).__name__}: {error})") from error
        trainer.optimizer_steps = state["optimizer_steps"]
        trainer.best_elbo = state["best_elbo"]
        return trainer


def read_checkpoint(path) -> dict:
    """A VAE trainer's checkpoint, checked (errors name the file)."""
    return read_checkpoint_state(path, "vae")
