"""Train a GAN with any objective on any dataset of the data layer, write its card, push it.

    python train/gan.py                                          # DCGAN on MNIST
    python train/gan.py --recipe recipes/dcgan-mnist.toml        # the bundled model's recipe
    python train/gan.py --objective wgan-gp --dataset svhn --push --repo-id you/wgan-gp-svhn
    python train/gan.py --objective wgan --arch mlp              # the classic WGAN demo
    python train/gan.py --dataset anime-faces --width 32 --epochs 10
    python train/gan.py --out runs/gan --epochs 20 --resume      # continue runs/gan/checkpoint.pt

Objectives: every name in genhub.objectives (dcgan, wgan, wgan-gp, lsgan, hinge, the f-GANs,
mcgan, gmmn, mmdgan, cramer, fisher, rwgan, ebgan, began, magan); each brings its own optimizer,
n_critic, critic norm and critic kind (a score, a feature vector, or an auto-encoder) unless
overridden. Every epoch writes a fixed-noise grid of the EMA generator to --out/samples,
the loss curves to --out/loss_curves.png and a full checkpoint to --out/checkpoint.pt.
The final EMA generator is evaluated (genhub.evaluation, --eval-samples; --no-eval skips it) and,
with its config and card, goes to --out/model (and the Hub with --push). The training itself
is genhub.training.train_gan.
"""

from __future__ import annotations

import argparse

from genhub.models.gan import ARCHITECTURES
from genhub.objectives import OBJECTIVES, get_objective
from genhub.training.cli import (
    add_common_arguments,
    add_evaluation_arguments,
    check_common_arguments,
    check_positive,
    command_line,
    finish,
    run_cli,
    user_errors,
)
from genhub.training.recipes import parse_with_recipe
from genhub.training.runs import train_gan


def add_gan_arguments(parser: argparse.ArgumentParser) -> None:
    gan = parser.add_argument_group("GAN")
    gan.add_argument("--objective", choices=list(OBJECTIVES), default="dcgan")
    gan.add_argument("--arch", choices=ARCHITECTURES, default="conv", help="conv: DCGAN-style conv nets; mlp: the classic WGAN demo pair")
    gan.add_argument("--latent-dim", type=int, default=100)
    gan.add_argument("--width", type=int, default=64, help="conv channels at full resolution (generator and critic)")
    gan.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512], help="MLP hidden sizes")
    gan.add_argument("--critic-norm", choices=["auto", "batch", "layer", "none"], default="auto",
                     help="conv critic normalization (auto: the objective's; never batch norm with a gradient penalty)")
    gan.add_argument("--image-size", type=int, default=None, help="resize images (default: the dataset's size)")
    gan.add_argument("--channels", type=int, choices=[1, 3], default=None)
    optim = parser.add_argument_group("optimization (default: the objective's recipe)")
    optim.add_argument("--lr", type=float, default=None)
    optim.add_argument("--generator-lr-scale", type=float, default=1.0, help="the generator's learning rate over the critic's")
    optim.add_argument("--n-critic", type=int, default=None, help="critic updates per generator update")
    optim.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--card-note", default=None, help="a sentence for the model card's training section (e.g. the machine)")


def check_gan_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_positive(parser, args, "latent_dim", "width", "n_critic", "lr", "generator_lr_scale", "image_size")
    if any(h < 1 for h in args.hidden):
        parser.error("--hidden sizes must be positive")
    if args.latent_dim > 4096:
        parser.error(f"--latent-dim {args.latent_dim} is too large (at most 4096)")
    if not 0 <= args.ema_decay < 1:
        parser.error("--ema-decay must be in [0, 1)")
    if args.critic_norm == "batch" and get_objective(args.objective).penalty_weight:
        parser.error(f"--objective {args.objective} uses a per-sample gradient penalty: pick --critic-norm layer or none, not batch")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="mnist", epochs=5, batch_size=64, out="runs/gan")
    add_gan_arguments(parser)
    add_evaluation_arguments(parser)
    args = parse_with_recipe(parser, argv, script="gan")
    check_gan_arguments(parser, args)
    check_common_arguments(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    with user_errors():
        run = train_gan(args, command=command_line("train/gan.py", argv))
    finish(run.model, run.folder, run.card, args)
    return run.trainer


if __name__ == "__main__":
    run_cli(main)
