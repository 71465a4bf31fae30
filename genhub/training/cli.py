"""What every training script shares: the common command-line flags and their checks, the
final save -> card -> push step, and clear errors instead of tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import math
import shlex
import sys
from pathlib import Path

from genhub.models.hub import GenModel, PushError, push_folder
from genhub.runtime import pick_device
from genhub.training.recipes import add_recipe_argument


def add_common_arguments(parser: argparse.ArgumentParser, *, dataset: str, epochs: int, batch_size: int, out: str) -> None:
    """Flags every train/*.py script takes, with per-family defaults."""
    add_recipe_argument(parser)
    group = parser.add_argument_group("data and run")
    group.add_argument("--dataset", default=dataset, help="a genhub dataset name (see genhub.DATASETS), a Hub id or a local folder")
    group.add_argument("--split", default="train", help="training split")
    group.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    group.add_argument("--epochs", type=int, default=epochs)
    group.add_argument("--batch-size", type=int, default=batch_size)
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    group.add_argument("--out", default=out, help="output folder: grids, checkpoints and the final model")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint, up to the budget in total")
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch (on a busy shared CPU, 1 is often much faster)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar (log files)")
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


def check_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str, allow_none: bool = True) -> None:
    """Each named flag is a positive number (or unset, where None is its default)."""
    for name in names:
        value = getattr(args, name)
        if value is None and allow_none:
            continue
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            kind = "a positive integer" if isinstance(value, int) else "positive"
            parser.error(f"--{name.replace('_', '-')} must be {kind}, got {value!r}")


def check_common_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What every script checks before building anything: sizes, seed, device, output folder, push."""
    check_positive(parser, args, "epochs", "batch_size", "limit")
    if not 0 <= args.seed < 2**63:
        parser.error(f"--seed must be a whole number from 0 to 2**63 - 1, got {args.seed}")
    try:
        pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".genhub-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        parser.error(f"--out {out} cannot be written ({error.strerror or error})")
    check_push_arguments(parser, args)
    check_evaluation_arguments(parser, args)


def finish(model: GenModel, folder: Path, card: dict, args: argparse.Namespace, repo_id: str | None = None) -> None:
    """Save the final model with its card into `folder`, then push it to `repo_id` (default
    `args.repo_id`) if `args.push`.

    A failed push prints why and exits with status 2; the local save is complete by then.
    """
    folder = Path(folder)
    repo_id = repo_id or args.repo_id
    if args.push:
        card = {**card, "repo_id": repo_id}
    model.save_pretrained(folder, model_card_kwargs=card)
    print(f"saved model, config and card to {folder}")
    if not args.push:
        return
    try:
        url = push_folder(folder, repo_id, private=args.private, token=args.token)
    except PushError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print(f"pushed to {url}")


@contextlib.contextmanager
def user_errors():
    """Turn a user's mistake (bad dataset, path, config, checkpoint) or a diverged run inside the
    block into SystemExit with one clear line, "error: ...", instead of a traceback."""
    from genhub.data import DatasetError
    from genhub.models.hub import ModelLoadError
    from genhub.training.base import CheckpointError, TrainingDiverged

    try:
        yield
    except (DatasetError, ModelLoadError, CheckpointError, TrainingDiverged, ValueError) as error:
        raise SystemExit(f"error: {error}") from error


def run_cli(main) -> None:
    """Run a script's main(); a user's mistake (bad dataset, path, config, checkpoint) or a
    diverged run ends in one clear line and exit status 2 instead of a traceback."""
    from genhub.data import DatasetError
    from genhub.models.hub import ModelLoadError
    from genhub.training.base import CheckpointError, TrainingDiverged

    try:
        main()
    except (DatasetError, ModelLoadError, CheckpointError, TrainingDiverged, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


def command_line(script: str, argv=None) -> str:
    """The command that ran, shell-quoted, as cards record it."""
    return shlex.join(["python", script, *(sys.argv[1:] if argv is None else argv)])
