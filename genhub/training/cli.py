"""What every training script shares: the common command-line flags, device and seed
handling, moving uint8 data to the device, and the final save -> card -> push step."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from genhub.models.hub import GenModel, PushError, push_folder


def add_common_arguments(parser: argparse.ArgumentParser, *, dataset: str, epochs: int, batch_size: int, out: str) -> None:
    """Flags every train/*.py script takes, with per-family defaults."""
    group = parser.add_argument_group("data and run")
    group.add_argument("--dataset", default=dataset, help="a genhub dataset name (see genhub.DATASETS), a Hub id or a local folder")
    group.add_argument("--split", default="train", help="training split")
    group.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    group.add_argument("--epochs", type=int, default=epochs)
    group.add_argument("--batch-size", type=int, default=batch_size)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    group.add_argument("--out", default=out, help="output folder: grids, checkpoints and the final model")
    hub = parser.add_argument_group("Hugging Face Hub")
    hub.add_argument("--push", action="store_true", help="push the final model and its card to the Hub")
    hub.add_argument("--repo-id", default=None, help="Hub repository, e.g. user/vae-mnist (required with --push)")
    hub.add_argument("--private", action="store_true", help="create the Hub repository as private")
    hub.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the `hf auth login` token)")


def add_evaluation_arguments(parser: argparse.ArgumentParser, default_samples: int = 2000) -> None:
    """--eval-samples / --no-eval for the evaluation at the end of training (genhub.evaluation);
    the default is sized for a CPU: a few thousand samples take seconds, not minutes."""
    group = parser.add_argument_group("final evaluation (sample metrics into the card)")
    group.add_argument("--eval-samples", type=int, default=default_samples,
                       help="generated and held-out real images compared at the end of training")
    group.add_argument("--no-eval", action="store_true", help="skip the final evaluation")


def check_evaluation_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.no_eval and args.eval_samples < 2:
        parser.error("--eval-samples must be at least 2 (or pass --no-eval)")


def check_push_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fail before training, not after, when --push cannot work for lack of a repo id."""
    if args.push and not args.repo_id:
        parser.error("--push needs --repo-id (e.g. --repo-id your-name/vae-mnist)")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_unit_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1], on whatever device the batch is on."""
    return batch.float().div_(255)


def save_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def finish(model: GenModel, folder: Path, card: dict, args: argparse.Namespace) -> None:
    """Save the final model with its card into `folder`, then push it if asked.

    A failed push prints why and exits with status 2; the local save is complete by then.
    """
    folder = Path(folder)
    if args.push:
        card = {**card, "repo_id": args.repo_id}
    model.save_pretrained(folder, model_card_kwargs=card)
    print(f"saved model, config and card to {folder}")
    if not args.push:
        return
    try:
        url = push_folder(folder, args.repo_id, private=args.private, token=args.token)
    except PushError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print(f"pushed to {url}")


def run_cli(main) -> None:
    """Run a script's main(); a user's mistake (bad dataset, path, config) ends in one clear
    line and exit status 2 instead of a traceback."""
    from genhub.data import DatasetError
    from genhub.models.hub import ModelLoadError

    try:
        main()
    except (DatasetError, ModelLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


def environment_summary(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
