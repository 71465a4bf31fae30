"""Pre-train a conv VAE, then train a GAN whose generator starts from the VAE's decoder.

    python train/vaegan.py --dataset anime-faces                  # runs/vaegan/{vae,gan}/model
    python train/vaegan.py --recipe recipes/vaegan-anime-faces.toml   # the bundled model's recipe
    python train/vaegan.py --dataset anime-faces --push --repo-id you/vaegan-anime-faces --vae-repo-id you/vae-anime-faces
    python train/vaegan.py --dataset comic-faces --objective hinge --width 32 --latent-dim 128

Phase 1 is genhub.training.train_vae: a conv VAE with a Gaussian likelihood, the standard
N(0, I) prior (the GAN samples z ~ N(0, I)) and --kl-weight, into --out/vae. Phase 2 builds a
generator of the decoder's architecture (transposed convs without batch norm, tanh output),
copies the decoder in (genhub.training.gan_from_vae: before the first GAN step it draws exactly
the VAE's mean images) and trains it with genhub.training.train_gan and --objective into
--out/gan. With --fit-prior K the saved VAE samples from K Gaussians fitted to its aggregate
posterior (genhub.models.vae.fit_mixture_prior); the GAN still starts from its decoder. Both
model cards state the pre-training and link each other: by Hub id when --repo-id and --vae-repo-id
are given (with or without --push), else by relative folder path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from genhub.models.vae import GenVAE
from genhub.training.base import CHECKPOINT_NAME
from genhub.training.cli import command_line, finish, parse_vaegan_args, run_cli, user_errors
from genhub.training.runs import Run, dataset_card, train_gan, train_vae
from genhub.training.vae import BEST_FOLDER
from genhub.training.warm_start import gan_from_vae


def link(repo_id: str | None, target: Path, card_folder: Path) -> str:
    """A markdown link from the card in `card_folder` to the other model."""
    if repo_id:
        return f"[{repo_id}](https://huggingface.co/{repo_id})"
    relative = os.path.relpath(target, card_folder)
    return f"[{relative}]({relative})"


def phase_args(args, **fields) -> argparse.Namespace:
    """One phase's settings: this script's, with the phase's own fields."""
    return argparse.Namespace(**{**vars(args), "resume": False, "recipe": args.recipe, **fields})


def main(argv=None) -> dict:
    args = parse_vaegan_args(argv, description=__doc__)
    out = Path(args.out)
    vae_folder, gan_folder = out / "vae" / "model", out / "gan" / "model"
    if (out / "gan" / CHECKPOINT_NAME).exists() or (out / "vae" / CHECKPOINT_NAME).exists():
        raise SystemExit(f"error: {out} already holds a VAE-then-GAN run; choose another --out")
    command = command_line("train/vaegan.py", argv)

    with user_errors():
        vae, gan = vae_then_gan(args, out, command, vae_folder, gan_folder)
    finish(gan.model, gan.folder, gan.card, args)  # saves, pushes the GAN (exits 2 if that fails)
    if not args.vae_from:  # a reused VAE stays as its own run saved (and pushed) it
        finish(vae.model, vae.folder, vae.card, args, repo_id=args.vae_repo_id)
    return {"vae": vae.metrics, "vae_folder": vae_folder, "gan_folder": gan_folder, "trainer": gan.trainer}


def reuse_vae(args, out: Path) -> Run:
    """Phase 1 of an earlier run (--vae-from RUN): RUN/vae copied into out/vae, as it was saved
    (its card links the GAN by the same relative path)."""
    source = Path(args.vae_from) / "vae"
    if not (source / "model" / "config.json").is_file() or not (source / "metrics.json").is_file():
        raise ValueError(f"--vae-from {args.vae_from}: no finished train/vaegan.py VAE phase there ({source}/model and metrics.json)")
    model = GenVAE.from_pretrained(source / "model")
    width = model._hub_mixin_config.get("width")
    if (model.latent_dim, width) != (args.latent_dim, args.width):
        raise ValueError(f"--vae-from {args.vae_from}: its VAE has latent size {model.latent_dim} and width {width}; "
                         f"the flags give {args.latent_dim} and {args.width}")  # fmt: skip
    shutil.copytree(source, out / "vae", dirs_exist_ok=True)
    metrics = json.loads((out / "vae" / "metrics.json").read_text())
    name = dataset_card(args.dataset, args.split, 0)["dataset"]
    return Run(model=model, folder=out / "vae" / "model", card={"dataset": name}, metrics=metrics)


def vae_then_gan(args, out: Path, command: str, vae_folder: Path, gan_folder: Path):
    """The pipeline: two library calls, the VAE's decoder handed to the GAN."""
    vae_card = {"warm_start_gan": link(args.repo_id, gan_folder, vae_folder), "command": command, "script": "train/vaegan.py"}
    if args.push:  # the usage snippet names the Hub repository
        vae_card["repo_id"] = args.vae_repo_id
    vae = reuse_vae(args, out) if args.vae_from else train_vae(
        phase_args(
            args,
            out=out / "vae",
            epochs=args.vae_epochs,
            arch="conv",
            hidden=[512, 256],
            likelihood="gaussian",
            prior="standard",
            lr=args.vae_lr,
            train_k=1,
            time_budget=None,
            val_split="auto",
            eval_only=False,
            eval_k=args.vae_eval_k,
            eval_limit=args.vae_eval_limit,
            precision="bf16" if args.precision == "bf16" else "fp32",  # "auto": the VAE's own default, fp32
        ),
        card_extra=vae_card,
    )
    # Phase 2: the GAN from the decoder, trained by the one GAN trainer.
    metrics = vae.metrics
    gan_card = {
        "script": "train/vaegan.py",
        "pretrained_vae": link(args.vae_repo_id, vae_folder, gan_folder),
        "pretraining": f"{metrics['best_epoch']} of {len(metrics.get('history', [])) or args.vae_epochs} epochs kept "
        "(best validation ELBO), "
        f"-ELBO {metrics['validation_neg_elbo']:.1f} nats, {metrics['train_minutes']:.1f} min of training"
        + (f", taken from the earlier run {args.vae_from}" if args.vae_from else f", KL weight {args.kl_weight:g}"),
    }
    # The GAN draws z ~ N(0, I): with --fit-prior it starts from the VAE as trained, under that prior
    # (out/vae/best; the decoder is the same).
    trained = GenVAE.from_pretrained(out / "vae" / BEST_FOLDER) if args.fit_prior else vae.model
    generator = gan_from_vae(trained, args.objective)
    gan_card["model_name"] = f"{type(generator).__name__} on {vae.card['dataset']}, warm-started from a VAE decoder"
    gan = train_gan(
        phase_args(args, out=out / "gan", arch="conv", hidden=[512, 512, 512]),
        generator=generator,
        command=command,
        card_extra=gan_card,
    )
    return vae, gan


if __name__ == "__main__":
    run_cli(main)
