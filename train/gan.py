"""Train a GAN with any objective on any dataset of the data layer, write its card, push it.

    python train/gan.py                                          # DCGAN on MNIST
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
with its config and card, goes to --out/model (and the Hub with --push).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import torch  # noqa: E402

from genhub import DATASETS, DatasetError, load_images  # noqa: E402
from genhub.models.gan import ARCHITECTURES, build_critic, gan_class  # noqa: E402
from genhub.objectives import OBJECTIVES, get_objective  # noqa: E402
from genhub.training.gan import CHECKPOINT_NAME, CheckpointError, GANTrainer, TrainingDiverged, TrainSettings, read_checkpoint  # noqa: E402
from genhub.evaluation import evaluate_for_card  # noqa: E402
from genhub.training.cli import add_common_arguments, add_evaluation_arguments, check_evaluation_arguments, check_push_arguments, environment_summary, finish, pick_device, save_json, seed_everything  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, dataset="mnist", epochs=5, batch_size=64, out="runs/gan")
    gan = parser.add_argument_group("GAN")
    gan.add_argument("--objective", choices=list(OBJECTIVES), default="dcgan")
    gan.add_argument("--arch", choices=ARCHITECTURES, default="dcgan", help="dcgan: conv nets; mlp: the classic WGAN demo pair")
    gan.add_argument("--latent-dim", type=int, default=100)
    gan.add_argument("--width", type=int, default=64, help="conv channels at full resolution (generator and critic)")
    gan.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512], help="MLP hidden sizes")
    gan.add_argument("--critic-norm", choices=["auto", "batch", "layer", "none"], default="auto",
                     help="conv critic normalization (auto: the objective's; never batch norm with a gradient penalty)")
    gan.add_argument("--image-size", type=int, default=None, help="resize images (default: the dataset's size)")
    gan.add_argument("--channels", type=int, choices=[1, 3], default=None)
    optim = parser.add_argument_group("optimization (default: the objective's recipe)")
    optim.add_argument("--lr", type=float, default=None)
    optim.add_argument("--n-critic", type=int, default=None, help="critic updates per generator update")
    optim.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--resume", action="store_true", help=f"continue from --out/{CHECKPOINT_NAME} up to --epochs in total")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log files)")
    parser.add_argument("--card-note", default=None, help="a sentence for the model card's training section (e.g. the machine)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (on a busy shared CPU, 1 is often much faster than the default)")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    check_push_arguments(parser, args)
    check_evaluation_arguments(parser, args)
    for name in ("epochs", "batch_size", "latent_dim", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.n_critic is not None and args.n_critic < 1:
        parser.error("--n-critic must be a positive integer")
    if args.lr is not None and args.lr <= 0:
        parser.error("--lr must be positive")
    if not 0 <= args.ema_decay < 1:
        parser.error("--ema-decay must be in [0, 1)")
    if args.critic_norm == "batch" and get_objective(args.objective).penalty_weight:
        parser.error(f"--objective {args.objective} uses a per-sample gradient penalty: pick --critic-norm layer or none, not batch")
    return args


def build_trainer(args, image_shape, device) -> GANTrainer:
    out = Path(args.out)
    settings = TrainSettings(batch_size=args.batch_size, n_critic=args.n_critic, lr=args.lr, ema_decay=args.ema_decay,
                             seed=args.seed, progress=not args.no_progress)
    if args.resume:
        trainer = GANTrainer.from_checkpoint(out / CHECKPOINT_NAME, out=out, device=device, progress=settings.progress)
        print(f"resumed {out / CHECKPOINT_NAME} at epoch {trainer.epoch} (objective {trainer.objective.name}); "
              "model and optimizer options come from the checkpoint")
        return trainer
    if (out / CHECKPOINT_NAME).exists():
        raise SystemExit(f"error: {out / CHECKPOINT_NAME} exists; pass --resume to continue it, or choose another --out")
    objective = get_objective(args.objective)
    model = gan_class(args.objective)(image_shape=image_shape, latent_dim=args.latent_dim, architecture=args.arch,
                                      width=args.width, hidden_dims=tuple(args.hidden), objective=args.objective)
    # The objective says which critic it needs: a score, a feature vector, or an auto-encoder.
    critic = build_critic(objective, image_shape, architecture=args.arch, width=args.width, hidden_dims=tuple(args.hidden),
                          norm=None if args.critic_norm == "auto" else args.critic_norm)
    return GANTrainer(model, critic, objective, out=out, settings=settings, device=device)


def card_context(args, trainer: GANTrainer, num_train: int, device) -> dict:
    spec = DATASETS.get(str(args.dataset).lower())
    settings = trainer.settings
    optimizer = trainer.objective.optimizer
    generator_lr, critic_lr = trainer.optimizer_g.defaults["lr"], trainer.optimizer_d.defaults["lr"]
    lr = f"lr {critic_lr:g}" if generator_lr == critic_lr else f"lr {generator_lr:g} (generator), {critic_lr:g} (critic)"
    last = {k: trainer.history[k][-1] for k in ("critic_loss", "generator_loss", "gradient_penalty") if k in trainer.history}
    return {
        "dataset": spec.description if spec else str(args.dataset),
        "dataset_id": spec.hub_id if spec else None,
        "train_split": args.split,
        "num_train": num_train,
        "objective": trainer.objective.name,
        "objective_description": trainer.objective.description,
        "sample_image": "samples.png",
        "command": "\n".join(trainer.commands),
        "training_note": args.card_note,
        "training": {
            "objective": f"{trainer.objective.name} ({trainer.objective.description})",
            "critic": f"{type(trainer.critic).__name__} ({trainer.objective.critic_kind}), {trainer.critic.config['architecture']}, "
                      f"width {trainer.critic.config['width']}, norm {trainer.critic.config['norm']}",
            "epochs": trainer.epoch,
            "generator steps": trainer.generator_steps,
            "batch size": settings.batch_size,
            "critic steps per generator step": trainer.n_critic,
            "optimizer": f"{optimizer.name} {lr}" + (f" betas {tuple(optimizer.betas)}" if optimizer.name == "adam" else ""),
            "weight clipping": trainer.objective.clip_value or "none",
            "gradient penalty weight": trainer.objective.penalty_weight or "none",
            "EMA decay (sampling weights)": settings.ema_decay,
            "seed": settings.seed,
            "training time": f"{trainer.train_seconds / 60:.1f} min",
            "hardware": environment_summary(device),
        },
        "metrics": {f"final {k.replace('_', ' ')}": f"{v:.4f}" for k, v in last.items()},
        "metrics_note": "Losses of the last logged step; GAN losses do not measure sample quality. Look at the samples.",
    }


def main(argv=None) -> GANTrainer:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    seed_everything(args.seed)  # the networks' initial weights; the trainer reseeds every epoch
    try:
        image_shape = None
        if args.resume:
            image_shape = tuple(read_checkpoint(Path(args.out) / CHECKPOINT_NAME)["model_config"]["image_shape"])
        data = load_images(args.dataset, split=args.split, limit=args.limit,
                           image_size=args.image_size or (image_shape[1] if image_shape else None),
                           channels=args.channels or (image_shape[0] if image_shape else None))
        trainer = build_trainer(args, tuple(data.images.shape[1:]), device)
    except (DatasetError, CheckpointError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    print(f"{len(data)} images {data.image_shape} from {args.dataset}; objective {trainer.objective.name}, "
          f"{trainer.model.num_parameters():,} generator / {sum(p.numel() for p in trainer.critic.parameters()):,} critic parameters, "
          f"n_critic {trainer.n_critic}, on {environment_summary(device)}", flush=True)
    trainer.commands.append(shlex.join(["python", "train/gan.py", *(argv if argv is not None else sys.argv[1:])]))
    try:
        trainer.fit(data.images, epochs=args.epochs)
    except TrainingDiverged as error:
        raise SystemExit(f"error: {error}") from error
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error

    out = Path(args.out)
    folder = out / "model"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "samples" / f"epoch_{trainer.epoch:03d}.png", folder / "samples.png")
    save_json(out / "history.json", {"epochs": trainer.epoch, "train_seconds": trainer.train_seconds, "history": trainer.history})
    model, card = trainer.sampling_model(), card_context(args, trainer, len(data), device)
    if not args.no_eval:
        card = evaluate_for_card(model, args.dataset, card, folder, num_samples=args.eval_samples, seed=args.seed)
    finish(model, folder, card, args)
    return trainer


if __name__ == "__main__":
    main()
