"""genhub's recipes vs the classic recipes they replace, at equal compute on MNIST.

    python benchmarks/quality.py --budget 300          # CPU seconds of training per recipe
    python benchmarks/quality.py --budget 60 --samples 2000 --threads 1    # a quick run
    python benchmarks/quality.py --threads 1 --jobs 3     # three recipes at once, one thread each
    python benchmarks/quality.py --seeds 0 1 --jobs 4     # every recipe twice; the table shows means

Every recipe, genhub's and the classic ones, is a file in recipes/quality/. genhub's are
train/gan.py and train/vae.py recipes, trained through genhub.training's trainers for the budget;
where they differ from the scripts' defaults, the defaults are trained too and shown beside
("defaults" rows), outside the verdict. The classic ones name the reference implementation
below (`implementation`) and its settings; their loops are the classic code being compared
against, so they stay plain PyTorch.

Every recipe trains on the same real data for the same budget, in one run, one after
another, then is evaluated with genhub.evaluation against MNIST test (FD, KID, precision,
recall, class coverage and entropy, SWD) and, for the VAEs, the IWAE NLL on binarized-MNIST
validation. Results go to docs/quality.md and docs/quality.json.

The budget is counted in CPU seconds of the process that trains the recipe
(time.process_time), not wall-clock time, so that other jobs on a shared machine do not
shorten one recipe more than another, and recipes may train side by side in separate
processes (--jobs) without sharing a budget; on a GPU it is wall-clock time (after
synchronizing), and recipes run one after another.

The pairs are described in each recipe file's comments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genhub import load_images
from genhub.evaluation import METRICS, evaluate_images, generate
from genhub.evaluation.metrics import iwae_nll
from genhub.images import to_signed_range, to_unit_range
from genhub.models.classifier import load_evaluator
from genhub.runtime import environment_summary, pick_device, seed_everything
from genhub.training import read_recipe, recipe_args, train_for_budget

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes" / "quality"

LOG_2PI = math.log(2 * math.pi)


# -- the classic recipes -------------------------------------------------------------------------
class LabDCGANGenerator(nn.Module):
    """z (100) as a 1x1 map -> transposed convs 5, 5, 5 stride 2, 5, 4 -> 28x28, BN, sigmoid."""

    def __init__(self, latent_dim: int = 100, widths=(128, 64, 32, 16)):
        super().__init__()
        a, b, c, d = widths
        block = lambda i, o, k, s=1: [nn.ConvTranspose2d(i, o, k, s, bias=False), nn.BatchNorm2d(o), nn.ReLU()]  # noqa: E731
        self.net = nn.Sequential(
            *block(latent_dim, a, 5),
            *block(a, b, 5),
            *block(b, c, 5, 2),
            *block(c, d, 5),
            nn.ConvTranspose2d(d, 1, 4),
            nn.Sigmoid(),
        )

    def forward(self, z):
        return self.net(z[:, :, None, None])


class LabDCGANDiscriminator(nn.Module):
    """The generator mirrored: convs k4, k5, k5 stride 2, k5, k5 (28 -> 25 -> 21 -> 9 -> 5 -> 1), sigmoid."""

    def __init__(self, widths=(16, 32, 64, 128)):
        super().__init__()
        a, b, c, d = widths
        self.net = nn.Sequential(
            nn.Conv2d(1, a, 4),
            nn.LeakyReLU(0.2),
            nn.Conv2d(a, b, 5, bias=False),
            nn.BatchNorm2d(b),
            nn.LeakyReLU(0.2),
            nn.Conv2d(b, c, 5, 2, bias=False),
            nn.BatchNorm2d(c),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, d, 5, bias=False),
            nn.BatchNorm2d(d),
            nn.LeakyReLU(0.2),
            nn.Conv2d(d, 1, 5),
            nn.Flatten(),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


class ClassicWGANGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100):
        super().__init__()
        layers, sizes = [], [latent_dim, 64, 256, 512]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.BatchNorm1d(fan_out), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(512, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))

    def forward(self, z):
        return self.net(z)


class ClassicVAE(nn.Module):
    """The lab MLP VAE: encoder 784-512-256-128 with BN, latent 32, decoder mirrored, sigmoid."""

    image_shape = (1, 28, 28)
    latent_dim = 32

    def __init__(self):
        super().__init__()

        def stack(sizes):
            layers = []
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                layers += [nn.Linear(fan_in, fan_out), nn.BatchNorm1d(fan_out), nn.ReLU()]
            return layers

        self.encoder = nn.Sequential(nn.Flatten(), *stack([784, 512, 256, 128]), nn.Linear(128, 64))
        self.decoder = nn.Sequential(*stack([32, 128, 256, 512]), nn.Linear(512, 784), nn.Unflatten(1, (1, 28, 28)))

    @property
    def device(self):
        return next(self.parameters()).device

    def loss(self, x):
        mean, log_var = self.encoder(x).chunk(2, 1)
        z = mean + (0.5 * log_var).exp() * torch.randn_like(mean)
        reconstruction = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        kl = -0.5 * (1 + log_var - mean.pow(2) - log_var.exp()).sum()
        return (reconstruction + kl) / len(x)

    def sample_latent(self, n, seed=None):
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    def decode(self, z):
        return torch.sigmoid(self.decoder(z))

    def iwae_bound(self, x, k, chunk=100):
        """The same importance-weighted bound as GenVAE.iwae_bound, for this model."""
        mean, log_var = self.encoder(x).chunk(2, 1)
        std = (0.5 * log_var).exp()
        log_weights = []
        for start in range(0, k, chunk):
            count = min(chunk, k - start)
            z = mean + std * torch.randn(count, *mean.shape, device=x.device)
            logits = self.decoder(z.flatten(0, 1)).unflatten(0, (count, len(x)))
            log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").flatten(2).sum(-1)
            log_pz = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
            log_qz = -0.5 * (LOG_2PI + log_var + (z - mean) ** 2 / log_var.exp()).sum(-1)
            log_weights.append(log_px + log_pz - log_qz)
        return torch.logsumexp(torch.cat(log_weights), 0) - math.log(k)


class Sampler(nn.Module):
    """Wraps a classic generator in the interface genhub.evaluation.generate expects."""

    def __init__(self, generator: nn.Module, latent_dim: int, to_unit=lambda x: x):
        super().__init__()
        self.generator, self.latent_dim, self.to_unit, self.image_shape = generator, latent_dim, to_unit, (1, 28, 28)

    @property
    def device(self):
        return next(self.parameters()).device

    def sample_latent(self, n, seed=None):
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    def decode(self, z):
        return self.to_unit(self.generator(z))


# -- budgeted training loops ----------------------------------------------------------------------
class Budget:
    """CPU seconds of this process on CPU; wall-clock seconds on CUDA."""

    def __init__(self, seconds: float, device: torch.device):
        self.seconds, self.device = seconds, device
        self.clock = time.perf_counter if device.type == "cuda" else time.process_time
        self.start = self.clock()
        self.wall_start = time.perf_counter()

    def used(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return self.clock() - self.start

    def left(self) -> bool:
        return self.used() < self.seconds

    def fraction(self) -> float:
        return min(self.used() / self.seconds, 1.0)


def batches(data: torch.Tensor, batch_size: int, generator: torch.Generator):
    """Endless shuffled batches of uint8 images."""
    while True:
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data) - batch_size + 1, batch_size):
            yield data[order[start : start + batch_size].to(data.device)]


def budgeted_batches(data: torch.Tensor, batch_size: int, budget: Budget, seed: int, check_every: int = 5):
    """Shuffled batches until the budget is spent, checked every `check_every` batches (reading
    the clock, and on CUDA synchronizing, at every step would cost more than the step)."""
    for count, batch in enumerate(batches(data, batch_size, torch.Generator().manual_seed(seed)), start=1):
        yield batch
        if count % check_every == 0 and not budget.left():
            return


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_genhub(recipe: Path, data: torch.Tensor, budget: Budget, seed: int, validation: torch.Tensor):
    """A genhub recipe file through genhub.training's trainer for the budget (the trainer's own
    clock: process CPU time on a CPU, synchronized wall time on CUDA)."""
    args = recipe_args(recipe, seed=seed, device=str(budget.device), no_progress=True)
    script = read_recipe(recipe)["script"]
    model, trainer = train_for_budget(script, args, data, budget.seconds, budget.device, validation=validation)
    if script == "gan":
        info = {"critic steps": trainer.critic_steps, "generator steps": trainer.generator_steps}
    else:
        info = {"steps": trainer.optimizer_steps}
    return model, info, trainer.train_seconds


def train_lab_dcgan(data, budget: Budget, seed: int, recipe: dict):
    latent = recipe["latent_dim"]
    generator, discriminator = LabDCGANGenerator(latent).to(budget.device), LabDCGANDiscriminator().to(budget.device)
    opt_g = torch.optim.Adam(generator.parameters(), recipe["lr"], betas=tuple(recipe["betas"]))
    opt_d = torch.optim.Adam(discriminator.parameters(), recipe["lr"], betas=tuple(recipe["betas"]))
    steps = 0
    for real in budgeted_batches(data, recipe["batch_size"], budget, seed):
        real = to_unit_range(real)
        fake = generator(torch.randn(len(real), latent, device=budget.device))
        ones, zeros = torch.ones(len(real), device=budget.device), torch.zeros(len(real), device=budget.device)
        gradient_step(
            opt_d, F.binary_cross_entropy(discriminator(real), ones) + F.binary_cross_entropy(discriminator(fake.detach()), zeros)
        )
        gradient_step(opt_g, F.binary_cross_entropy(discriminator(fake), ones))
        steps += 1
    return Sampler(generator, latent), {"critic steps": steps, "generator steps": steps}


def train_classic_wgan(data, budget: Budget, seed: int, recipe: dict):
    latent, clip = recipe["latent_dim"], recipe["clip"]
    generator = ClassicWGANGenerator(latent).to(budget.device)
    critic = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 64), nn.LeakyReLU(0.2), nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1)
    ).to(budget.device)
    opt_g, opt_c = torch.optim.RMSprop(generator.parameters(), recipe["lr"]), torch.optim.RMSprop(critic.parameters(), recipe["lr"])
    critic_steps = generator_steps = 0
    for real in budgeted_batches(data, recipe["batch_size"], budget, seed):  # the budget is checked after each generator step
        real = to_signed_range(real)
        fake = generator(torch.randn(len(real), latent, device=budget.device))
        gradient_step(opt_c, critic(fake.detach()).mean() - critic(real).mean())
        for parameter in critic.parameters():
            parameter.data.clamp_(-clip, clip)
        critic_steps += 1
        if critic_steps % recipe["n_critic"] == 0:
            gradient_step(opt_g, -critic(generator(torch.randn(len(real), latent, device=budget.device))).mean())
            generator_steps += 1
    return Sampler(generator, latent, lambda x: (x + 1) / 2), {"critic steps": critic_steps, "generator steps": generator_steps}


def train_classic_vae(data, budget: Budget, seed: int, recipe: dict):
    model = ClassicVAE().to(budget.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    steps = 0
    for real in budgeted_batches(data, recipe["batch_size"], budget, seed):
        gradient_step(optimizer, model.loss(to_unit_range(real)))
        steps += 1
    return model, {"steps": steps}


CLASSIC = {"lab-dcgan": train_lab_dcgan, "mlp-wgan": train_classic_wgan, "mlp-vae": train_classic_vae}
RECIPES = [
    # (recipe file in recipes/quality, family, pair); pair "default" rows are shown beside, outside the verdict
    ("genhub-dcgan.toml", "gan-bce", "genhub"),
    ("classic-lab-dcgan.toml", "gan-bce", "classic"),
    ("genhub-wgan-gp.toml", "gan-wasserstein", "genhub"),
    ("default-wgan-gp.toml", "gan-wasserstein", "default"),
    ("classic-wgan.toml", "gan-wasserstein", "classic"),
    ("genhub-vae.toml", "vae", "genhub"),
    ("default-vae.toml", "vae", "default"),
    ("classic-vae.toml", "vae", "classic"),
]
COLUMNS = ["fd", "kid", "precision", "recall", "class_coverage", "class_entropy_bits", "swd", "nll"]


def evaluation_data(args, device) -> dict:
    """What every recipe is evaluated against: MNIST test (reference), binarized-MNIST validation
    (NLL) and the evaluator CNN."""
    return {
        "reference": to_unit_range(load_images("mnist", split="test").images[: args.samples]).to(device),
        "nll_images": to_unit_range(load_images("binarized-mnist", split="validation").images[: args.nll_images]),
        "classifier": load_evaluator("mnist", device=device),
    }


def run_recipe(index: int, args, seed: int) -> dict:
    """Train recipe RECIPES[index] for the budget with this seed and evaluate it. Runs in a worker
    process with --jobs > 1, so it loads its own data."""
    if args.threads:
        torch.set_num_threads(args.threads)
    file, family, pair = RECIPES[index]
    recipe = read_recipe(RECIPE_DIR / file)
    fields = recipe["fields"]
    name = recipe["description"] or file
    device = pick_device(args.device)
    data = load_images(fields["dataset"], split="train").images.to(device)
    evaluation = evaluation_data(args, device)
    seed_everything(seed)
    budget = Budget(args.budget, device)
    if recipe["script"] == "classic":
        model, train_info = CLASSIC[fields["implementation"]](data, budget, seed, fields)
        train_seconds = budget.used()
    else:
        validation = load_images(fields["dataset"], split="validation").images[:1000] if recipe["script"] == "vae" else None
        model, train_info, train_seconds = train_genhub(RECIPE_DIR / file, data, budget, seed, validation)
    train_info.update({"train seconds": round(train_seconds, 1), "wall seconds": round(time.perf_counter() - budget.wall_start, 1)})
    model.eval()
    samples = generate(model, len(evaluation["reference"]), seed=seed)
    values, _ = evaluate_images(samples, evaluation["reference"], classifier=evaluation["classifier"], seed=seed)
    if hasattr(model, "iwae_bound"):
        values["nll"] = iwae_nll(model, evaluation["nll_images"], k=args.nll_k, seed=seed)["nll"]
    print(f"{name} (seed {seed}): {train_info} {values}", flush=True)
    return {"recipe": name, "family": family, "pair": pair, "seed": seed, "metrics": values, "train": train_info}


def mean_over_seeds(runs: list[dict]) -> list[dict]:
    """One row per recipe: each metric's mean over its seeds (the single runs stay in "runs")."""
    rows = []
    for name in dict.fromkeys(run["recipe"] for run in runs):
        mine = [run for run in runs if run["recipe"] == name]
        metrics = {}
        for key in mine[0]["metrics"]:
            values = [run["metrics"][key] for run in mine]
            metrics[key] = values[0] if len(set(values)) == 1 else sum(values) / len(values)  # agreeing seeds keep a count an integer
        train = {key: " / ".join(str(run["train"][key]) for run in mine) for key in mine[0]["train"]}
        rows.append(
            {
                "recipe": name,
                "family": mine[0]["family"],
                "pair": mine[0]["pair"],
                "metrics": metrics,
                "train": train,
                "runs": [{"seed": run["seed"], "metrics": run["metrics"], "train": run["train"]} for run in mine],
            }
        )
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=300, help="training seconds per recipe (CPU seconds on CPU)")
    parser.add_argument("--samples", type=int, default=10000, help="generated images per model, and MNIST test images as reference")
    parser.add_argument("--nll-k", type=int, default=500)
    parser.add_argument("--nll-images", type=int, default=1000)
    parser.add_argument("--only", default=None, help="comma-separated families to run (gan-bce, gan-wasserstein, vae)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="train every recipe once per seed; the table shows the means")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="recipes trained at once, in separate processes (CPU: each still gets --budget seconds of its own CPU time)",
    )
    parser.add_argument("--out", default="docs")
    args = parser.parse_args(argv)
    if args.budget <= 0 or args.samples < 2 or args.nll_k < 1 or args.nll_images < 1 or args.jobs < 1:
        parser.error("--budget must be positive, --samples at least 2, --nll-k, --nll-images and --jobs at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.jobs > 1 and device.type == "cuda":
        parser.error("--jobs > 1 is for CPUs: on a GPU the budget is wall-clock time, which parallel jobs would share")
    families = set(args.only.split(",")) if args.only else None
    selected = [index for index, recipe in enumerate(RECIPES) if not families or recipe[1] in families]

    evaluation = evaluation_data(args, device)
    real = (load_images("mnist", split="train").images[-args.samples :].float() / 255).to(device)
    real_metrics, _ = evaluate_images(real, evaluation["reference"], classifier=evaluation["classifier"], seed=args.seeds[0])
    rows = [{"recipe": "real MNIST train images (the floor)", "family": "reference", "pair": "real", "metrics": real_metrics, "train": {}}]
    print(f"floor: {real_metrics}", flush=True)
    tasks = [(index, args, seed) for index in selected for seed in args.seeds]
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            runs = pool.starmap(run_recipe, tasks)
    else:
        runs = [run_recipe(*task) for task in tasks]
    rows += mean_over_seeds(runs)

    load = os.getloadavg()
    context = {
        "machine": f"{environment_summary(device)}, {platform.machine()}, torch {torch.__version__}",
        "load average at the end (1/5/15 min)": [round(x, 2) for x in load],
        "budget per recipe (s)": args.budget,
        "budget clock": "CPU time of the process training the recipe" if device.type == "cpu" else "wall-clock (CUDA synchronized)",
        "samples": len(evaluation["reference"]),
        "NLL": f"IWAE k={args.nll_k} on the first {len(evaluation['nll_images'])} binarized-MNIST validation images",
        "recipes trained at once (processes)": args.jobs,
        "seeds": ", ".join(map(str, args.seeds))
        + (" (each cell is the mean over the seeds; training figures per seed)" if len(args.seeds) > 1 else ""),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps({"context": context, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    (out / "quality.md").write_text(render(rows, context), encoding="utf-8")
    print(render(rows, context))
    return {"context": context, "rows": rows}


def _cell(key, value) -> str:
    if value is None:
        return "-"
    if key == "kid":
        return f"{value * 1000:.2f}"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


CEILINGS = {"class_coverage": 10}  # the best value a metric can take: a tie there is not a loss


def verdict(rows: list[dict]) -> list[str]:
    """For each pair, the metrics on which genhub's recipe does not beat the classic one (a tie
    at a metric's ceiling, e.g. both drawing all ten digits, is reported as a tie)."""
    lines = []
    for family in ("gan-bce", "gan-wasserstein", "vae"):
        pair = {row["pair"]: row["metrics"] for row in rows if row["family"] == family}
        if not {"genhub", "classic"} <= set(pair):
            continue
        lost, tied = [], []
        for key in COLUMNS:
            if key not in pair["genhub"] or key not in pair["classic"]:
                continue
            higher_better = METRICS[key][2]
            ours, theirs = pair["genhub"][key], pair["classic"][key]
            if ours == theirs == CEILINGS.get(key):
                tied.append(f"{key} (both {_cell(key, ours)}, the maximum)")
            elif not (ours > theirs if higher_better else ours < theirs):
                lost.append(f"{key} ({_cell(key, ours)} vs {_cell(key, theirs)})")
        if lost:
            line = "genhub's recipe is better except on " + ", ".join(lost)
        else:
            line = "genhub's recipe is better on every metric" + (" not tied at its ceiling" if tied else "")
        lines.append(f"- **{family}**: {line}" + (f"; tied at the ceiling: {', '.join(tied)}." if tied else "."))
    return lines


def render(rows: list[dict], context: dict) -> str:
    header = "| recipe | FD ↓ | KID×10³ ↓ | precision ↑ | recall ↑ | classes ↑ | entropy (bits) ↑ | SWD×10³ ↓ | NLL (nats) ↓ | training |"
    lines = [
        "# Sample quality: genhub's recipes vs the classic ones",
        "",
        "Generated by `benchmarks/quality.py`; every number below was measured in one run of it. Rows marked "
        '"defaults" are train/*.py\'s default settings, shown for reference outside the verdict.',
        "",
        header,
        "|" + "---|" * 10,
    ]
    for row in rows:
        cells = [_cell(key, row["metrics"].get(key)) for key in COLUMNS]
        train = ", ".join(f"{k} {v}" for k, v in row["train"].items())
        lines.append(f"| {row['recipe']} | " + " | ".join(cells) + f" | {train} |")
    lines += ["", "## Verdict (genhub vs classic, pair by pair)", "", *verdict(rows), "", "## Setup", ""]
    lines += [f"- {key}: {value}" for key, value in context.items()]
    lines += [
        "- Reference for FD/KID/precision/recall/SWD: MNIST test; features from genhub's evaluator CNN "
        "(weights/evaluators/mnist-cnn), not Inception, so values are comparable only within genhub.",
        "- GANs train on MNIST train (grey); VAEs on binarized-MNIST train so that their NLL is a true likelihood.",
        "- The floor row compares MNIST train images with MNIST test: what a perfect generator would score at this sample size.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
