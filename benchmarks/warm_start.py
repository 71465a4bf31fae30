"""Warm-started vs cold-started GAN on 64x64 faces: multi-scale SWD against training time.

    # the run in docs/warm_start (writes there):
    python benchmarks/warm_start.py --batch-norm-baseline --warm-variant critic_warmup=100 --warm-variant generator_lr_scale=0.5
    python benchmarks/warm_start.py --gan-minutes 0.5 --train-images 2000 --out /tmp/ws   # a quick look

One run, same data, same GAN budget, same architecture and objective:
  cold  the generator starts from the DCGAN initialization;
  warm  a conv VAE (Gaussian likelihood, standard prior) is pre-trained first and the
        generator starts from its decoder (genhub.training.warm_start.gan_from_vae).
Every arm trains with genhub's GANTrainer on the same batches and noise, and is evaluated
every --eval-every CPU seconds with the multi-scale sliced Wasserstein distance (SWD) of the
EMA generator's samples (fixed latents) against held-out real faces (fixed, never trained on).
The only evaluator CNN in genhub reads MNIST digits, so SWD is the metric here.

Time is the process CPU time (time.process_time) of the training calls only, with one
torch thread, so other jobs on a shared CPU do not bias one arm against the other; evaluation
is not counted. The VAE pre-training cost is measured the same way and reported separately.
The arms run in worker processes side by side; the cold ones start while the main process
pre-trains the VAE. Optional arms: a cold start of the usual batch-norm DCGAN generator
(--batch-norm-baseline) and warm starts with remedies (--warm-variant: a critic warm-up with
the generator held still, a smaller generator learning rate, early generator layers slowed or
frozen). Outputs: curves.png, samples.png, results.json and README-ready tables in --out.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path

import torch

from genhub import GenVAE, load_images
from genhub.evaluation.metrics import laplacian_variance, sliced_wasserstein
from genhub.images import to_unit_range
from genhub.models.gan import build_critic, gan_class
from genhub.objectives import OBJECTIVES, get_objective
from genhub.runtime import portable
from genhub.training import Callback, Every, GANTrainer, TrainSettings, VAESettings, VAETrainer
from genhub.training.vae import BEST_FOLDER
from genhub.training.warm_start import gan_from_vae, slow_early_layers

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="anime-faces")
    parser.add_argument("--train-images", type=int, default=20000, help="the first N images train both the VAE and the GANs")
    parser.add_argument("--eval-images", type=int, default=256, help="held-out real images (after the training ones) for SWD")
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="conv width of the VAE decoder = generator, and of the critic")
    parser.add_argument("--objective", choices=list(OBJECTIVES), default="dcgan")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--vae-epochs", type=int, default=2)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--kl-weight", type=float, default=1.0)
    parser.add_argument("--gan-minutes", type=float, default=3.0, help="CPU minutes of GAN training per arm")
    parser.add_argument("--eval-every", type=float, default=15.0, help="CPU seconds of training between SWD evaluations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/warm_start")
    parser.add_argument("--work", default="runs/warm_start", help="the VAE run folder (checkpoints, grids)")
    parser.add_argument(
        "--batch-norm-baseline",
        action="store_true",
        help="also train a cold start of genhub's usual DCGAN generator (with batch norm), as a reference",
    )
    parser.add_argument(
        "--warm-variant",
        type=parse_variant,
        action="append",
        default=[],
        help="an extra warm arm with remedies, e.g. critic_warmup=100,generator_lr_scale=0.5 or "
        "early_layers=2,early_lr_scale=0 (repeatable)",
    )
    return parser.parse_args(argv)


def use_one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def load_data(args) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 training images and the held-out real images SWD compares against."""
    images = load_images(args.dataset, limit=args.train_images + args.eval_images).images
    if len(images) < args.train_images + args.eval_images:
        raise SystemExit(f"{args.dataset} has {len(images)} images, fewer than --train-images + --eval-images")
    return images[: args.train_images], images[args.train_images :]


