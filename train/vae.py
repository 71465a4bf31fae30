"""Train a GenVAE on any dataset of the data layer, evaluate it, write its card, push it.

    python train/vae.py                                   # binarized MNIST, the default recipe
    python train/vae.py --dataset mnist --arch conv       # grey digits, Gaussian likelihood
    python train/vae.py --dataset anime-faces --arch conv --latent-dim 64
    python train/vae.py --push --repo-id you/vae-binarized-mnist

Per epoch it writes a sample grid and reconstructions to --out, keeps the checkpoint with
the best validation ELBO, and at the end reports the validation negative log-likelihood
estimated with k importance samples (IWAE bound, Burda et al. 2016) and the sample metrics
of genhub.evaluation (--eval-samples; --no-eval skips them), all recorded in the card.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from genhub import DATASETS, DatasetError, GenVAE, load_images  # noqa: E402
from genhub.evaluation import evaluate_for_card  # noqa: E402
from genhub.evaluation.metrics import iwae_nll  # noqa: E402
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
    to_unit_range,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="binarized-mnist", epochs=100, batch_size=100, out="runs/vae")
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=["mlp", "conv"], default="conv")
    model.add_argument("--latent-dim", type=int, default=32)
    model.add_argument("--hidden", type=int, nargs="+", default=[512, 256], help="MLP hidden sizes (encoder order)")
    model.add_argument("--conv-width", type=int, default=32)
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
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--val-split", default="auto", help="validation split (auto: validation, else test, else 5%% of train)")
    evaluation.add_argument("--eval-k", type=int, default=1000, help="importance samples for the final NLL estimate")
    evaluation.add_argument("--eval-limit", type=int, default=None, help="estimate the final NLL on the first N validation images")
    evaluation.add_argument("--time-budget", type=float, default=None, help="stop training after this many minutes")
    evaluation.add_argument("--eval-only", action="store_true",
                            help="skip training: evaluate and package the best checkpoint of the run in --out")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    check_push_arguments(parser, args)
    check_evaluation_arguments(parser, args)
    return args


def load_splits(args) -> tuple[torch.Tensor, torch.Tensor, str]:
    """uint8 train and validation images, and the name of the validation split used."""
    options = dict(image_size=args.image_size, channels=args.channels)
    train = load_images(args.dataset, split=args.split, limit=args.limit, **options).images
    candidates = ["validation", "test"] if args.val_split == "auto" else [args.val_split]
    for split in candidates:
        try:
            return train, load_images(args.dataset, split=split, **options).images, split
        except DatasetError as error:
            if args.val_split != "auto" or "has no split" not in str(error):
                raise
    held_out = max(1, len(train) // 20)  # no validation split: hold out 5% of train
    return train[held_out:], train[:held_out], f"{args.split}[:{held_out}]"


@torch.no_grad()
def evaluate_elbo(model: GenVAE, data: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    total = sum(model.elbo(to_unit_range(data[i : i + batch_size])).sum().item() for i in range(0, len(data), batch_size))
    return total / len(data)


def save_images(model: GenVAE, validation: torch.Tensor, path_prefix: Path, seed: int = 0) -> None:
    model.eval()
    model.grid(model.sample(64, seed=seed), nrow=8, scale=2).save(f"{path_prefix}_samples.png")
    originals = to_unit_range(validation[:32])
    pairs = torch.stack([originals, model.reconstruct(originals)], dim=1).flatten(0, 1)  # original, reconstruction, ...
    model.grid(pairs, nrow=8, scale=2).save(f"{path_prefix}_reconstructions.png")


def cosine_decay(step_fraction: float, elapsed_seconds: float, budget_minutes: float | None) -> float:
    """Learning-rate factor from 1 down to 0 over the run: over the epochs, or over the
    time budget when one is set and would end first, so a budgeted run still anneals."""
    progress = step_fraction
    if budget_minutes:
        progress = max(progress, elapsed_seconds / (budget_minutes * 60))
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_model(args, model: GenVAE, train: torch.Tensor, validation: torch.Tensor, out: Path) -> list[dict]:
    """Train, keeping the checkpoint with the best validation ELBO in out/best; the
    per-epoch history goes to out/history.json as it grows (a stopped run keeps it)."""
    device = train.device
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    total_steps = args.epochs * math.ceil(len(train) / args.batch_size)
    best_elbo, history, step = -math.inf, [], 0
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        kl_weight = args.kl_weight * (min(1.0, epoch / args.kl_warmup) if args.kl_warmup else 1.0)
        order = torch.randperm(len(train), device=device)
        progress = tqdm(range(0, len(train), args.batch_size), desc=f"epoch {epoch}/{args.epochs}", leave=False)
        running = None
        for i in progress:
            for group in optimizer.param_groups:
                group["lr"] = args.lr * cosine_decay(step / total_steps, time.time() - start, args.time_budget)
            step += 1
            x = to_unit_range(train[order[i : i + args.batch_size]])
            bound = model.iwae_bound(x, args.train_k) if args.train_k > 1 else model.elbo(x, kl_weight=kl_weight)
            loss = -bound.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            progress.set_postfix(loss=f"{running:.2f}")
        val_elbo = evaluate_elbo(model, validation)
        improved = val_elbo > best_elbo
        if improved:
            best_elbo = val_elbo
            model.save_pretrained(out / "best")
        history.append({"epoch": epoch, "train_loss": running, "val_elbo": val_elbo, "best": improved,
                        "minutes": (time.time() - start) / 60})
        save_json(out / "history.json", {"history": history, "hardware": environment_summary(device)})
        save_images(model, validation, out / "epochs" / f"{epoch:03d}")
        print(f"epoch {epoch}: train loss {running:.2f}, validation -ELBO {-val_elbo:.2f}{' (best)' if improved else ''}, "
              f"{history[-1]['minutes']:.1f} min")
        if args.time_budget and time.time() - start > args.time_budget * 60:
            print(f"time budget of {args.time_budget} min reached after epoch {epoch}")
            break
    return history


def evaluate_and_package(args, train: torch.Tensor, validation: torch.Tensor, val_split: str, out: Path, card_extra: dict | None = None) -> dict:
    """Load out/best, estimate its validation NLL, and save it with its card to out/model.
    `card_extra` adds to or overrides the card's context (train/vaegan.py links its GAN)."""
    device = validation.device
    record = json.loads((out / "history.json").read_text())
    history = record["history"]
    best = max(history, key=lambda entry: entry["val_elbo"])
    model = GenVAE.from_pretrained(out / "best").to(device)
    eval_set = validation[: args.eval_limit] if args.eval_limit else validation
    eval_start = time.time()
    nll = iwae_nll(model, to_unit_range(eval_set), k=args.eval_k, seed=args.seed)["nll"]
    train_minutes = history[-1]["minutes"]
    metrics = {
        "validation_neg_elbo": round(-best["val_elbo"], 2),
        f"validation_nll_iwae_k{args.eval_k}": round(nll, 2),
        "nll_images": len(eval_set),
        "best_epoch": best["epoch"],
        "train_minutes": round(train_minutes, 1),
        "eval_minutes": round((time.time() - eval_start) / 60, 1),
    }
    print(f"validation NLL (IWAE, k={args.eval_k}, {len(eval_set)} images): {nll:.2f} nats; -ELBO {-best['val_elbo']:.2f}")

    final = out / "model"
    final.mkdir(parents=True, exist_ok=True)
    model.grid(model.sample(64, seed=0), nrow=8, scale=2).save(final / "samples.png")
    spec = DATASETS.get(args.dataset)
    card = {
        "model_name": f"GenVAE on {args.dataset}",
        "dataset": args.dataset,
        "dataset_id": spec.hub_id if spec else (args.dataset if not Path(args.dataset).exists() else None),
        "train_split": args.split,
        "num_train": len(train),
        "sample_image": "samples.png",
        "training": {
            "epochs run": len(history), "best epoch": best["epoch"], "batch size": args.batch_size, "learning rate": args.lr,
            "schedule": "Adam, cosine decay over the epochs or the time budget", "KL warm-up epochs": args.kl_warmup,
            "training bound k": args.train_k, "seed": args.seed, "hardware": record["hardware"],
            "training time": f"{train_minutes:.1f} min",
        },
        "metrics": {
            f"validation -ELBO ({val_split}, {len(validation)} images, nats)": f"{-best['val_elbo']:.2f}",
            f"validation NLL, IWAE k={args.eval_k} ({len(eval_set)} images, nats)": f"{nll:.2f}",
        },
        "metrics_note": "The NLL is the importance-sampled bound of Burda et al. (2016), an upper bound on the true "
                        "negative log-likelihood that tightens as k grows.",
    }
    if not args.no_eval:  # sample quality; the NLL above is the held-out likelihood, so not recomputed here
        card = evaluate_for_card(model, args.dataset, card, final, num_samples=args.eval_samples, seed=args.seed)
    finish(model, final, {**card, **(card_extra or {})}, args)
    save_json(out / "metrics.json", {**metrics, "history": history, "args": vars(args)})
    return metrics


