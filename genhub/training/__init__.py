"""Training: one trainer base, the GAN and VAE trainers on it, recipes, and whole runs.

from genhub.training import GANTrainer, VAETrainer, Every
trainer = GANTrainer(model, critic, "wgan-gp", out="runs/wgan")
trainer.fit(images_uint8, seconds=600, clock="process", callbacks=[Every(score, seconds=30)])

from genhub.training import recipe_args, train_gan
run = train_gan(recipe_args("recipes/dcgan-mnist.toml", epochs=1))   # what train/gan.py does
"""

from genhub.training.base import (
    CHECKPOINT_NAME,
    Budget,
    Callback,
    CheckpointError,
    EarlyStop,
    Every,
    Settings,
    Trainer,
    TrainingDiverged,
    atomic_write,
    save_json,
)
from genhub.training.cli import parse_gan_args, parse_vae_args, parse_vaegan_args, recipe_args
from genhub.training.gan import GANTrainer, TrainSettings, refresh_batch_norm
from genhub.training.recipes import RecipeError, read_recipe
from genhub.training.runs import Run, build_gan, build_vae, gan_settings, train_for_budget, train_gan, train_vae, vae_settings
from genhub.training.vae import VAESettings, VAETrainer
from genhub.training.warm_start import gan_from_vae

__all__ = [
    "CHECKPOINT_NAME",
    "Budget",
    "Callback",
    "CheckpointError",
    "EarlyStop",
    "Every",
    "GANTrainer",
    "RecipeError",
    "Run",
    "Settings",
    "TrainSettings",
    "Trainer",
    "TrainingDiverged",
    "VAESettings",
    "VAETrainer",
    "atomic_write",
    "build_gan",
    "build_vae",
    "gan_from_vae",
    "gan_settings",
    "parse_gan_args",
    "parse_vae_args",
    "parse_vaegan_args",
    "read_recipe",
    "recipe_args",
    "refresh_batch_norm",
    "save_json",
    "train_for_budget",
    "train_gan",
    "train_vae",
    "vae_settings",
]
