"""Train a GenVAE on any dataset of the data layer, evaluate it, write its card, push it.

    python train/vae.py                                   # binarized MNIST, the default recipe
    python train/vae.py --recipe recipes/vae-binarized-mnist.toml     # the bundled model's recipe
    python train/vae.py --dataset mnist --arch conv       # grey digits, Gaussian likelihood
    python train/vae.py --dataset anime-faces --latent-dim 64
    python train/vae.py --out runs/vae --epochs 200 --resume          # continue runs/vae exactly
    python train/vae.py --push --repo-id you/vae-binarized-mnist

Per epoch it writes a sample grid and reconstructions to --out/epochs, keeps the model with
the best validation ELBO in --out/best and a checkpoint in --out/checkpoint.pt, and at the end
reports the validation negative log-likelihood estimated with k importance samples (IWAE bound,
Burda et al. 2016) and the sample metrics of genhub.evaluation (--eval-samples; --no-eval skips
them), all recorded in the card. The training itself is genhub.training.train_vae.
"""

from __future__ import annotations

import argparse

from genhub.training.cli import (
    add_common_arguments,
    add_evaluation_arguments,
    check_common_arguments,
    check_positive,
    command_line,
    finish,
    run_cli,
)
from genhub.training.recipes import parse_with_recipe
from genhub.training.runs import train_vae


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="binarized-mnist", epochs=100, batch_size=100, out="runs/vae")
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=["conv", "mlp"], default="conv")
    model.add_argument("--latent-dim", type=int, default=32)
    model.add_argument("--hidden", type=int, nargs="+", default=[512, 256], help="MLP hidden sizes (encoder order)")
    model.add_argument("--width", type=int, default=32, help="conv channels at full resolution")
    model.add_argument("--likelihood", choices=["auto", "bernoulli", "gaussian"], default="auto",
                       help="auto: Bernoulli when every pixel is 0 or 255, else Gaussian")
    model.add_argument("--prior", choices=["standard", "mog", "vamp"], default="mog")
    model.add_argument("--image-size", type=int, default=None, help="resize images (default: the dataset's size)")
    model.add_argument("--channels", type=int, choices=[1, 3], default=None)
    optim = parser.add_argument_group("optimization")
    optim.add_argument("--lr", type=float, default=1e-3)
    optim.add_argument("--kl-warmup", type=int, default=0, help="epochs over which the KL weight ramps from 0 to 1")
    optim.add_argument("--kl-weight", type=float, default=1.0, help="final KL weight (beta); 1 trains the true ELBO")
    optim.add_argument("--train-k", type=int, default=1, help="importance samples in the training bound (1 = ELBO, >1 = IWAE)")
    optim.add_argument("--time-budget", type=float, default=None, help="stop training after this many minutes of training")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--val-split", default="auto", help="validation split (auto: validation, else test, else 5%% of train)")
    evaluation.add_argument("--eval-k", type=int, default=1000, help="importance samples for the final NLL estimate")
    evaluation.add_argument("--eval-limit", type=int, default=None, help="estimate the final NLL on the first N validation images")
    evaluation.add_argument("--eval-only", action="store_true",
                            help="skip training: evaluate and package the best checkpoint of the run in --out")
    add_evaluation_arguments(parser)
    args = parse_with_recipe(parser, argv, script="vae")
    check_positive(parser, args, "latent_dim", "width", "lr", "train_k", "eval_k", "eval_limit", "time_budget", "image_size")
    if any(h < 1 for h in args.hidden):
        parser.error("--hidden sizes must be positive")
    if not args.kl_weight >= 0:
        parser.error(f"--kl-weight must be >= 0, got {args.kl_weight}")
    if args.kl_warmup < 0:
        parser.error(f"--kl-warmup must be >= 0 epochs, got {args.kl_warmup}")
    if args.latent_dim > 4096:
        parser.error(f"--latent-dim {args.latent_dim} is too large (at most 4096)")
    check_common_arguments(parser, args)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    run = train_vae(args, command=command_line("train/vae.py", argv))  # errors reach run_cli: one line, exit 2
    finish(run.model, run.folder, run.card, args)
    return run.metrics


if __name__ == "__main__":
    run_cli(main)
