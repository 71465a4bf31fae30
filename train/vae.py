"""Train a GenVAE on any dataset of the data layer, evaluate it, write its card, push it.

    python train/vae.py                                   # binarized MNIST, the default recipe
    python train/vae.py --recipe recipes/vae-binarized-mnist.toml     # the bundled model's recipe
    python train/vae.py --dataset mnist --arch conv       # grey digits, Gaussian likelihood
    python train/vae.py --dataset anime-faces --latent-dim 64
    python train/vae.py --flow-steps 4 --hierarchy-dim 16       # an IAF posterior on a two-level VAE
    python train/vae.py --out runs/vae --epochs 200 --resume          # continue runs/vae exactly
    python train/vae.py --push --repo-id you/vae-binarized-mnist

Per epoch it writes a sample grid and reconstructions to --out/epochs, keeps the model with
the best validation ELBO in --out/best and a checkpoint in --out/checkpoint.pt, and at the end
reports the validation negative log-likelihood estimated with k importance samples (IWAE bound,
Burda et al. 2016) and the sample metrics of genhub.evaluation (--eval-samples; --no-eval skips
them), all recorded in the card. The training itself is genhub.training.train_vae.
"""

from __future__ import annotations

from genhub.training.cli import command_line, finish, parse_vae_args, run_cli
from genhub.training.runs import train_vae


def main(argv=None) -> dict:
    args = parse_vae_args(argv, description=__doc__)
    run = train_vae(args, command=command_line("train/vae.py", argv))  # errors reach run_cli: one line, exit 2
    finish(run.model, run.folder, run.card, args)
    return run.metrics


if __name__ == "__main__":
    run_cli(main)