def pretrain_vae(args, train: torch.Tensor) -> tuple[Path, float, list[dict]]:
    """genhub.training's VAE trainer on the same images; returns the folder of the VAE with the
    best validation ELBO, the CPU seconds it took (per-epoch validation and grids included) and its history."""
    work = Path(args.work) / "vae"
    torch.manual_seed(args.seed)
    vae = GenVAE(
        image_shape=tuple(train.shape[1:]),
        latent_dim=args.latent_dim,
        architecture="conv",
        width=args.width,
        likelihood="gaussian",
        prior="standard",
    )
    held_out = len(train) // 20
    settings = VAESettings(lr=args.vae_lr, batch_size=args.batch_size, kl_weight=args.kl_weight, seed=args.seed, progress=False)
    trainer = VAETrainer(vae, out=work, settings=settings)
    started = time.process_time()
    trainer.fit(train[held_out:], args.vae_epochs, validation=train[:held_out])
    return work / BEST_FOLDER, time.process_time() - started, trainer.epoch_log


def fixed_latents(args, count: int) -> torch.Tensor:
    """The codes every model is scored and shown with (the same for the VAE and all GANs)."""
    return torch.randn(count, args.latent_dim, generator=torch.Generator().manual_seed(args.seed + 1))


@torch.no_grad()
def decode_all(model, latents: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model.decode(z) for z in latents.split(128)]).clamp(0, 1)


VARIANT_KEYS = {"critic_warmup": int, "generator_lr_scale": float, "early_layers": int, "early_lr_scale": float}


def parse_variant(text: str) -> dict:
    """ "critic_warmup=100,generator_lr_scale=0.5" -> {"critic_warmup": 100, "generator_lr_scale": 0.5}."""
    variant = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key not in VARIANT_KEYS or not value:
            raise argparse.ArgumentTypeError(f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(VARIANT_KEYS)}")
        try:
            variant[key] = VARIANT_KEYS[key](value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r}: {key} takes a number ({VARIANT_KEYS[key].__name__})") from None
    if ("early_layers" in variant) != ("early_lr_scale" in variant):
        raise argparse.ArgumentTypeError(f"{text!r}: early_layers and early_lr_scale go together")
    return variant


def variant_name(variant: dict) -> str:
    parts = []
    if variant.get("critic_warmup"):
        parts.append(f"critic warm-up {variant['critic_warmup']} steps")
    if variant.get("generator_lr_scale", 1.0) != 1.0:
        parts.append(f"generator lr x{variant['generator_lr_scale']:g}")
    if variant.get("early_layers"):
        how = "frozen" if variant["early_lr_scale"] == 0 else f"lr x{variant['early_lr_scale']:g}"
        parts.append(f"first {variant['early_layers']} generator layers {how}")
    return "warm" + (f", {', '.join(parts)}" if parts else "")


def train_arm(
    name: str,
    model,
    args,
    train: torch.Tensor,
    real: torch.Tensor,
    critic_warmup: int = 0,
    generator_lr_scale: float = 1.0,
    early_layers: int = 0,
    early_lr_scale: float = 1.0,
) -> dict:
    """Train `model` for --gan-minutes of CPU time with the one GAN trainer, scoring the EMA
    generator's SWD every --eval-every CPU seconds. Returns the timeline and final samples.

    critic_warmup: generator steps with the generator's learning rate at 0, so a warm-started
    generator is not pushed around by a critic that has not learned anything yet;
    generator_lr_scale: the generator's learning rate relative to the objective's;
    early_layers, early_lr_scale: the generator's first layers (projection, then transposed
    convs) train at this fraction of its learning rate, 0 freezing them."""
    real, latents = to_unit_range(real), fixed_latents(args, len(real))
    torch.manual_seed(args.seed)  # the critic's initial weights, the same in every arm
    objective = get_objective(args.objective)
    critic = build_critic(objective, tuple(train.shape[1:]), width=args.width)
    settings = TrainSettings(batch_size=args.batch_size, seed=args.seed, progress=False, generator_lr_scale=generator_lr_scale)
    trainer = GANTrainer(model, critic, objective, out=None, settings=settings)
    slow_early_layers(trainer.optimizer_g, model, early_layers, early_lr_scale)
    timeline = []

    def score(trainer: GANTrainer) -> None:
        swd = sliced_wasserstein(real, decode_all(trainer.sampling_model(), latents), seed=0)
        seconds = trainer.elapsed()
        timeline.append(
            {"cpu_seconds": seconds, "generator_steps": trainer.generator_steps, "swd": swd["mean"], "swd_levels": swd["levels"]}
        )
        print(
            f"[{name}] {seconds / 60:5.2f} CPU min  step {trainer.generator_steps:5d}  SWD {swd['mean']:.1f} "
            f"({', '.join(f'{v:.1f}' for v in swd['levels'])})",
            flush=True,
        )

    # The same seeded epochs in every arm: the arms see the same data in the same order.
    trainer.fit(
        train,
        seconds=args.gan_minutes * 60,
        clock="process",
        callbacks=[Every(score, seconds=args.eval_every), CriticWarmup(critic_warmup)],
    )
    return {
        "name": name,
        "timeline": timeline,
        "samples": decode_all(trainer.sampling_model(), latents),
        "history_last": {k: v[-1] for k, v in trainer.history.items()},
    }


