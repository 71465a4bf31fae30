"""Every GAN objective through the one GANTrainer: on the 2-D ring of 8 Gaussians, and a short MNIST run.

    python benchmarks/objectives.py                     # the ring: all objectives, 2,000 generator steps each
    python benchmarks/objectives.py --steps 200 --only dcgan,fgan-squared-hellinger
    python benchmarks/objectives.py --mnist             # MNIST: all objectives, 70 CPU-seconds each
    python benchmarks/objectives.py --mnist --cpu-seconds 10 --only dcgan,began

Ring data: 8 Gaussians (std 0.05) on a circle of radius 2. Per objective, from 2,500 samples of
the generator: modes covered (a mode counts when at least 1% of the samples are high quality
near it), share of high-quality samples (within 3 std of a mode centre), and W1 to fresh data
by exact optimal transport (POT) on 1,000 + 1,000 points, next to the W1 between two data
samples of that size (the floor an exact generator would reach). Writes
docs/objectives/{ring.md, ring.json, ring.png}.

MNIST: the same conv generator and the conv critic each objective declares
(genhub.models.gan.build_critic), the same budget of process CPU time each, then the evaluator
metrics of genhub.evaluation.evaluate_images (FD, KID, precision, recall, classes drawn) and a
fixed-noise sample grid. Writes docs/objectives/{mnist.md, mnist.json, mnist.png, mnist/*.png}.

Each objective runs with its own registered recipe (optimizer, lr, n_critic, clipping/penalty).
Every MNIST objective writes its own docs/objectives/mnist/<name>.json, and the report is built
from all of them, so disjoint `--only` lists can run as separate 1-thread processes; the last
one to finish (or `--mnist --report-only`) writes the complete table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import ot
import torch
from torch import nn

from genhub.models.nets import mlp
from genhub.objectives import OBJECTIVES, get_objective
from genhub.runtime import portable
from genhub.training import GANTrainer, TrainingDiverged, TrainSettings

RADIUS, STD, MODES = 2.0, 0.05, 8
CENTRES = torch.tensor([[RADIUS * math.cos(2 * math.pi * k / MODES), RADIUS * math.sin(2 * math.pi * k / MODES)] for k in range(MODES)])


def ring(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    modes = torch.randint(0, MODES, (n,), generator=generator)
    return CENTRES[modes] + STD * torch.randn(n, 2, generator=generator)


class PointGenerator(nn.Module):
    """z (N, 2) -> points (N, 2): what GANTrainer needs of a generator, for 2-D data."""

    image_shape = (2,)

    def __init__(self, latent_dim: int = 2, width: int = 128):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp([latent_dim, width, width, 2], activation=nn.ReLU)

    def forward(self, z):
        return self.net(z)

    def sample_latent(self, n, seed=None):
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.latent_dim, generator=generator)


class PointCritic(nn.Module):
    """Points -> a score (N,), k features (N, k), or a reconstruction (N, 2)."""

    image_shape = (2,)

    def __init__(self, outputs: int, width: int = 128):
        super().__init__()
        self.config = {"outputs": outputs, "width": width}
        self.outputs = outputs
        self.net = mlp([2, width, width, outputs], activation=lambda: nn.LeakyReLU(0.2))

    def forward(self, x):
        out = self.net(x)
        return out.squeeze(1) if self.outputs == 1 else out


def critic_for(objective) -> PointCritic:
    """The 2-D counterpart of genhub.models.gan.build_critic: the critic kind the objective declares."""
    if objective.critic_kind == "autoencoder":
        return PointCritic(2)
    return PointCritic(objective.feature_dim if objective.critic_kind == "features" else 1)


def evaluate(points: torch.Tensor, data: torch.Tensor) -> dict:
    distance, nearest = torch.cdist(points, CENTRES).min(1)
    good = distance < 3 * STD
    per_mode = torch.bincount(nearest[good], minlength=MODES)
    w1 = ot.emd2(ot.unif(1000), ot.unif(1000), ot.dist(points[:1000].double().numpy(), data.double().numpy(), metric="euclidean"))
    return {"modes": int((per_mode >= 0.01 * len(points)).sum()), "high_quality": float(good.float().mean()), "w1": float(w1)}


def run(name: str, args) -> tuple[dict, torch.Tensor]:
    torch.manual_seed(args.seed)
    objective = get_objective(name)
    trainer = GANTrainer(
        PointGenerator(),
        critic_for(objective),
        objective,
        settings=TrainSettings(batch_size=args.batch_size, seed=args.seed, progress=False, check_every=1),
    )
    # One epoch of fresh ring points holds every batch the budget of generator steps needs.
    data = ring(args.steps * trainer.n_critic * args.batch_size, torch.Generator().manual_seed(args.seed + 1))
    diverged = None
    try:
        trainer.fit(data, steps=args.steps)
    except TrainingDiverged:
        diverged = f"non-finite losses at generator step {trainer.generator_steps}"
    seconds = trainer.train_seconds
    with torch.no_grad():
        points = trainer.ema(trainer.ema.sample_latent(2500, seed=123))
    if diverged or not torch.isfinite(points).all():
        return {"objective": name, "diverged": diverged or "non-finite samples", "seconds": seconds}, points
    result = {
        "objective": name,
        **evaluate(points, ring(1000, torch.Generator().manual_seed(999))),
        "seconds": seconds,
        "critic_steps": trainer.critic_steps,
    }
    return result, points


def panel_grid(panels: int, panel_size: tuple[float, float], columns: int = 5):
    """A figure of `panels` axes, `columns` per row, all hidden until a panel draws on one."""
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(panel_size[0] * columns, panel_size[1] * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    return figure, list(axes.flat)


def ring_benchmark(names: list[str], args, out: Path) -> None:
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    floor = float(
        ot.emd2(
            ot.unif(1000),
            ot.unif(1000),
            ot.dist(
                ring(1000, torch.Generator().manual_seed(5)).double().numpy(),
                ring(1000, torch.Generator().manual_seed(999)).double().numpy(),
                metric="euclidean",
            ),
        )
    )
    results, samples = [], {}
    for name in names:
        result, points = run(name, args)
        results.append(result)
        samples[name] = points
        print(json.dumps(result), flush=True)
    figure, axes = panel_grid(len(results), (3, 3))
    for axis, result in zip(axes, results):
        axis.axis("on")
        points = samples[result["objective"]]
        axis.scatter(CENTRES[:, 0], CENTRES[:, 1], s=30, c="k", marker="x")
        if torch.isfinite(points).all():
            axis.scatter(points[:, 0], points[:, 1], s=1, alpha=0.3)
        axis.set_xlim(-3, 3)
        axis.set_ylim(-3, 3)
        axis.set_title(result["objective"], fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(out / "ring.png", dpi=90)
    machine = machine_summary(args.threads, load)
    (out / "ring.json").write_text(
        json.dumps({"args": portable(vars(args)), "machine": machine, "w1_floor": floor, "results": results}, indent=2) + "\n"
    )
    lines = [
        "# Every GAN objective on a ring of 8 Gaussians",
        "",
        f"`python benchmarks/objectives.py --steps {args.steps}` on {machine}. {args.steps} generator steps per objective,",
        f"batch {args.batch_size}, each objective's registered recipe. W1 floor (two data samples of 1,000): {floor:.4f}.",
        "",
        "![samples](ring.png)",
        "",
        "| objective | modes (of 8) | high-quality share | W1 to data | W1 / floor | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "diverged" in r:
            lines.append(f"| {r['objective']} | diverged: {r['diverged']} | | | | {r['seconds']:.0f} |")
        else:
            lines.append(
                f"| {r['objective']} | {r['modes']} | {r['high_quality']:.3f} | {r['w1']:.4f} | {r['w1'] / floor:.1f} "
                f"| {r['seconds']:.0f} |"
            )
    (out / "ring.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/ring.md, ring.json, ring.png")


def machine_summary(threads: int, load: str) -> str:
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, {threads} torch thread(s), no GPU; load average at start {load}"


# -- MNIST ------------------------------------------------------------------------------------
MNIST_SHAPE = (1, 28, 28)
# Verdicts, fixed before the run: "no digits" when fewer than 10% of the samples land on the real
# digits' manifold in the evaluator's feature space (precision); "partial" when under half do,
# or fewer than 8 of the 10 digit classes are drawn; else "digits".
NO_DIGITS_PRECISION, DIGITS_PRECISION, DIGITS_CLASSES = 0.1, 0.5, 8


def verdict(metrics: dict) -> str:
    if metrics["precision"] < NO_DIGITS_PRECISION:
        return "no digits"
    if metrics["precision"] < DIGITS_PRECISION or metrics["class_coverage"] < DIGITS_CLASSES:
        return "partial"
    return "digits"


def run_mnist(name: str, args, train_images: torch.Tensor, reference: torch.Tensor, classifier, grids: Path) -> dict:
    """Train one objective for `args.cpu_seconds` of process CPU time through GANTrainer.step, then
    evaluate `args.eval_samples` samples of its EMA generator against MNIST test images."""
    from genhub.evaluation import evaluate_images, generate
    from genhub.models.gan import GenGAN, build_critic

    load = os.getloadavg()[0]
    torch.manual_seed(args.seed)  # the same generator initialisation for every objective
    objective = get_objective(name)
    model = GenGAN(MNIST_SHAPE, latent_dim=args.latent_dim, width=args.width, objective=name)
    critic = build_critic(objective, MNIST_SHAPE, width=args.width)
    trainer = GANTrainer(model, critic, objective, settings=TrainSettings(batch_size=args.batch_size, seed=args.seed, progress=False))
    diverged = None
    wall_started = time.perf_counter()
    try:
        trainer.fit(train_images, seconds=args.cpu_seconds, clock="process")
    except TrainingDiverged:
        diverged = f"non-finite losses at generator step {trainer.generator_steps}"
    result = {
        "objective": name,
        "critic": f"{type(critic).__name__} ({objective.critic_kind})",
        "n_critic": trainer.n_critic,
        "generator_steps": trainer.generator_steps,
        "critic_steps": trainer.critic_steps,
        "train_cpu_seconds": trainer.train_seconds,
        "load_average_at_start": load,
    }
    if diverged:
        return {**result, "diverged": diverged, "wall_seconds": time.perf_counter() - wall_started}
    eval_started = time.process_time()
    trainer.save_grid(grids / f"{name}.png")
    samples = generate(trainer.sampling_model(), args.eval_samples, seed=args.seed)
    if not torch.isfinite(samples).all():
        return {**result, "diverged": "non-finite samples", "wall_seconds": time.perf_counter() - wall_started}
    metrics, details = evaluate_images(samples, reference, classifier=classifier, seed=args.seed)
    metrics["class_counts"] = details["class_histogram"]["counts"]
    return {
        **result,
        **metrics,
        "verdict": verdict(metrics),
        "eval_cpu_seconds": time.process_time() - eval_started,
        "wall_seconds": time.perf_counter() - wall_started,
    }


def mnist_benchmark(names: list[str], args, out: Path) -> None:
    from genhub import load_images
    from genhub.evaluation import reference_images
    from genhub.models.classifier import load_evaluator

    grids = out / "mnist"
    grids.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        train_images = load_images("mnist", split="train").images
        reference, split = reference_images("mnist", MNIST_SHAPE, split="test", limit=args.eval_samples)
        classifier = load_evaluator("mnist")
        for name in names:
            result = run_mnist(name, args, train_images, reference, classifier, grids)
            result.update(
                args=portable(vars(args)),
                machine=machine_summary(args.threads, f"{result['load_average_at_start']:.1f}"),
                reference=f"{len(reference)} MNIST {split} images",
            )
            (grids / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            print(json.dumps(result), flush=True)
    mnist_report(out)


def mnist_report(out: Path) -> None:
    """docs/objectives/mnist.{md,json,png} from every objective's mnist/<name>.json, in registry order."""
    from PIL import Image

    grids = out / "mnist"
    results = [json.loads((grids / f"{name}.json").read_text()) for name in OBJECTIVES if (grids / f"{name}.json").exists()]
    if not results:
        raise SystemExit(f"error: no MNIST results in {grids}; run `python benchmarks/objectives.py --mnist` first")
    missing = [name for name in OBJECTIVES if not (grids / f"{name}.json").exists()]
    args = argparse.Namespace(**results[0]["args"])
    loads = [r["load_average_at_start"] for r in results]
    machine = machine_summary(args.threads, f"{min(loads):.1f} to {max(loads):.1f} (1-minute, at each objective's start)")
    (out / "mnist.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")

    figure, axes = panel_grid(len(results), (2.6, 2.8))
    for axis, result in zip(axes, results):
        if "diverged" not in result:
            axis.imshow(Image.open(grids / f"{result['objective']}.png"), cmap="gray")
        axis.set_title(f"{result['objective']} ({result.get('verdict', 'diverged')})", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "mnist.png", dpi=64)
    plt.close(figure)

    total_cpu = sum(r["train_cpu_seconds"] + r.get("eval_cpu_seconds", 0) for r in results)
    lines = [
        "# Every GAN objective on MNIST, same networks and CPU budget",
        "",
        f"`python benchmarks/objectives.py --mnist --cpu-seconds {args.cpu_seconds:g}` on {machine}.",
        f"Each objective trains the same DCGAN-style conv generator (width {args.width}, latent {args.latent_dim}, same seeded",
        f"initialisation) and the conv critic its objective declares (width {args.width}: one score, "
        f"{get_objective('mmdgan').feature_dim} features, or an",
        f"auto-encoder) with its own registered recipe, batch {args.batch_size}, through the one `GANTrainer`, for",
        f"**{args.cpu_seconds:g} s of process CPU time** (`time.process_time`, 1 torch thread): objectives with n_critic 5 get",
        f"about a fifth of the generator steps. Then {args.eval_samples} samples of the EMA generator are compared with",
        f"{results[0]['reference']} by `genhub.evaluation.evaluate_images` with the bundled evaluator CNN (FD and KID on its",
        "features, precision/recall k=3, classes drawn: digits receiving at least 2% of samples). Total CPU time of",
        f"the run: {total_cpu / 60:.1f} min. One seed, one short run: differences of a few FD points are noise.",
        "",
        f"Verdict (rule fixed before the run): *no digits* when precision < {NO_DIGITS_PRECISION}; *partial* when precision <",
        f"{DIGITS_PRECISION} or fewer than {DIGITS_CLASSES} classes are drawn; else *digits*. An objective that fails in this",
        "budget may still work with longer training or tuning; this table says what it does in the budget.",
        "",
        "![samples](mnist.png)",
        "",
        "| objective | critic | n_critic | generator steps | FD | KID x10^3 | precision | recall | classes | verdict | grid |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        head = f"| {r['objective']} | {r['critic']} | {r['n_critic']} | {r['generator_steps']:,} |"
        if "diverged" in r:
            lines.append(f"{head} | | | | | diverged: {r['diverged']} | |")
        else:
            lines.append(
                f"{head} {r['fd']:.1f} | {r['kid'] * 1000:,.1f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['class_coverage']} | "
                f"{r['verdict']} | [png](mnist/{r['objective']}.png) |"
            )
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    (out / "mnist.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/mnist.md, mnist.json, mnist.png from {len(results)} objectives" + (f"; missing {missing}" if missing else ""))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", action="store_true", help="the short MNIST run instead of the 2-D ring")
    parser.add_argument("--report-only", action="store_true", help="MNIST: rebuild mnist.md/json/png from the per-objective results")
    parser.add_argument("--steps", type=int, default=2000, help="ring: generator steps per objective")
    parser.add_argument("--cpu-seconds", type=float, default=70.0, help="MNIST: process CPU seconds of training per objective")
    parser.add_argument("--width", type=int, default=16, help="MNIST: conv channels of generator and critic")
    parser.add_argument("--latent-dim", type=int, default=64, help="MNIST: generator latent size")
    parser.add_argument("--eval-samples", type=int, default=2000, help="MNIST: generated and test images compared")
    parser.add_argument("--batch-size", type=int, default=None, help="default 256 on the ring, 64 on MNIST")
    parser.add_argument("--only", default=None, help="comma-separated objective names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="docs/objectives")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(OBJECTIVES)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        parser.error(f"unknown objectives {unknown}; known: {', '.join(OBJECTIVES)}")
    for option in ("steps", "width", "latent_dim", "eval_samples", "threads"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be a positive integer")
    if args.cpu_seconds <= 0:
        parser.error("--cpu-seconds must be positive")
    args.batch_size = args.batch_size or (64 if args.mnist else 256)
    if args.batch_size < 2:
        parser.error("--batch-size must be at least 2")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.mnist:
        mnist_benchmark(names, args, out)
    else:
        ring_benchmark(names, args, out)


if __name__ == "__main__":
    main()