def main(argv=None, card_extra: dict | None = None) -> dict:
    args = parse_args(argv)
    seed_everything(args.seed)
    device = pick_device(args.device)
    out = Path(args.out)
    (out / "epochs").mkdir(parents=True, exist_ok=True)

    train, validation, val_split = load_splits(args)
    train, validation = train.to(device), validation.to(device)  # uint8 on the device; scaled per batch
    if not args.eval_only:
        binary = bool(((train == 0) | (train == 255)).all())
        likelihood = ("bernoulli" if binary else "gaussian") if args.likelihood == "auto" else args.likelihood
        model = GenVAE(
            image_shape=tuple(train.shape[1:]), latent_dim=args.latent_dim, architecture=args.arch,
            hidden_dims=tuple(args.hidden), conv_width=args.conv_width, likelihood=likelihood, prior=args.prior,
        ).to(device)
        print(f"{len(train)} train / {len(validation)} {val_split} images {tuple(train.shape[1:])}, {likelihood} likelihood, "
              f"{model.num_parameters():,} parameters, on {environment_summary(device)}")
        train_model(args, model, train, validation, out)
    elif not (out / "history.json").exists():
        raise ValueError(f"--eval-only needs a finished or stopped run in {out} (history.json and best/)")
    return evaluate_and_package(args, train, validation, val_split, out, card_extra)


if __name__ == "__main__":
    run_cli(main)