class CriticWarmup(Callback):
    """The generator's learning rate is 0 for its first `steps` steps, so a warm-started generator
    is not pushed around by a critic that has not learned anything yet."""

    def __init__(self, steps: int):
        self.steps, self.base_lrs = steps, None

    def on_step_end(self, trainer: GANTrainer) -> None:
        if self.base_lrs is None:
            self.base_lrs = [group["lr"] for group in trainer.optimizer_g.param_groups]
        for group, lr in zip(trainer.optimizer_g.param_groups, self.base_lrs):
            group["lr"] = 0.0 if trainer.generator_steps < self.steps else lr


def run_cold(args, batch_norm: bool = False) -> dict:
    use_one_thread()
    train, real = load_data(args)
    torch.manual_seed(args.seed)  # the generator's initial weights
    model = gan_class(args.objective)(
        image_shape=tuple(train.shape[1:]),
        latent_dim=args.latent_dim,
        architecture="dcgan",
        width=args.width,
        batch_norm=batch_norm,
        objective=args.objective,
    )
    return train_arm("cold, batch-norm generator" if batch_norm else "cold", model, args, train, real)


def run_warm(args, vae_folder: Path, variant: dict) -> dict:
    use_one_thread()
    train, real = load_data(args)
    return train_arm(variant_name(variant), gan_from_vae(GenVAE.from_pretrained(vae_folder), args.objective), args, train, real, **variant)


def smoothed(timeline: list[dict], window: int = 3) -> list[dict]:
    """The timeline with each SWD replaced by the mean of it and the previous window - 1 ones:
    SWD on 256 images moves by about +-5 between evaluations, so one lucky evaluation can
    decide a raw crossing; both arms get the same filter."""
    swds = [point["swd"] for point in timeline]
    means = [sum(recent) / len(recent) for recent in (swds[max(0, i - window + 1) : i + 1] for i in range(len(swds)))]
    return [{**point, "swd": mean} for point, mean in zip(timeline, means)]


def first_time_at_or_below(timeline: list[dict], target: float) -> float | None:
    for point in timeline:
        if point["swd"] <= target:
            return point["cpu_seconds"]
    return None


def fraction_of(budget: float, seconds: float | None, extra: float = 0.0) -> float | None:
    """(seconds + extra) / budget, None where the target was never reached."""
    return None if seconds is None else (seconds + extra) / budget


def in_minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.2f}"


def sharpness(images: torch.Tensor) -> dict:
    values = laplacian_variance(images)
    return {"mean": values.mean().item(), "std": values.std().item(), "median": values.median().item()}


COLOURS = {"cold": "tab:blue", "warm": "tab:orange", "cold, batch-norm generator": "tab:grey"}


