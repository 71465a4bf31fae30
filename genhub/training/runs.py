"""Whole training runs, as the scripts in train/ call them: data, model, trainer, evaluation and
the model card, ending in a saved folder (`finish` then pushes it when asked).

    run = train_vae(args)                        # train/vae.py
    run = train_gan(args)                        # train/gan.py
    vae = train_vae(vae_args)                    # train/vaegan.py: the VAE-then-GAN pipeline is
    gan = train_gan(gan_args, generator=gan_from_vae(vae.model, ...))   # these two calls

`args` is the namespace of the script's flags (or a recipe's fields); each function says which
it reads. Every run writes into `args.out`: checkpoints, grids, history and `model/`.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genhub.assets import CHECKOUT
from genhub.data import DATASETS, DatasetError, dataset_key, holdout_split, load_images
from genhub.evaluation import evaluate_for_card
from genhub.evaluation.metrics import iwae_nll
from genhub.images import to_unit_range
from genhub.models.gan import GenGAN, build_critic, gan_class
from genhub.models.hub import GenModel, config_changes
from genhub.models.vae import FIT_PRIOR_DRAWS, GenVAE, fit_mixture_prior
from genhub.objectives import get_objective
from genhub.runtime import atomic_write, environment_summary, pick_device, portable, save_image, seed_everything
from genhub.training.base import CHECKPOINT_NAME, CheckpointError, save_json
from genhub.training.distributed import Distributed
from genhub.training.gan import GANTrainer, TrainSettings, initialise_from, read_checkpoint
from genhub.training.vae import BEST_FOLDER, HISTORY_NAME, NLL_RECORD_NAME, VAESettings, VAETrainer, mean_elbo_terms
from genhub.training.vae import read_checkpoint as read_vae_checkpoint

MODEL_FOLDER = "model"
# What a run is trained on and as: recorded in its checkpoint, and a resume that says otherwise is refused.
RUN_FIELDS = ("dataset", "split", "limit", "holdout", "image_size", "channels", "objective", "arch", "latent_dim", "width", "hidden",
              "batch_size", "augment", "init_from")  # fmt: skip


def run_info(args) -> dict:
    return {
        key: (list(value) if isinstance(value, tuple) else value) for key in RUN_FIELDS if (value := getattr(args, key, None)) is not None
    }


def reconcile_resume(args, recorded: dict, checkpoint) -> None:
    """On --resume the checkpoint says what the run is: fields not given take its values; a field
    given with another value is refused (naming both) unless --allow-changes."""
    given = set(getattr(args, "given", ()))
    changed = []
    for key, value in recorded.items():
        current = getattr(args, key, None)
        current = list(current) if isinstance(current, tuple) else current
        if key in given and current != value:
            changed.append(f"--{key.replace('_', '-')} {current} (the checkpoint's run used {value})")
        elif key not in given:
            setattr(args, key, value)
    if changed and not getattr(args, "allow_changes", False):
        raise ValueError(f"--resume of {checkpoint} with different settings: {'; '.join(changed)}. "
                         "Resume with the run's own settings, or pass --allow-changes to change them on purpose.")  # fmt: skip


@dataclass
class Run:
    """What a run leaves: the final model, its folder (not yet pushed), its card context, metrics."""

    model: GenModel
    folder: Path
    card: dict
    metrics: dict = field(default_factory=dict)
    trainer: GANTrainer | VAETrainer | None = None
    num_train: int = 0
    main: bool = True  # False on a data-parallel run's other processes: nothing was saved there


def dataset_card(dataset, split: str, num_train: int) -> dict:
    """How a card names its data: by genhub name and Hub id, also when it was read from a local
    mirror folder (a path is never the card's dataset name)."""
    key = dataset_key(dataset)
    spec = DATASETS.get(key) if key else None
    is_path = Path(str(dataset)).exists()
    return {
        "dataset": key if key else (Path(str(dataset)).name if is_path else str(dataset)),
        "dataset_description": spec.description if spec else None,
        "data_note": spec.note if spec else None,
        "dataset_id": spec.hub_id if spec else (None if is_path else str(dataset)),
        "train_split": split,
        "num_train": num_train,
    }


def recipe_card(args) -> dict:
    """The recipe file a card names, relative to the repository (recipes/<name>.toml)."""
    recipe = getattr(args, "recipe", None)
    return {"recipe": portable(str(Path(recipe).resolve()), root=CHECKOUT) if recipe else None}


def set_threads(args) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def distributed_for(args, out: Path) -> Distributed:
    """The processes and trackers of a run: `accelerate launch` starts several, `--report-to`
    names trackers (their logs go to out/), `--sync-bn` synchronises batch norm."""
    distributed = Distributed.create(
        args.device, report_to=getattr(args, "report_to", None) or [], sync_bn=getattr(args, "sync_bn", False), logging_dir=out
    )
    distributed.start_tracking(out.name, _jsonable(vars(args)))
    return distributed


def log_card_metrics(distributed: Distributed, card: dict, step: int) -> None:
    """The card's numeric metrics (FD, precision, NLL, ...) to the trackers, once, at the end."""
    values = {}
    for name, value in (card.get("metrics") or {}).items():
        try:
            values[f"eval/{name}"] = float(value)
        except (TypeError, ValueError):
            continue
    distributed.log(values, step=step)
    distributed.end()


def _not_main(trainer, out: Path) -> Run:
    """What a data-parallel run's other processes return: the trained weights, no files."""
    return Run(model=trainer.model, folder=out / MODEL_FOLDER, card={}, trainer=trainer, main=False)


# -- the VAE -----------------------------------------------------------------------------------
def load_vae_splits(args) -> tuple[torch.Tensor, torch.Tensor, str]:
    """uint8 train and validation images, and the name of the validation split used
    (`args.val_split` "auto": validation, else test, else 5% of train)."""
    options = dict(image_size=args.image_size, channels=args.channels)
    train = load_images(args.dataset, split=args.split, limit=args.limit, **options).images
    if getattr(args, "holdout", None):
        train, held_out = holdout_split(train, args.holdout)
        return train, held_out, f"{args.split} held-out {args.holdout:g}"
    candidates = ["validation", "test"] if args.val_split == "auto" else [args.val_split]
    for split in candidates:
        try:
            return train, load_images(args.dataset, split=split, **options).images, split
        except DatasetError as error:
            if args.val_split != "auto" or "has no split" not in str(error):
                raise
    held_out = max(1, len(train) // 20)  # no validation split: hold out 5% of train
    return train[held_out:], train[:held_out], f"{args.split}[:{held_out}]"


def vae_settings(args) -> VAESettings:
    return VAESettings(
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        kl_weight=args.kl_weight,
        kl_warmup=args.kl_warmup,
        train_k=args.train_k,
        free_bits=getattr(args, "free_bits", 0.0),
        progress=not getattr(args, "no_progress", False),
        save_every=getattr(args, "save_every", 1),
        **speed_settings(args, precision="fp32", compile=False),
    )


def build_vae(args, train: torch.Tensor) -> GenVAE:
    """The GenVAE the flags describe; with `args.init_from`, that model's weights from a saved
    GenVAE, whose config must match field for field (a mismatch names the fields and the source)."""
    binary = bool(((train == 0) | (train == 255)).all())
    likelihood = ("bernoulli" if binary else "gaussian") if args.likelihood == "auto" else args.likelihood
    model = GenVAE(
        image_shape=tuple(train.shape[1:]),
        latent_dim=args.latent_dim,
        architecture=args.arch,
        hidden_dims=tuple(args.hidden),
        width=args.width,
        likelihood=likelihood,
        prior=args.prior,
        flow_steps=getattr(args, "flow_steps", 0),
        hierarchy_dim=getattr(args, "hierarchy_dim", 0),
        aux_hidden=getattr(args, "aux_hidden", 256),
        pixelcnn_layers=getattr(args, "pixelcnn_layers", 0),
    )
    source = getattr(args, "init_from", None)
    if source is None:
        return model
    pretrained = GenVAE.from_pretrained(source)
    changed = config_changes(model._hub_mixin_config, pretrained._hub_mixin_config)
    if changed:
        raise ValueError(f"--init-from {source}: that GenVAE is not the model these flags build: {'; '.join(changed)}. "
                         "Give the flags (or recipe fields) of the model it was trained as.")  # fmt: skip
    return pretrained


def train_vae(args, *, command: str | None = None, card_extra: dict | None = None) -> Run:
    """Train (or resume, or with `args.eval_only` only package) a GenVAE, estimate its validation
    NLL with the IWAE bound, evaluate its samples, and save it with its card to out/model.

    Reads: dataset, split, limit, image_size, channels, val_split, arch, latent_dim, hidden, width,
    likelihood, prior, lr, kl_weight, kl_warmup, train_k, batch_size, epochs, time_budget (minutes),
    seed, device, out, resume, eval_only, eval_k, eval_limit, eval_samples, no_eval."""
    set_threads(args)
    seed_everything(args.seed)
    out = Path(args.out)
    distributed = distributed_for(args, out) if not args.eval_only else Distributed()
    device = distributed.device or pick_device(args.device)
    checkpoint = out / CHECKPOINT_NAME
    if not args.eval_only and not args.resume and (checkpoint.exists() or (out / BEST_FOLDER).exists()):
        raise ValueError(
            f"{out} already holds a VAE run ({CHECKPOINT_NAME} or {BEST_FOLDER}/); pass --resume to continue it, "
            "--eval-only to package it, or choose another --out"
        )
    if args.resume and not args.eval_only:
        reconcile_resume(args, read_vae_checkpoint(checkpoint).get("run_info", {}), checkpoint)
    train, validation, val_split = load_vae_splits(args)
    if args.eval_only:
        if not (out / HISTORY_NAME).exists() or not (out / BEST_FOLDER).exists():
            raise ValueError(f"--eval-only needs a finished or stopped run in {out} ({HISTORY_NAME} and {BEST_FOLDER}/)")
        trainer = _packaging_trainer(checkpoint, out, device)
    else:
        if args.resume:
            progress = not getattr(args, "no_progress", False)
            speed = speed_settings(args, precision="fp32", compile=False)
            trainer = VAETrainer.from_checkpoint(
                checkpoint, out=out, device=device, progress=progress, distributed=distributed, overrides=speed
            )
            print(f"resumed {checkpoint} at epoch {trainer.epoch}; model and optimizer options come from the checkpoint")
        else:
            trainer = VAETrainer(build_vae(args, train), out=out, settings=vae_settings(args), device=device, distributed=distributed)
            trainer.run_info = run_info(args)
        if command:
            trainer.commands.append(command)
        model = trainer.model
        print(
            f"{len(train)} train / {len(validation)} {val_split} images {tuple(train.shape[1:])}, {model.likelihood} likelihood, "
            f"{model.num_parameters():,} parameters, on {environment_summary(device)}",
            flush=True,
        )
        seconds = args.time_budget * 60 if args.time_budget else None
        clock = getattr(args, "budget_clock", "wall")  # every epoch is validated, so the budget stops between epochs
        trainer.fit(train, args.epochs, seconds=seconds, clock=clock, validation=validation, stop_inside_epoch=False)
        if not distributed.is_main:
            return _not_main(trainer, out)
    run = package_vae(args, train, validation, val_split, out, device, trainer=trainer, card_extra=card_extra)
    log_card_metrics(distributed, run.card, step=trainer.optimizer_steps if trainer is not None else 0)
    return run


def _packaging_trainer(checkpoint: Path, out: Path, device) -> VAETrainer | None:
    """For --eval-only: the run's trainer as its checkpoint left it, so the card keeps the commands
    and settings it was trained with; None (the card then lacks them) when there is no readable one."""
    if not checkpoint.exists():
        return None
    try:
        return VAETrainer.from_checkpoint(checkpoint, out=out, device=device, progress=False)
    except CheckpointError as error:
        print(f"note: {error}; the card will not name the training commands", flush=True)
        return None


def package_vae(
    args, train, validation, val_split: str, out: Path, device, trainer: VAETrainer | None = None, card_extra: dict | None = None
) -> Run:
    """Load out/best, estimate its NLL, evaluate it, and save it with its card to out/model.
    `args.no_eval` skips the evaluation (the NLL and the sample metrics: the card then reports
    the validation -ELBO only); `args.eval_samples` 0 skips the sample metrics alone."""
    import json

    try:
        record = json.loads((out / HISTORY_NAME).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise ValueError(
            f"{out / HISTORY_NAME} is unreadable or truncated ({error}); --resume from {CHECKPOINT_NAME} rewrites it"
        ) from error
    history = record["history"]
    best = max(history, key=lambda entry: entry["val_elbo"])
    model = GenVAE.from_pretrained(out / BEST_FOLDER).to(device)
    model, best, fitted_rows = _fit_prior(args, model, train, validation, best)
    eval_set = validation[: args.eval_limit] if args.eval_limit else validation
    eval_start = time.time()
    nll = None if args.no_eval else _estimate_nll(args, model, eval_set, out)
    train_minutes = history[-1]["minutes"]
    metrics = {
        "validation_neg_elbo": round(-best["val_elbo"], 2),
        "validation_kl": round(best["val_kl"], 2) if best.get("val_kl") is not None else None,
        "best_epoch": best["epoch"],
        "train_minutes": round(train_minutes, 1),
    }
    if nll is not None:
        metrics.update({f"validation_nll_iwae_k{args.eval_k}": round(nll["nll"], 2), "nll_standard_error": round(nll["nll_stderr"], 3),
                        "nll_images": len(eval_set), "eval_minutes": round((time.time() - eval_start) / 60, 1)})  # fmt: skip
        print(f"validation NLL (IWAE, k={args.eval_k}, {len(eval_set)} images): {nll['nll']:.2f} nats; -ELBO {-best['val_elbo']:.2f}")
    folder = out / MODEL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    save_image(model.grid(model.sample(64, seed=0), nrow=8, scale=2), folder / "samples.png")
    data = dataset_card(args.dataset, args.split, len(train))
    nll_label = f"validation NLL, IWAE k={args.eval_k} ({len(eval_set)} images, nats)"
    card = {
        "model_name": f"GenVAE on {data['dataset']}",
        **data,
        **recipe_card(args),
        "sample_image": "samples.png",
        "command": "\n".join(trainer.commands) if trainer is not None and trainer.commands else None,
        "training_note": getattr(args, "card_note", None),
        "training": {
            "epochs run": len(history),
            "best epoch": best["epoch"],
            "batch size": args.batch_size,
            "learning rate": args.lr,
            "schedule": "Adam, cosine decay over the budget (epochs or time)",
            **({"precision": "bf16 autocast in training, fp32 in evaluation"} if trainer is not None and trainer.use_autocast else {}),
            "KL weight": args.kl_weight,
            "KL warm-up epochs": args.kl_warmup,
            "free bits (nats)": getattr(args, "free_bits", 0.0),
            "training bound k": args.train_k,
            **_holdout_row(args),
            **fitted_rows,
            "seed": args.seed,
            **({"initialised from": portable(str(args.init_from), root=CHECKOUT)} if getattr(args, "init_from", None) else {}),
            "hardware": record["hardware"],
            "training time": training_time(train_minutes, history[-1].get("wall_minutes"), getattr(args, "budget_clock", "wall")),
        },
        "metrics": {
            f"validation -ELBO ({val_split}, {len(validation)} images, nats)": f"{-best['val_elbo']:.2f}",
            **({"validation KL(q(z|x) || p(z)) (nats)": f"{best['val_kl']:.2f}"} if best.get("val_kl") is not None else {}),
            **(
                {nll_label: f"{nll['nll']:.2f}", "standard error of that NLL over images (nats)": f"{nll['nll_stderr']:.2f}"}
                if nll is not None
                else {}
            ),
        },
        "eval_results": [nll_eval_result(data, val_split, args.eval_k, nll["nll"])] if nll is not None else None,
        "metrics_note": "The NLL is the importance-sampled bound of Burda et al. (2016), an upper bound on the true "
        "negative log-likelihood that tightens as k grows."
        if nll is not None
        else "Not evaluated (--no-eval): the validation -ELBO bounds the NLL from above.",
    }
    if not args.no_eval and args.eval_samples:  # sample quality; the NLL above is the held-out likelihood, so not recomputed here
        card = evaluate_for_card(model, args.dataset, card, folder, num_samples=args.eval_samples, seed=args.seed, **_holdout(args))
    card = {**card, **(card_extra or {})}
    model.save_pretrained(folder, model_card_kwargs=card)
    save_json(out / "metrics.json", {**metrics, "history": history, "args": _jsonable(vars(args))})
    return Run(model=model, folder=folder, card=card, metrics=metrics, trainer=trainer, num_train=len(train))


def _estimate_nll(args, model: GenVAE, images: torch.Tensor, out: Path) -> dict:
    """The IWAE NLL of out/model on `images`, its per-image bounds recorded in out/nll_bounds.json
    after every batch, so an interrupted evaluation continues where it stopped (`--eval-only`);
    in NHWC when the run trained in it. Prints the running estimate at every tenth of the images."""
    tenths = set()

    def report(done: int, total: int, running: float) -> None:
        if (tenth := 10 * done // total) not in tenths:
            tenths.add(tenth)
            print(f"NLL (IWAE, k={args.eval_k}): {done:,}/{total:,} images, running mean {running:.2f} nats", flush=True)

    nhwc = bool(getattr(args, "channels_last", False))
    record = out / NLL_RECORD_NAME
    return iwae_nll(model, to_unit_range(images), k=args.eval_k, seed=args.seed, channels_last=nhwc, record=record, progress=report)


def _fit_prior(args, model: GenVAE, train: torch.Tensor, validation: torch.Tensor, best: dict) -> tuple[GenVAE, dict, dict]:
    """With `args.fit_prior` K, the trained model with its prior replaced by K Gaussians fitted to
    its aggregate posterior on `train` (genhub.models.vae.fit_mixture_prior), the best epoch's
    record with its validation bound and KL recomputed under the new prior, and the card rows
    saying what was done. Without it, (model, best, {})."""
    components = getattr(args, "fit_prior", 0)
    if not components:
        return model, best, {}
    fitted = fit_mixture_prior(model, train, components=components, seed=args.seed)
    torch.manual_seed(args.seed)  # the bound is one-sample under a mixture prior
    elbo, kl = mean_elbo_terms(fitted, validation)
    print(f"prior fitted: {components} Gaussians on the aggregate posterior; validation -ELBO {-best['val_elbo']:.2f} -> {-elbo:.2f}")
    rows = {
        "prior after training": f"{args.prior} replaced by a mixture of {components} diagonal Gaussians fitted by EM to the "
        f"aggregate posterior ({FIT_PRIOR_DRAWS} codes z ~ q(z|x) per training image; ex-post density estimation, Ghosh et al. 2020)",
        "validation -ELBO under the trained prior (nats)": f"{-best['val_elbo']:.2f}",
    }
    return fitted, {**best, "val_elbo": elbo, "val_kl": kl}, rows


def training_time(minutes: float, wall_minutes: float | None, clock: str) -> str:
    """A card's training time: on a process-clock budget, the CPU time (every thread counted) and
    the wall time beside it (runs from before the wall time was recorded give the CPU time alone)."""
    if clock != "process":
        return f"{minutes:.1f} min"
    wall = f", {wall_minutes:.1f} min of wall time" if wall_minutes else ""
    return f"{minutes:.1f} min of CPU time (every thread counted){wall}"


def nll_eval_result(data: dict, split: str, k: int, nll: float):
    """The VAE's NLL as a model-index entry of the card's metadata."""
    from huggingface_hub import EvalResult

    return EvalResult(
        task_type="unconditional-image-generation",
        task_name="Unconditional image generation",
        dataset_type=data["dataset_id"] or data["dataset"],
        dataset_name=data["dataset"],
        dataset_split=split,
        metric_type="nll",
        metric_name=f"negative log-likelihood (IWAE k={k}, nats)",
        metric_value=round(nll, 2),
    )


def _jsonable(values: dict) -> dict:
    return portable({k: (str(v) if isinstance(v, Path) else v) for k, v in values.items() if k not in ("token",)})


# -- the GAN -----------------------------------------------------------------------------------
def gan_settings(args) -> TrainSettings:
    return TrainSettings(
        batch_size=args.batch_size,
        n_critic=args.n_critic,
        lr=args.lr,
        ema_decay=args.ema_decay,
        seed=args.seed,
        generator_lr_scale=getattr(args, "generator_lr_scale", 1.0),
        schedule=getattr(args, "lr_schedule", None) or "constant",
        r1=getattr(args, "r1", None),
        augment=getattr(args, "augment", "") or "",
        augment_p=getattr(args, "augment_p", 1.0),
        top_k=getattr(args, "top_k", 1.0),
        top_k_decay=getattr(args, "top_k_decay", 0.99),
        progress=not args.no_progress,
        save_every=getattr(args, "save_every", 1),
        **speed_settings(args),
    )


def speed_settings(args, *, precision: str = "auto", compile: bool = True) -> dict:
    """How fast, not what: --precision (default `precision`: fp32 for VAEs, likelihood models),
    --channels-last and, for GANs, --compile (a resumed run may change them)."""
    settings = {"precision": getattr(args, "precision", None) or precision, "channels_last": bool(getattr(args, "channels_last", False))}
    return {**settings, "compile": bool(getattr(args, "compile", False))} if compile else settings


def build_gan(args, image_shape, generator: GenGAN | None = None) -> tuple[GenGAN, torch.nn.Module]:
    """The generator (`generator` when given, else the one args describe) and the critic the
    objective declares (a score, features or an auto-encoder)."""
    model = generator if generator is not None else gan_class(args.objective)(
        image_shape=image_shape,
        latent_dim=args.latent_dim,
        architecture=args.arch,
        width=args.width,
        hidden_dims=tuple(args.hidden),
        objective=args.objective,
        upsample=getattr(args, "upsample", "transpose"),
        extra_convs=getattr(args, "generator_extra_convs", 0),
    )
    critic = build_critic(
        get_objective(args.objective),
        image_shape,
        architecture=args.arch,
        width=args.width,
        hidden_dims=tuple(args.hidden),
        norm=None if args.critic_norm == "auto" else args.critic_norm,
        extra_convs=getattr(args, "critic_extra_convs", 0),
    )
    return model, critic


def train_gan(args, *, generator: GenGAN | None = None, command: str | None = None, card_extra: dict | None = None) -> Run:
    """Train (or resume) a GAN and save its EMA generator with its card to out/model.
    `generator` replaces the one `args` describes (the warm start hands in a VAE's decoder).

    Reads: dataset, split, limit, image_size, channels, objective, arch, latent_dim, width, hidden,
    critic_norm, lr, n_critic, ema_decay, generator_lr_scale, batch_size, epochs, seed, device, out,
    resume, no_progress, card_note, eval_samples, no_eval."""
    set_threads(args)
    seed_everything(args.seed)  # the networks' initial weights (the same on every process); the trainer reseeds every epoch
    out = Path(args.out)
    distributed = distributed_for(args, out)
    device = distributed.device or pick_device(args.device)
    checkpoint = out / CHECKPOINT_NAME
    image_shape = None
    if args.resume:
        recorded = read_checkpoint(checkpoint)
        image_shape = tuple(recorded["model_config"]["image_shape"])
        reconcile_resume(args, recorded.get("run_info", {}), checkpoint)
    elif checkpoint.exists():
        raise ValueError(f"{checkpoint} exists; pass --resume to continue it, or choose another --out")
    data = load_images(
        args.dataset,
        split=args.split,
        limit=args.limit,
        image_size=args.image_size or (image_shape[1] if image_shape else None),
        channels=args.channels or (image_shape[0] if image_shape else None),
    )
    images = data.images
    if getattr(args, "holdout", None):
        images, _ = holdout_split(images, args.holdout)  # the held-out part is for evaluation only
    if args.resume:
        trainer = GANTrainer.from_checkpoint(
            checkpoint, out=out, device=device, progress=not args.no_progress, distributed=distributed, overrides=speed_settings(args)
        )
        print(
            f"resumed {checkpoint} at epoch {trainer.epoch} (objective {trainer.objective.name}); "
            "model and optimizer options come from the checkpoint"
        )
    else:
        model, critic = build_gan(args, data.image_shape, generator=generator)  # a handed-in generator beside the critic args describe
        if getattr(args, "init_from", None):
            loaded = initialise_from(args.init_from, model, critic)
            print(f"initialised the {loaded} from {args.init_from}", flush=True)
        trainer = GANTrainer(model, critic, args.objective, out=out, settings=gan_settings(args), device=device, distributed=distributed)
        trainer.run_info = run_info(args)
    print(
        f"{len(images)} images {data.image_shape} from {args.dataset}"
        f"{f' ({len(data) - len(images)} held out)' if len(images) < len(data) else ''}; objective {trainer.objective.name}, "
        f"{trainer.model.num_parameters():,} generator / {sum(p.numel() for p in trainer.critic.parameters()):,} critic parameters, "
        f"n_critic {trainer.n_critic}, on {environment_summary(device)}",
        flush=True,
    )
    if command:
        trainer.commands.append(command)
    trainer.fit(images, args.epochs)
    if not distributed.is_main:
        return _not_main(trainer, out)

    folder = out / MODEL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "samples.png", lambda temporary: shutil.copyfile(out / "samples" / f"epoch_{trainer.epoch:03d}.png", temporary))
    save_json(out / "history.json", {"epochs": trainer.epoch, "train_seconds": trainer.train_seconds, "history": trainer.history})
    model, card = trainer.sampling_model(), gan_card(args, trainer, len(images), device)
    if not args.no_eval:
        card = evaluate_for_card(model, args.dataset, card, folder, num_samples=args.eval_samples, seed=args.seed, **_holdout(args))
    card = {**card, **(card_extra or {})}
    model.save_pretrained(folder, model_card_kwargs=card)
    log_card_metrics(distributed, card, step=trainer.generator_steps)
    return Run(model=model, folder=folder, card=card, trainer=trainer, num_train=len(images))


def train_for_budget(script: str, args, data: torch.Tensor, seconds: float, device, *, validation: torch.Tensor | None = None):
    """Train what `args` describes (a recipe's namespace, recipe_args) on uint8 `data` for `seconds`
    of training, in memory with no output folder: how benchmarks compare recipes at equal compute.
    The clock is this process's CPU time on a CPU (fair on a shared machine) and synchronized wall
    time on CUDA. `script` is the recipe's, "gan" or "vae". Returns (sampling model, trainer)."""
    device = torch.device(device)
    clock = "wall" if device.type == "cuda" else "process"
    seed_everything(args.seed)
    if script == "gan":
        model, critic = build_gan(args, tuple(data.shape[1:]))
        trainer = GANTrainer(model, critic, args.objective, settings=gan_settings(args), device=device)
        trainer.fit(data, seconds=seconds, clock=clock)
        return trainer.sampling_model(), trainer
    if script == "vae":
        trainer = VAETrainer(build_vae(args, data), settings=vae_settings(args), device=device)
        trainer.fit(data, seconds=seconds, clock=clock, validation=validation)
        if getattr(args, "fit_prior", 0):
            return fit_mixture_prior(trainer.model, data, components=args.fit_prior, seed=args.seed), trainer
        return trainer.model, trainer
    raise ValueError(f"no budgeted training for script {script!r}; use 'gan' or 'vae'")


def _holdout_row(args) -> dict:
    fraction = getattr(args, "holdout", None)
    return {"held out for evaluation (never trained on)": f"{fraction:g} of the training split, fixed (seed 0)"} if fraction else {}


def _holdout(args) -> dict:
    """How the evaluation finds the held-out images of a run trained with --holdout."""
    fraction = getattr(args, "holdout", None)
    return {"holdout": fraction, "limit": args.limit} if fraction else {}


def gan_card(args, trainer: GANTrainer, num_train: int, device) -> dict:
    settings = trainer.settings
    optimizer = trainer.objective.optimizer
    generator_lr, critic_lr = trainer.optimizer_g.defaults["lr"], trainer.optimizer_d.defaults["lr"]
    lr = f"lr {critic_lr:g}" if generator_lr == critic_lr else f"lr {generator_lr:g} (generator), {critic_lr:g} (critic)"
    last = {k: trainer.history[k][-1] for k in ("critic_loss", "generator_loss", "gradient_penalty") if k in trainer.history}
    data = dataset_card(args.dataset, args.split, num_train)
    return {
        **data,
        "dataset": data["dataset_description"] or data["dataset"],
        **recipe_card(args),
        "objective": trainer.objective.name,
        "objective_description": trainer.objective.description,
        "sample_image": "samples.png",
        "command": "\n".join(trainer.commands),
        "training_note": getattr(args, "card_note", None),
        "training": {
            "objective": f"{trainer.objective.name} ({trainer.objective.description})",
            "critic": f"{type(trainer.critic).__name__} ({trainer.objective.critic_kind}), {trainer.critic.config['architecture']}, "
            f"width {trainer.critic.config['width']}, norm {trainer.critic.config['norm']}",
            "epochs": trainer.epoch,
            "generator steps": trainer.generator_steps,
            "batch size": settings.batch_size,
            "critic steps per generator step": trainer.n_critic,
            "optimizer": f"{optimizer.name} {lr}" + (f" betas {tuple(optimizer.betas)}" if optimizer.name == "adam" else ""),
            "learning-rate schedule": {"constant": "constant", "linear": "linear decay to 0 over the budget",
                                       "cosine": "cosine decay to 0 over the budget"}[settings.schedule],  # fmt: skip
            "weight clipping": trainer.objective.clip_value or "none",
            "gradient penalty weight": trainer.objective.penalty_weight or "none",
            "R1 penalty (gamma)": trainer.objective.r1_weight or "none",
            "top-k generator updates": (
                f"kept fraction {settings.top_k_decay:g}^epoch, at least {settings.top_k:g} (per process batch)"
                if settings.top_k < 1
                else "none"
            ),
            **({"initialised from": portable(str(args.init_from), root=CHECKOUT)} if getattr(args, "init_from", None) else {}),
            "generator upsampling": getattr(trainer.model, "upsample", "transpose"),
            "extra 3x3 convs per resolution": extra_convs_row(trainer),
            "EMA decay (sampling weights)": settings.ema_decay,
            "precision": "bf16 autocast" if trainer.use_autocast else "fp32",
            **_holdout_row(args),
            "augmentation (critic inputs)": trainer.augment.describe() if settings.augment else "none",
            "seed": settings.seed,
            "training time": training_time(trainer.train_seconds / 60, trainer.wall_seconds / 60, getattr(args, "budget_clock", "wall")),
            "hardware": environment_summary(device),
        },
        "metrics": {f"final {k.replace('_', ' ')}": f"{v:.4f}" for k, v in last.items()},
        "metrics_note": "Losses of the last logged step; GAN losses do not measure sample quality. Look at the samples.",
    }


def extra_convs_row(trainer) -> str:
    return f"generator {trainer.model.extra_convs}, critic {trainer.critic.config.get('extra_convs', 0)}"


def namespace(**fields) -> argparse.Namespace:
    return argparse.Namespace(**fields)
