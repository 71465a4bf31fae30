"""Every GAN objective on the 2-D ring of 8 Gaussians, through the one GANTrainer.

    python benchmarks/objectives.py                     # all objectives, 2,000 generator steps each
    python benchmarks/objectives.py --steps 200 --only dcgan,fgan-squared-hellinger

Data: 8 Gaussians (std 0.05) on a circle of radius 2. Per objective, from 2,500 samples of the
generator: modes covered (a mode counts when at least 1% of the samples are high quality
near it), share of high-quality samples (within 3 std of a mode centre), and W1 to fresh data
by exact optimal transport (POT) on 1,000 + 1,000 points, next to the W1 between two data
samples of that size (the floor an exact generator would reach). Each objective runs with
its own registered recipe (optimizer, lr, n_critic, clipping/penalty). Writes
docs/objectives/{ring.md, ring.json, ring.png}. (The short MNIST run is not done yet.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import ot
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from genhub.nets import mlp  # noqa: E402
from genhub.objectives import OBJECTIVES, get_objective  # noqa: E402
from genhub.trainer import GANTrainer, TrainSettings  # noqa: E402

RADIUS, STD, MODES = 2.0, 0.05, 8
CENTRES = torch.tensor([[RADIUS * math.cos(2 * math.pi * k / MODES), RADIUS * math.sin(2 * math.pi * k / MODES)] for k in range(MODES)])
FEATURE_OBJECTIVES = {"mcgan", "mmdgan", "cramer"}
AUTOENCODER_OBJECTIVES = {"ebgan", "began", "magan"}


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


def critic_for(name: str) -> PointCritic:
    if name in AUTOENCODER_OBJECTIVES:
        return PointCritic(2)
    return PointCritic(16 if name in FEATURE_OBJECTIVES else 1)


def evaluate(points: torch.Tensor, data: torch.Tensor) -> dict:
    distance, nearest = torch.cdist(points, CENTRES).min(1)
    good = distance < 3 * STD
    per_mode = torch.bincount(nearest[good], minlength=MODES)
    w1 = ot.emd2(ot.unif(1000), ot.unif(1000), ot.dist(points[:1000].double().numpy(), data.double().numpy(), metric="euclidean"))
    return {"modes": int((per_mode >= 0.01 * len(points)).sum()), "high_quality": float(good.float().mean()), "w1": float(w1)}


def run(name: str, args) -> tuple[dict, torch.Tensor]:
    torch.manual_seed(args.seed)
    objective = get_objective(name)
    trainer = GANTrainer(PointGenerator(), critic_for(name), objective, settings=TrainSettings(batch_size=args.batch_size, seed=args.seed, progress=False))
    data = torch.Generator().manual_seed(args.seed + 1)
    started = time.perf_counter()
    diverged = None
    while trainer.generator_steps < args.steps:
        logs = trainer.step(ring(args.batch_size, data))
        if logs is not None and not all(torch.isfinite(v).all() for v in logs.values()):
            diverged = f"non-finite losses at generator step {trainer.generator_steps}"
            break
    seconds = time.perf_counter() - started
    with torch.no_grad():
        points = trainer.ema(trainer.ema.sample_latent(2500, seed=123))
    if diverged or not torch.isfinite(points).all():
        return {"objective": name, "diverged": diverged or "non-finite samples", "seconds": seconds}, points
    result = {"objective": name, **evaluate(points, ring(1000, torch.Generator().manual_seed(999))), "seconds": seconds, "critic_steps": trainer.critic_steps}
    return result, points


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="generator steps per objective")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--only", default=None, help="comma-separated objective names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="docs/objectives")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(OBJECTIVES)
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        parser.error(f"unknown objectives {unknown}; known: {', '.join(OBJECTIVES)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    floor = float(ot.emd2(ot.unif(1000), ot.unif(1000), ot.dist(ring(1000, torch.Generator().manual_seed(5)).double().numpy(), ring(1000, torch.Generator().manual_seed(999)).double().numpy(), metric="euclidean")))
    results, samples = [], {}
    for name in names:
        result, points = run(name, args)
        results.append(result)
        samples[name] = points
        print(json.dumps(result), flush=True)
    columns = 5
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, result in zip(axes.flat, results):
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
    machine = f"{platform.machine()} CPU, {os.cpu_count()} cores, {args.threads} torch thread(s), no GPU; load average at start {load}"
    (out / "ring.json").write_text(json.dumps({"args": vars(args), "machine": machine, "w1_floor": floor, "results": results}, indent=2) + "\n")
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
            lines.append(f"| {r['objective']} | {r['modes']} | {r['high_quality']:.3f} | {r['w1']:.4f} | {r['w1'] / floor:.1f} | {r['seconds']:.0f} |")
    (out / "ring.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/ring.md, ring.json, ring.png")


if __name__ == "__main__":
    main()