def plot_curves(path: Path, arms: list[dict], target: float, crossing: float | None, vae_seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    extra_colours = iter(["tab:red", "tab:green", "tab:purple", "tab:brown"])
    for arm in arms:
        colour = COLOURS.get(arm["name"]) or next(extra_colours)
        minutes = [p["cpu_seconds"] / 60 for p in arm["timeline"]]
        axis.plot(minutes, [p["swd"] for p in arm["timeline"]], "o-", color=colour, markersize=3, label=arm["name"])
    warm = next(arm for arm in arms if arm["name"] == "warm")
    offset = vae_seconds / 60
    axis.plot(
        [p["cpu_seconds"] / 60 + offset for p in warm["timeline"]],
        [p["swd"] for p in warm["timeline"]],
        "--",
        color="tab:orange",
        alpha=0.5,
        label=f"warm, shifted by the {offset:.1f} min of VAE pre-training",
    )
    axis.axhline(target, color="black", linewidth=0.8, linestyle=":", label=f"cold final SWD {target:.1f}")
    if crossing is not None:
        axis.axvline(crossing / 60, color="tab:orange", linewidth=0.8, linestyle=":")
    axis.set_yscale("log")
    axis.set_xlabel("GAN training time (CPU minutes, 1 thread)")
    axis.set_ylabel("multi-scale SWD x1000 (lower is better)")
    axis.set_title("GAN on 64x64 anime faces: warm start from a VAE decoder vs cold start", fontsize=10)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_samples(path: Path, panels: list[tuple[str, torch.Tensor]], count: int = 32) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genhub.images import make_grid

    figure, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 6.8))
    for axis, (title, images) in zip(axes, panels):
        axis.imshow(make_grid(images[:count], nrow=4).permute(1, 2, 0).numpy())
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def machine_summary() -> str:
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    gpu = "no GPU" if not torch.cuda.is_available() else torch.cuda.get_device_name()
    return (
        f"{os.cpu_count()}-core {platform.machine()} CPU, {gpu}, torch {torch.__version__}, 1 torch thread per arm "
        f"(shared with other jobs; load average at the end {load})"
    )


