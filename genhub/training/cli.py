"""What every training script shares: the common command-line flags and their checks, the
final save -> card -> push step, and clear errors instead of tracebacks."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
from pathlib import Path

from genhub.models.gan import ARCHITECTURES
from genhub.models.hub import GenModel, PushError, push_folder
from genhub.models.nets import MAX_EXTRA_CONVS, UPSAMPLES, check_extra_convs
from genhub.objectives import OBJECTIVES, get_objective
from genhub.runtime import pick_device
from genhub.training.base import PRECISIONS, SCHEDULES
from genhub.training.distributed import TRACKERS, is_main_process
from genhub.training.recipes import add_recipe_argument, parse_with_recipe, read_recipe


def add_common_arguments(parser: argparse.ArgumentParser, *, dataset: str, epochs: int, batch_size: int, out: str) -> None:
    """Flags every train/*.py script takes, with per-family defaults."""
    add_recipe_argument(parser)
    group = parser.add_argument_group("data and run")
    group.add_argument("--dataset", default=dataset, help="a genhub dataset name (see genhub.DATASETS), a Hub id or a local folder")
    group.add_argument("--split", default="train", help="training split")
    group.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick runs)")
    group.add_argument(
        "--holdout",
        type=float,
        default=None,
        help="keep this fraction of the training images apart (fixed, seed 0) to evaluate against and to "
        "measure memorisation: for small sets with no test split (svhn, comic-faces)",
    )
    group.add_argument("--epochs", type=int, default=epochs)
    group.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help="the global batch: under `accelerate launch --num_processes N` each process takes batch-size / N of it",
    )
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    group.add_argument("--out", default=out, help="output folder: grids, checkpoints and the final model")
    group.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint, up to the budget in total")
    group.add_argument(
        "--allow-changes",
        action="store_true",
        help="with --resume: allow a different dataset, objective, architecture or batch size than the checkpoint's",
    )
    group.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (on a busy shared CPU, 1 is often much faster; 0: torch's default)"
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bar (log files)")
    group.add_argument("--save-every", type=int, default=1, help="epochs between sample grids and checkpoints (the last always saves)")
    group.add_argument("--card-note", default=None, help="a sentence for the model card's training section (e.g. the machine)")
    scale = parser.add_argument_group("many devices and experiment tracking (accelerate)")
    scale.add_argument(
        "--sync-bn", action="store_true", help="data-parallel: batch norm over the global batch, not each process's part of it"
    )
    scale.add_argument(
        "--report-to",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        help=f"trackers for losses, metrics and sample grids, comma-separated: {', '.join(TRACKERS)}, all (whatever is "
        "installed) or none (the default); logs of local trackers go to --out",
    )
    hub = parser.add_argument_group("Hugging Face Hub")
    hub.add_argument("--push", action="store_true", help="push the final model and its card to the Hub")
    hub.add_argument("--repo-id", default=None, help="Hub repository, e.g. user/vae-mnist (required with --push)")
    hub.add_argument("--private", action="store_true", help="create the Hub repository as private")
    hub.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the `hf auth login` token)")


def add_evaluation_arguments(parser: argparse.ArgumentParser, default_samples: int = 2000) -> None:
    """--eval-samples / --no-eval for the evaluation at the end of training (genhub.evaluation);
    the default is sized for a CPU: a few thousand samples take seconds, not minutes."""
    group = parser.add_argument_group("final evaluation (sample metrics into the card)")
    group.add_argument(
        "--eval-samples", type=int, default=default_samples, help="generated and held-out real images compared at the end of training"
    )
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


def check_output_folder(parser: argparse.ArgumentParser, folder) -> None:
    """--out is a folder this process can write (checked before anything is trained)."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        # One probe per process: under a launcher every rank runs this check on the same folder.
        probe = out / f".genhub-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink(missing_ok=True)
    except OSError as error:
        parser.error(f"--out {out} cannot be written ({error.strerror or error})")


def check_common_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What every script checks before building anything: sizes, seed, device, output folder, push."""
    check_positive(parser, args, "epochs", "batch_size", "limit", "save_every")
    if args.holdout == 0:  # "--holdout 0" switches off a recipe's held-out part (full-scale data has a test split)
        args.holdout = None
    if args.holdout is not None and not 0 < args.holdout < 0.5:
        parser.error(f"--holdout must be a fraction in (0, 0.5), or 0 for none, got {args.holdout}")
    if not 0 <= args.seed < 2**63:
        parser.error(f"--seed must be a whole number from 0 to 2**63 - 1, got {args.seed}")
    try:
        pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    check_output_folder(parser, args.out)
    check_push_arguments(parser, args)
    check_evaluation_arguments(parser, args)


def finish(model: GenModel, folder: Path, card: dict, args: argparse.Namespace, repo_id: str | None = None) -> None:
    """Save the final model with its card into `folder`, then push it to `repo_id` (default
    `args.repo_id`) if `args.push`.

    A failed push prints why and exits with status 2; the local save is complete by then.
    """
    if not is_main_process():  # a data-parallel run's other processes trained; the main one saves and pushes
        return
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


# -- the scripts' flags: train/vae.py, train/gan.py, train/vaegan.py ---------------------------
def parse_vae_args(argv=None, description: str | None = None) -> argparse.Namespace:
    """train/vae.py's flags (a recipe's fields), checked before anything is built."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="binarized-mnist", epochs=100, batch_size=100, out="runs/vae")
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=["conv", "mlp"], default="conv")
    model.add_argument("--latent-dim", type=int, default=32)
    model.add_argument("--hidden", type=int, nargs="+", default=[512, 256], help="MLP hidden sizes (encoder order)")
    model.add_argument("--width", type=int, default=32, help="conv channels at full resolution")
    model.add_argument(
        "--likelihood",
        choices=["auto", "bernoulli", "gaussian"],
        default="auto",
        help="auto: Bernoulli when every pixel is 0 or 255, else Gaussian",
    )
    model.add_argument("--prior", choices=["standard", "mog", "vamp"], default="mog")
    model.add_argument("--flow-steps", type=int, default=0, help="inverse autoregressive flow steps on q(z|x) (0: none)")
    model.add_argument("--hierarchy-dim", type=int, default=0, help="a two-level VAE: the top level's dimensions (0: one level)")
    model.add_argument("--aux-hidden", type=int, default=256, help="hidden units of the flow's and the hierarchy's networks")
    model.add_argument(
        "--pixelcnn-layers", type=int, default=0, help="an autoregressive decoder: gated PixelCNN layers (0: none; binary images)"
    )
    add_fit_prior_argument(model)
    model.add_argument("--image-size", type=int, default=None, help="resize images (default: the dataset's size)")
    model.add_argument("--channels", type=int, choices=[1, 3], default=None)
    model.add_argument(
        "--init-from",
        default=None,
        help="start from this GenVAE's weights (a model folder or Hub id), e.g. a finished run's out/model: a second "
        "stage with a fresh optimizer and schedule; its config must be the one the other flags build",
    )
    optim = parser.add_argument_group("optimization")
    optim.add_argument("--lr", type=float, default=1e-3)
    optim.add_argument("--kl-warmup", type=int, default=0, help="epochs over which the KL weight ramps from 0 to 1")
    optim.add_argument("--kl-weight", type=float, default=1.0, help="final KL weight (beta); 1 trains the true ELBO")
    optim.add_argument("--free-bits", type=float, default=0.0, help="nats: the batch's mean KL counts as at least this (0: off)")
    optim.add_argument("--train-k", type=int, default=1, help="importance samples in the training bound (1 = ELBO, >1 = IWAE)")
    optim.add_argument("--time-budget", type=float, default=None, help="stop training after this many minutes of training")
    optim.add_argument(
        "--budget-clock",
        choices=["wall", "process"],
        default="wall",
        help="the --time-budget's clock: wall time, or this process's CPU time (fair on a shared CPU; 2 threads count twice)",
    )
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--val-split", default="auto", help="validation split (auto: validation, else test, else 5%% of train)")
    evaluation.add_argument("--eval-k", type=int, default=1000, help="importance samples for the final NLL estimate")
    evaluation.add_argument("--eval-limit", type=int, default=None, help="estimate the final NLL on the first N validation images")
    evaluation.add_argument(
        "--eval-only", action="store_true", help="skip training: evaluate and package the best checkpoint of the run in --out"
    )
    add_speed_arguments(parser, precision="fp32")
    add_evaluation_arguments(parser)
    args = parse_with_recipe(parser, argv, script="vae")
    check_positive(parser, args, "latent_dim", "width", "lr", "train_k", "eval_k", "eval_limit", "time_budget", "image_size", "aux_hidden")
    if args.flow_steps < 0:
        parser.error(f"--flow-steps must be >= 0, got {args.flow_steps}")
    if args.pixelcnn_layers < 0:
        parser.error(f"--pixelcnn-layers must be >= 0, got {args.pixelcnn_layers}")
    check_fit_prior(parser, args)
    if not (args.free_bits >= 0 and math.isfinite(args.free_bits)):
        parser.error(f"--free-bits must be >= 0 nats, got {args.free_bits}")
    if not 0 <= args.hierarchy_dim < args.latent_dim:
        parser.error(f"--hierarchy-dim must be in [0, --latent-dim), got {args.hierarchy_dim}")
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


def add_gan_arguments(parser: argparse.ArgumentParser) -> None:
    gan = parser.add_argument_group("GAN")
    gan.add_argument("--objective", choices=list(OBJECTIVES), default="dcgan")
    gan.add_argument("--arch", choices=ARCHITECTURES, default="conv", help="conv: DCGAN-style conv nets; mlp: the classic WGAN demo pair")
    gan.add_argument("--latent-dim", type=int, default=100)
    gan.add_argument("--width", type=int, default=64, help="conv channels at full resolution (generator and critic)")
    gan.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512], help="MLP hidden sizes")
    add_critic_norm_argument(gan)
    gan.add_argument(
        "--upsample",
        choices=UPSAMPLES,
        default="transpose",
        help="conv generator upsampling: transpose (stride-2 transposed convs, DCGAN) or nearest (nearest-neighbour "
        "upsampling + 3x3 conv, no checkerboard artefacts)",
    )
    gan.add_argument(
        "--generator-extra-convs",
        type=int,
        default=0,
        help="conv generator: 3x3 stride-1 convs added at each resolution but the last (depth at the same widths; default 0)",
    )
    gan.add_argument(
        "--critic-extra-convs",
        type=int,
        default=0,
        help="conv critic: 3x3 stride-1 convs added after each downsampling (depth at the same widths, as in SNGAN's critic; default 0)",
    )
    gan.add_argument("--image-size", type=int, default=None, help="resize images (default: the dataset's size)")
    gan.add_argument("--channels", type=int, choices=[1, 3], default=None)
    gan.add_argument(
        "--init-from",
        default=None,
        help="transfer learning: start from another GAN's weights, a run folder or its checkpoint.pt (EMA generator and "
        "critic) or a saved model folder or Hub id (generator only), with fresh optimizers; the networks must be the ones "
        "the other flags build",
    )
    optim = parser.add_argument_group("optimization (default: the objective's recipe)")
    optim.add_argument("--lr", type=float, default=None)
    optim.add_argument("--generator-lr-scale", type=float, default=1.0, help="the generator's learning rate over the critic's")
    add_lr_schedule_argument(optim)
    optim.add_argument("--n-critic", type=int, default=None, help="critic updates per generator update")
    optim.add_argument("--ema-decay", type=float, default=0.999)
    optim.add_argument(
        "--r1",
        type=float,
        default=None,
        help="gamma of an R1 penalty, (gamma/2) E ||grad D(real)||^2 (Mescheder et al. 2018); default: none",
    )
    optim.add_argument(
        "--top-k",
        type=float,
        default=1.0,
        metavar="NU",
        help="top-k generator updates (Sinha et al. 2020): only the fakes the critic scores highest enter the generator loss; "
        "the kept fraction starts at 1 and shrinks by --top-k-decay per epoch down to NU (default 1: every fake)",
    )
    optim.add_argument("--top-k-decay", type=float, default=0.99, metavar="GAMMA", help="the kept fraction's factor per epoch (0, 1]")
    speed = add_speed_arguments(parser, precision="auto")
    speed.add_argument("--compile", action="store_true",
                       help="torch.compile the networks (CUDA graphs on CUDA); a gradient penalty keeps the critic eager")  # fmt: skip
    add_augment_arguments(parser)


def add_augment_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("small data: differentiable augmentation of every critic input (DiffAugment)")
    group.add_argument("--augment", default="", help="comma-separated policies: color, translation, cutout (default: none)")
    group.add_argument("--augment-p", type=float, default=1.0, help="probability each policy is applied to each image (0, 1]")


def check_augment_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from genhub.training.augment import DiffAugment

    if args.augment:
        try:
            DiffAugment(args.augment, args.augment_p)
        except ValueError as error:
            parser.error(f"--augment/--augment-p: {error}")


def check_gan_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    check_positive(parser, args, "latent_dim", "width", "n_critic", "lr", "generator_lr_scale", "image_size")
    if any(h < 1 for h in args.hidden):
        parser.error("--hidden sizes must be positive")
    if args.latent_dim > 4096:
        parser.error(f"--latent-dim {args.latent_dim} is too large (at most 4096)")
    for flag in ("generator_extra_convs", "critic_extra_convs"):
        extra_convs, name = getattr(args, flag, 0), "--" + flag.replace("_", "-")
        try:
            check_extra_convs(extra_convs)
        except ValueError:
            parser.error(f"{name} must be from 0 to {MAX_EXTRA_CONVS}, got {extra_convs}")
        if extra_convs and args.arch != "conv":
            parser.error(f"{name} applies to --arch conv only, not {args.arch!r}")
    if not 0 <= args.ema_decay < 1:
        parser.error("--ema-decay must be in [0, 1)")
    if not 0 < args.top_k <= 1 or not 0 < args.top_k_decay <= 1:
        parser.error(f"--top-k (the smallest kept fraction) and --top-k-decay must be in (0, 1]; got {args.top_k} and {args.top_k_decay}")
    if args.top_k < 1 and not get_objective(args.objective).takes_top_k:
        parser.error(f"--top-k needs a score objective with the standard generator step; {args.objective!r} has its own")
    if args.r1 is not None:
        if not (args.r1 >= 0 and math.isfinite(args.r1)):
            parser.error(f"--r1 must be a penalty weight >= 0, got {args.r1}")
        if args.r1 and not get_objective(args.objective).takes_r1:
            parser.error(f"--r1 needs a score objective with the standard critic step (dcgan, hinge, lsgan, ...), not {args.objective}")
    check_augment_arguments(parser, args)
    check_critic_norm(parser, args)


def parse_gan_args(argv=None, description: str | None = None) -> argparse.Namespace:
    """train/gan.py's flags (a recipe's fields), checked before anything is built."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="mnist", epochs=5, batch_size=64, out="runs/gan")
    add_gan_arguments(parser)
    add_evaluation_arguments(parser)
    args = parse_with_recipe(parser, argv, script="gan")
    check_gan_arguments(parser, args)
    check_common_arguments(parser, args)
    return args


def parse_vaegan_args(argv=None, description: str | None = None) -> argparse.Namespace:
    """train/vaegan.py's flags (a recipe's fields), checked before anything is built."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="anime-faces", epochs=5, batch_size=64, out="runs/vaegan")
    parser.add_argument(
        "--vae-repo-id", default=None, help="Hub repository of the pre-trained VAE (required with --push; --repo-id is the GAN's)"
    )
    model = parser.add_argument_group("model (the VAE decoder and the generator share it)")
    model.add_argument("--latent-dim", type=int, default=64)
    model.add_argument("--width", type=int, default=32, help="conv channels at full resolution (VAE, generator and critic)")
    model.add_argument(
        "--image-size", type=int, default=None, help="square side; non-square images are center-cropped (default: the dataset's size)"
    )
    model.add_argument("--channels", type=int, choices=[1, 3], default=None)
    vae = parser.add_argument_group("phase 1: VAE pre-training")
    vae.add_argument("--vae-epochs", type=int, default=10)
    vae.add_argument("--vae-lr", type=float, default=1e-3)
    vae.add_argument("--kl-weight", type=float, default=1.0, help="weight of the KL term (beta); 1 trains the true ELBO")
    vae.add_argument("--kl-warmup", type=int, default=0, help="epochs over which the KL weight ramps up from 0")
    add_fit_prior_argument(vae)
    vae.add_argument("--vae-eval-k", type=int, default=100, help="importance samples for the VAE's validation NLL")
    vae.add_argument("--vae-eval-limit", type=int, default=500, help="validation images for the VAE's NLL")
    vae.add_argument(
        "--vae-from",
        default=None,
        metavar="RUN",
        help="skip phase 1: copy the VAE of an earlier train/vaegan.py run (RUN/vae) into --out/vae and start phase 2 from "
        "its decoder (another GAN phase on the same VAE; the VAE is not saved or pushed again); its latent size and width must "
        "be the flags'",
    )
    gan = parser.add_argument_group("phase 2: GAN from the decoder (the objective's recipe unless overridden)")
    gan.add_argument("--objective", choices=list(OBJECTIVES), default="dcgan")
    gan.add_argument("--lr", type=float, default=None)
    gan.add_argument(
        "--generator-lr-scale",
        type=float,
        default=2.0,
        help="the warm-started generator's learning rate over the critic's (2: it reaches the cold start's final SWD "
        "sooner in benchmarks/warm_start.py, see docs/warm_start)",
    )
    gan.add_argument("--n-critic", type=int, default=None)
    gan.add_argument("--ema-decay", type=float, default=0.999)
    add_critic_norm_argument(gan)
    add_lr_schedule_argument(gan)
    speed = add_speed_arguments(parser, precision="auto")
    speed.description = "auto: each phase's default (fp32 for the VAE, a likelihood model; bf16 autocast on CUDA for the GAN)"
    speed.add_argument("--compile", action="store_true", help="torch.compile the GAN phase's networks (CUDA graphs on CUDA)")
    add_augment_arguments(parser)
    add_evaluation_arguments(parser)
    args = parse_with_recipe(parser, argv, script="vaegan")
    if args.push and not args.vae_repo_id:
        parser.error("--push needs --vae-repo-id too (e.g. --vae-repo-id your-name/vae-anime-faces): both models are pushed")
    check_positive(
        parser,
        args,
        "vae_epochs",
        "latent_dim",
        "width",
        "vae_lr",
        "lr",
        "n_critic",
        "generator_lr_scale",
        "vae_eval_k",
        "vae_eval_limit",
        "image_size",
    )
    check_fit_prior(parser, args)
    if args.resume:
        parser.error("train/vaegan.py has no --resume: resume its phases with train/vae.py --out OUT/vae and train/gan.py --out OUT/gan")
    check_augment_arguments(parser, args)
    check_critic_norm(parser, args)
    check_common_arguments(parser, args)
    return args


def add_speed_arguments(parser: argparse.ArgumentParser, precision: str):
    """--precision and --channels-last (how fast, not what: a resumed run may change them)."""
    speed = parser.add_argument_group("speed (benchmarks/throughput.py measures each)")
    speed.add_argument("--precision", choices=list(PRECISIONS), default=precision,
                       help="auto: bf16 autocast on CUDA, fp32 on CPU; bf16: autocast on any device (AVX512-BF16/AMX CPUs); "
                       f"default {precision}")  # fmt: skip
    speed.add_argument("--channels-last", action="store_true", help="NHWC weights and batches for the conv networks")
    return speed


def add_critic_norm_argument(group) -> None:
    group.add_argument(
        "--critic-norm",
        choices=["auto", "batch", "layer", "none", "spectral"],
        default="auto",
        help="critic normalization (auto: the objective's; never batch norm with a gradient penalty); "
        "spectral: spectral normalization of every critic weight (Miyato et al. 2018)",
    )


def check_critic_norm(parser, args) -> None:
    if args.critic_norm == "batch" and get_objective(args.objective).penalty_weight:
        parser.error(f"--objective {args.objective} uses a per-sample gradient penalty: pick --critic-norm layer or none, not batch")


def add_lr_schedule_argument(group) -> None:
    """--lr-schedule for the GAN trainers (the VAE's learning rate always follows a cosine)."""
    group.add_argument(
        "--lr-schedule",
        choices=list(SCHEDULES),
        default="constant",
        help="both learning rates over the budget: constant, linear (to 0 at the end) or cosine",
    )


def add_fit_prior_argument(group) -> None:
    """--fit-prior K, in train/vae.py and in train/vaegan.py's VAE phase."""
    group.add_argument(
        "--fit-prior",
        type=int,
        default=0,
        help="after training, replace the prior by a mixture of this many diagonal Gaussians fitted by EM to the "
        "aggregate posterior (ex-post density estimation; 0: keep the trained prior)",
    )


def check_fit_prior(parser, args) -> None:
    if args.fit_prior < 0:
        parser.error(f"--fit-prior must be >= 0 mixture components (0: off), got {args.fit_prior}")


PARSERS = {"vae": parse_vae_args, "gan": parse_gan_args, "vaegan": parse_vaegan_args}


def recipe_args(path, **overrides) -> argparse.Namespace:
    """A recipe file as the namespace its script would parse (the script's defaults filled in),
    with `overrides` replacing single fields: how benchmarks and tests run a recipe."""
    script = read_recipe(path)["script"]
    if script not in PARSERS:
        raise ValueError(f"{path} names no training script (script = {script!r}; one of {sorted(PARSERS)})")
    args = PARSERS[script](["--recipe", str(path)])
    return argparse.Namespace(**{**vars(args), **overrides})
