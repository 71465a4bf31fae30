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

from genhub.training.cli import command_line, finish, parse_gan_args, run_cli, user_errors
from genhub.training.runs import train_gan


def parse_args(argv=None):
    return parse_gan_args(argv, description=__doc__)


def main(argv=None):
    args = parse_args(argv)
    with user_errors():
        run = train_gan(args, command=command_line("train/gan.py", argv))
    finish(run.model, run.folder, run.card, args)
    return run.trainer


if __name__ == "__main__":
    run_cli(main)