def write_report(args, out: Path, arms: dict[str, dict], vae: dict, real: torch.Tensor, wall_seconds: float) -> dict:
    cold, warm = arms["cold"], arms["warm"]
    target = cold["timeline"][-1]["swd"]
    budget = cold["timeline"][-1]["cpu_seconds"]
    crossing = first_time_at_or_below(warm["timeline"], target)
    sharp = {"real (held out)": sharpness(real), "VAE samples (mean images)": sharpness(vae["samples"])}
    sharp.update({f"GAN: {arm['name']}": sharpness(arm["samples"]) for arm in arms.values()})
    reach = {arm["name"]: first_time_at_or_below(arm["timeline"], target) for arm in arms.values()}
    smooth_target = smoothed(cold["timeline"])[-1]["swd"]
    smooth_reach = {arm["name"]: first_time_at_or_below(smoothed(arm["timeline"]), smooth_target) for arm in arms.values()}
    results = {
        "config": portable({k: v for k, v in vars(args).items() if k != "warm_variant"})
        | {"warm_variants": [variant_name(v) for v in args.warm_variant]},
        "machine": machine_summary(),
        "wall_minutes": wall_seconds / 60,
        "vae_pretraining_cpu_seconds": vae["seconds"],
        "vae_history": vae["history"],
        "vae_samples_swd": vae["swd"],
        "real_training_images_swd": vae["real_vs_real_swd"],
        "cold_final_swd": target,
        "gan_budget_cpu_seconds": budget,
        "warm_reaches_cold_final_at_cpu_seconds": crossing,
        "ratio_gan_time": fraction_of(budget, crossing),
        "ratio_including_vae": fraction_of(budget, crossing, vae["seconds"]),
        "bar_met": crossing is not None and crossing <= budget / 2,
        "smoothed_3_evals": {
            "cold_final_swd": smooth_target,
            "reaches_cold_final_at_cpu_seconds": smooth_reach,
            "ratio_gan_time": fraction_of(budget, smooth_reach["warm"]),
        },
        "reaches_cold_final_at_cpu_seconds": reach,
        "final_swd": {arm["name"]: arm["timeline"][-1]["swd"] for arm in arms.values()},
        "sharpness_laplacian_variance": sharp,
        "timelines": {arm["name"]: arm["timeline"] for arm in arms.values()},
        "last_losses": {arm["name"]: arm["history_last"] for arm in arms.values()},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot_curves(out / "curves.png", list(arms.values()), target, crossing, vae["seconds"])
    plot_samples(
        out / "samples.png",
        [("real (held out)", real), ("VAE (mean images)", vae["samples"])]
        + [(f"GAN: {arm['name']}", arm["samples"]) for arm in arms.values()],
    )
    ordered = list(arms.values())
    lines = ["| eval | " + " | ".join(f"{arm['name']}: CPU min / steps / SWD" for arm in ordered) + " |", "|---|" + "---|" * len(ordered)]
    for index, points in enumerate(zip(*(arm["timeline"] for arm in ordered))):
        lines.append(
            f"| {index} | " + " | ".join(f"{p['cpu_seconds'] / 60:.2f} / {p['generator_steps']} / {p['swd']:.1f}" for p in points) + " |"
        )
    lines += [
        "",
        "| arm | final SWD | reaches the cold final SWD at (CPU min) | the same on 3-evaluation running means |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {results['final_swd'][name]:.1f} | {in_minutes(reach[name])} | {in_minutes(smooth_reach[name])} |" for name in reach
    ]
    lines += ["", "| images | Laplacian variance: mean | std | median |", "|---|---|---|---|"]
    lines += [f"| {name} | {v['mean']:.0f} | {v['std']:.0f} | {v['median']:.0f} |" for name, v in sharp.items()]
    (out / "tables.md").write_text("\n".join(lines) + "\n")
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    use_one_thread()
    started = time.time()
    train, real = load_data(args)  # decodes and caches the images once, before the workers read them
    variants = [{}] + args.warm_variant
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=2 + args.batch_norm_baseline + len(args.warm_variant), mp_context=context
    ) as pool:
        # The cold arms need no VAE: they train while this process pre-trains it.
        futures = [pool.submit(run_cold, args)] + ([pool.submit(run_cold, args, True)] if args.batch_norm_baseline else [])
        vae_folder, vae_seconds, vae_history = pretrain_vae(args, train)
        print(
            f"[VAE] pre-training: {vae_seconds / 60:.2f} CPU min, best validation -ELBO {-max(h['val_elbo'] for h in vae_history):.1f}",
            flush=True,
        )
        futures += [pool.submit(run_warm, args, vae_folder, variant) for variant in variants]
        arms = {}
        for future in futures:
            arm = future.result()
            arms[arm["name"]] = arm
    vae_samples = decode_all(GenVAE.from_pretrained(vae_folder), fixed_latents(args, len(real)))
    real = real.float() / 255
    vae = {
        "seconds": vae_seconds,
        "history": vae_history,
        "samples": vae_samples,
        "swd": sliced_wasserstein(real, vae_samples, seed=0)["mean"],
    }
    vae["real_vs_real_swd"] = sliced_wasserstein(real, train[: len(real)].float() / 255, seed=0)["mean"]  # the floor: SWD's own noise
    results = write_report(args, Path(args.out), arms, vae, real, time.time() - started)
    crossing = results["warm_reaches_cold_final_at_cpu_seconds"]
    print(
        f"cold final SWD {results['cold_final_swd']:.1f} after {results['gan_budget_cpu_seconds'] / 60:.2f} CPU min; warm reaches it at "
        + (
            f"{crossing / 60:.2f} CPU min (ratio {results['ratio_gan_time']:.2f}, {results['ratio_including_vae']:.2f} with the VAE)"
            if crossing is not None
            else "never within the budget"
        )
        + f"; bar (<= 0.5) {'met' if results['bar_met'] else 'missed'}"
    )
    smooth = results["smoothed_3_evals"]
    print(
        f"on 3-evaluation running means: cold final {smooth['cold_final_swd']:.1f}, warm ratio "
        + (f"{smooth['ratio_gan_time']:.2f}" if smooth["ratio_gan_time"] is not None else "never")
    )
    return results


if __name__ == "__main__":
    main()
