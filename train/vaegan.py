"""Pre-train a conv VAE, then train a GAN whose generator starts from the VAE's decoder.

    python train/vaegan.py --dataset anime-faces                  # runs/vaegan/{vae,gan}/model
    python train/vaegan.py --dataset anime-faces --push --repo-id you/vaegan-anime-faces --vae-repo-id you/vae-anime-faces
    python train/vaegan.py --dataset comic-faces --objective hinge --width 32 --latent-dim 128

Phase 1 is train/vae.py: a conv VAE with a Gaussian likelihood, the standard N(0, I) prior
(the GAN samples z ~ N(0, I)) and --kl-weight, into --out/vae. Phase 2 builds a generator of
the decoder's architecture (transposed convs without batch norm, tanh output), copies the
decoder in (genhub.training.warm_start.gan_from_vae: before the first GAN step it draws exactly the
VAE's mean images) and trains it with genhub's GAN trainer and --objective into --out/gan.
Both model cards state the pre-training and link each other: by Hub id when --repo-id and
--vae-repo-id are given (with or without --push), else by relative folder path.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402

from genhub import GenVAE, PushError, load_images, push_folder  # noqa: E402
from genhub.evaluation import evaluate_for_card  # noqa: E402
from genhub.models.gan import build_critic  # noqa: E402
from genhub.objectives import OBJECTIVES, get_objective  # noqa: E402
from genhub.training.gan import CHECKPOINT_NAME, GANTrainer, TrainingDiverged, TrainSettings  # noqa: E402
from genhub.training.cli import (  # noqa: E402
    add_common_arguments,
    add_evaluation_arguments,
    check_evaluation_arguments,
    check_push_arguments,
    environment_summary,
    finish,
    pick_device,
    run_cli,
    save_json,
    seed_everything,
)
from genhub.training.warm_start import gan_from_vae  # noqa: E402

TRAIN_DIR = Path(__file__).resolve().parent


def load_script(name: str):
    """train/<name>.py as a module, to reuse its pieces."""
    spec = importlib.util.spec_from_file_location(f"train_{name}", TRAIN_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="anime-faces", epochs=5, batch_size=64, out="runs/vaegan")
    parser.add_argument("--vae-repo-id", default=None, help="Hub repository of the pre-trained VAE (required with --push; --repo-id is the GAN's)")
    model = parser.add_argument_group("model (the VAE decoder and the generator share it)")
    model.add_argument("--latent-dim", type=int, default=64)
    model.add_argument("--width", type=int, default=32, help="conv channels at full resolution (VAE, generator and critic)")
    model.add_argument("--image-size", type=int, default=None, help="square side; non-square images are center-cropped (default: the dataset's size)")
    model.add_argument("--channels", type=int, choices=[1, 3], default=None)
    vae = parser.add_argument_group("phase 1: VAE pre-training (train/vae.py)")
    vae.add_argument("--vae-epochs", type=int, default=10)
    vae.add_argument("--vae-lr", type=float, default=1e-3)
    vae.add_argument("--kl-weight", type=float, default=1.0, help="weight of the KL term (beta); 1 trains the true ELBO")
    vae.add_argument("--kl-warmup", type=int, default=0, help="epochs over which the KL weight ramps up from 0")
    vae.add_argument("--vae-eval-k", type=int, default=100, help="importance samples for the VAE's validation NLL")
    vae.add_argument("--vae-eval-limit", type=int, default=500, help="validation images for the VAE's NLL")
    gan = parser.add_argument_group("phase 2: GAN from the decoder (the objective's recipe unless overridden)")
    gan.add_argument("--objective", choices=list(OBJECTIVES), default="dcgan")
    gan.add_argument("--lr", type=float, default=None)
    gan.add_argument("--generator-lr-scale", type=float, default=2.0,
                     help="the warm-started generator's learning rate over the critic's (2: it reaches the cold start's final SWD "
                          "sooner in benchmarks/warm_start.py, see docs/warm_start)")
    gan.add_argument("--n-critic", type=int, default=None)
    gan.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 on a busy shared CPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log files)")
    parser.add_argument("--card-note", default=None, help="a sentence for the GAN card's training section (e.g. the machine)")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    check_push_arguments(parser, args)
    check_evaluation_arguments(parser, args)
    if args.push and not args.vae_repo_id:
        parser.error("--push needs --vae-repo-id too (e.g. --vae-repo-id your-name/vae-anime-faces): both models are pushed")
    for name in ("epochs", "vae_epochs", "batch_size", "latent_dim", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if not args.generator_lr_scale > 0:
        parser.error("--generator-lr-scale must be positive")
    return args


def link(repo_id: str | None, target: Path, card_folder: Path) -> str:
    """A markdown link from the card in `card_folder` to the other model."""
    if repo_id:
        return f"[{repo_id}](https://huggingface.co/{repo_id})"
    relative = os.path.relpath(target, card_folder)
    return f"[{relative}]({relative})"


def vae_argv(args, out: Path) -> list[str]:
    """train/vae.py's command line for phase 1 (it saves, the push happens at the end)."""
    argv = ["--dataset", str(args.dataset), "--split", args.split, "--epochs", str(args.vae_epochs), "--batch-size", str(args.batch_size),
            "--seed", str(args.seed), "--device", args.device, "--out", str(out), "--arch", "conv", "--latent-dim", str(args.latent_dim),
            "--conv-width", str(args.width), "--likelihood", "gaussian", "--prior", "standard", "--lr", str(args.vae_lr),
            "--kl-weight", str(args.kl_weight), "--kl-warmup", str(args.kl_warmup), "--eval-k", str(args.vae_eval_k),
            "--eval-limit", str(args.vae_eval_limit), *(["--no-eval"] if args.no_eval else ["--eval-samples", str(args.eval_samples)])]
    for flag, value in (("--limit", args.limit), ("--image-size", args.image_size), ("--channels", args.channels)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    out = Path(args.out)
    vae_folder, gan_folder = out / "vae" / "model", out / "gan" / "model"
    if (out / "gan" / CHECKPOINT_NAME).exists():
        raise SystemExit(f"error: {out / 'gan' / CHECKPOINT_NAME} exists; choose another --out")
    command = "python train/vaegan.py " + shlex.join(argv if argv is not None else sys.argv[1:])

    # Phase 1: the VAE, with a card that names the GAN it seeds.
    vae_card = {"warm_start_gan": link(args.repo_id, gan_folder, vae_folder), "command": command}
    if args.push:  # the usage snippet names the Hub repository (train/vae.py itself does not push here)
        vae_card["repo_id"] = args.vae_repo_id
    vae_metrics = load_script("vae").main(vae_argv(args, out / "vae"), card_extra=vae_card)
    vae = GenVAE.from_pretrained(vae_folder).to(device)

    # Phase 2: the GAN from the decoder, trained by the one GAN trainer.
    seed_everything(args.seed)  # the critic's initial weights
    data = load_images(args.dataset, split=args.split, limit=args.limit, image_size=args.image_size, channels=args.channels)
    objective = get_objective(args.objective)
    critic = build_critic(objective, data.image_shape, width=args.width)  # the critic kind the objective declares
    settings = TrainSettings(batch_size=args.batch_size, n_critic=args.n_critic, lr=args.lr, generator_lr_scale=args.generator_lr_scale,
                             ema_decay=args.ema_decay, seed=args.seed, progress=not args.no_progress)
    trainer = GANTrainer(gan_from_vae(vae, args.objective), critic, objective, out=out / "gan", settings=settings, device=device)
    trainer.commands.append(command)
    print(f"GAN from the VAE decoder: {len(data)} images {data.image_shape}, objective {objective.name}, "
          f"{trainer.model.num_parameters():,} generator parameters, on {environment_summary(device)}", flush=True)
    try:
        trainer.fit(data.images, epochs=args.epochs)
    except TrainingDiverged as error:
        raise SystemExit(f"error: {error}") from error

    gan_folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "gan" / "samples" / f"epoch_{trainer.epoch:03d}.png", gan_folder / "samples.png")
    save_json(out / "gan" / "history.json", {"epochs": trainer.epoch, "train_seconds": trainer.train_seconds, "history": trainer.history})
    card = load_script("gan").card_context(args, trainer, len(data), device)
    card.update(
        model_name=f"{type(trainer.model).__name__} on {args.dataset}, warm-started from a VAE decoder",
        script="train/vaegan.py",
        pretrained_vae=link(args.vae_repo_id, vae_folder, gan_folder),
        pretraining=f"{vae_metrics['best_epoch']} of {args.vae_epochs} epochs kept (best validation ELBO), "
                    f"-ELBO {vae_metrics['validation_neg_elbo']:.1f} nats, KL weight {args.kl_weight:g}, "
                    f"{vae_metrics['train_minutes']:.1f} min wall time",
    )
    model = trainer.sampling_model()
    if not args.no_eval:
        card = evaluate_for_card(model, args.dataset, card, gan_folder, num_samples=args.eval_samples, seed=args.seed)
    finish(model, gan_folder, card, args)  # saves, pushes the GAN (exits 2 if that fails)
    if args.push:
        try:
            print(f"pushed the VAE to {push_folder(vae_folder, args.vae_repo_id, private=args.private, token=args.token)}")
        except PushError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from error
    return {"vae": vae_metrics, "vae_folder": vae_folder, "gan_folder": gan_folder, "trainer": trainer}


if __name__ == "__main__":
    run_cli(main)
