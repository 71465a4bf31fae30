"""The standard levers for small GANs, one at a time at equal compute, for the model zoo.

    python benchmarks/zoo.py --budget 180 --threads 1                 # every lever on MNIST
    python benchmarks/zoo.py --levers base "spectral norm" --budget 60  # a few, quickly
    python benchmarks/zoo.py --combine "hinge loss" "spectral norm"     # a combination, as one more row
    python benchmarks/zoo.py --levers base "spectral norm" --seed 1     # rows "base (seed 1)", ...: the seed spread
    python benchmarks/zoo.py --bundled                                  # the zoo table: every model in weights/
    python benchmarks/zoo.py --recipe recipes/zoo/levers-vae-comic-faces.toml --budget 240   # the face VAE's levers

A base recipe (default recipes/zoo/levers-mnist.toml, the bundled DCGAN's recipe at width 32)
trains once as it is and once per lever, where a lever changes one or two of its fields
(LEVERS below), each for the same --budget seconds of training (this process's CPU time on a
CPU, genhub.training.train_for_budget). Each EMA generator then draws --samples images with
seed 0, judged against as many held-out real images: for digits FD, precision, recall and class
coverage on the evaluator CNN's features, SWD for every dataset, and for RGB images the
sharpness (variance of the Laplacian). The real-vs-real floor (real training images against
the same held-out ones, at the same size) is the first row. A recipe with `holdout` (a small set
such as comic-faces) trains on its training part and is judged against the held-out part.
A VAE recipe (script "vae") runs the VAE levers (VAE_LEVERS: free bits, KL weight, learned priors,
width, latent size) and keeps its rows in levers-<dataset>-vae.

Rows are kept in docs/zoo/levers-<dataset>.json, so levers can be run in several calls (a
combination after the single levers, say) and the table docs/zoo/levers-<dataset>.md is rebuilt
from every row present; --redo replaces rows that exist. A 16-sample grid of each row goes to
docs/zoo/levers-<dataset>/<row>.png.

--bundled instead draws a 32-sample grid of every bundled model with seed 0
(docs/zoo/models/<name>.png) and tabulates the metrics its card records (eval.json) beside the
real-vs-real floor of the same metrics at the same sample size against the same reference
(genhub.evaluation.real_floor), with the sharpness (variance of the Laplacian) of the face
models' samples and of real faces: docs/zoo/models.md and models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path

import torch

from genhub import load_images, load_model
from genhub.data import holdout_split
from genhub.evaluation import card_metrics, evaluate_images, generate, is_digit_data, real_floor, reference_images
from genhub.evaluation.metrics import laplacian_variance
from genhub.images import grid_image, to_unit_range
from genhub.models.classifier import load_evaluator
from genhub.runtime import environment_summary, pick_device, portable, save_image
from genhub.training import read_recipe, recipe_args, train_for_budget

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "recipes" / "zoo" / "levers-mnist.toml"
# name -> the recipe fields it changes (one lever each; "base" changes nothing)
LEVERS = {
    "base": {},
    "spectral norm": {"critic_norm": "spectral"},  # critic weights / sigma(W) instead of batch norm
    "hinge loss": {"objective": "hinge"},
    "two time-scales": {"lr": 4e-4, "generator_lr_scale": 0.25},  # critic 4e-4, generator 1e-4 (Heusel et al. 2017)
    "R1 penalty": {"r1": 1.0},  # gamma 1 on real images (Mescheder et al. 2018)
    "no EMA": {"ema_decay": 0.0},  # sample from the raw generator: what the base's EMA 0.999 is worth
    "EMA 0.9999": {"ema_decay": 0.9999},
    "wider": {"width": 64},
    "upsample + conv": {"upsample": "nearest"},  # against checkerboard artefacts (Odena et al. 2016)
    "augmentation": {"augment": "translation"},  # DiffAugment translation (Zhao et al. 2020)
    "lr decay": {"lr_schedule": "linear"},  # both learning rates linearly to 0 over the budget (Miyato et al. 2018)
}
# The levers for a VAE on faces (a recipe whose script is "vae"), each one field of train/vae.py.
VAE_LEVERS = {
    "base": {},
    "free bits": {"free_bits": 32.0},  # the batch's mean KL counts as at least 32 nats (0.5 a dimension of 64)
    "KL weight 2": {"kl_weight": 2.0},  # beta 2: the posterior pulled towards the prior, fewer holes between codes
    "KL weight 4": {"kl_weight": 4.0},
    "MoG prior": {"prior": "mog"},  # a learned mixture of 100 Gaussians where the codes are
    "VampPrior": {"prior": "vamp"},  # the prior as the mixture of the posteriors of 500 learned pseudo-inputs
    "wider": {"width": 32},
    "latent 32": {"latent_dim": 32},
    # the base as trained, its prior then replaced by 100 Gaussians fitted to its aggregate posterior
    "fitted prior": {"fit_prior": 100},
    "KL weight 2 + fitted prior": {"kl_weight": 2.0, "fit_prior": 100},
}
METRICS = ("fd", "precision", "recall", "class_coverage", "swd", "sharpness")


def levers_of(script: str) -> dict:
    return VAE_LEVERS if script == "vae" else LEVERS


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run_row(name: str, changes: dict, args, data: torch.Tensor, reference: torch.Tensor, classifier, device) -> dict:
    """Train the base recipe (a `args.script` recipe) with `changes` for the budget and score its samples."""
    fields = {**changes, "seed": args.seed, "device": str(device), "no_progress": True}
    train_args = recipe_args(args.recipe, **fields)
    started = time.perf_counter()
    model, trainer = train_for_budget(args.script, train_args, data, args.budget, device)
    samples = generate(model, len(reference), seed=0)
    metrics, _ = evaluate_images(samples, reference, classifier=classifier, seed=0)
    if samples.shape[1] == 3:
        metrics["sharpness"] = float(laplacian_variance(samples).mean())
    grid = args.docs / f"levers-{args.dataset_slug}" / f"{slug(name)}.png"
    grid.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid_image(samples[:16], nrow=8, scale=2 if samples.shape[-1] <= 32 else 1), grid)
    row = {
        "changes": changes,
        "metrics": {key: metrics[key] for key in METRICS if key in metrics},
        "steps": trainer.generator_steps if args.script == "gan" else trainer.optimizer_steps,
        "train seconds": round(trainer.train_seconds, 1),
        "wall seconds": round(time.perf_counter() - started, 1),
        "grid": grid.relative_to(args.docs).as_posix(),  # relative to the table that shows it
    }
    print(f"{name}: {json.dumps(row)}", flush=True)
    return row


def cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "class_coverage":
        return str(int(value))
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def write_table(record: dict, docs: Path, dataset_slug: str) -> Path:
    rows = record["rows"]
    columns = [key for key in METRICS if key in record["floor"] or any(key in row["metrics"] for row in rows.values())]
    names = {
        "fd": "FD ↓",
        "precision": "precision ↑",
        "recall": "recall ↑",
        "class_coverage": "classes ↑",
        "swd": "SWD×10³ ↓",
        "sharpness": "sharpness",
    }
    steps = "generator steps" if record.get("script", "gan") == "gan" else "optimizer steps"
    lines = [
        f"# Levers for small {'GANs' if record.get('script', 'gan') == 'gan' else 'VAEs'} on {record['context']['dataset']}, "
        "at equal compute",
        "",
        "Generated by `benchmarks/zoo.py`: the base recipe, and the base with one lever changed, each trained for the "
        "same budget, then judged on the same number of samples. Rows ending in (seed N) repeat a row with another "
        "seed; the spread between a row's seeds is the noise to read every difference against. The budget is CPU time, so "
        "a lever that makes a step dearer (R1's double backward, a wider net) gets fewer steps. Sharpness (RGB only) is the "
        "mean variance of the Laplacian of the samples' grey images (0-255); the floor row gives the reference's own.",
        "",
        "| row | changes | " + " | ".join(names[key] for key in columns) + f" | {steps} | grid |",
        "|---|---|" + "---|" * len(columns) + "---|---|",
        "| real vs real (floor) | - | " + " | ".join(cell(key, record["floor"].get(key)) for key in columns) + " | - | - |",
    ]
    for name, row in rows.items():
        changes = ", ".join(f"{key}={value}" for key, value in row["changes"].items()) or "-"
        values = " | ".join(cell(key, row["metrics"].get(key)) for key in columns)
        lines.append(f"| {name} | {changes} | {values} | {row.get('steps', row.get('generator steps'))} | ![]({row['grid']}) |")
    lines += ["", "## Setup", ""] + [f"- {key}: {value}" for key, value in record["context"].items()] + [""]
    path = docs / f"levers-{dataset_slug}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def bundled_table(args) -> dict:
    """Grids, card metrics, floors and sharpness of every model in weights/."""
    folders = sorted(path.parent for path in (REPO / "weights").glob("*/config.json"))
    unknown = sorted(set(args.models or ()) - {folder.name for folder in folders})
    if unknown:
        raise SystemExit(f"--models: no bundled model {unknown}; weights/ has {', '.join(folder.name for folder in folders)}")
    record_path = args.docs / "models.json"
    kept = json.loads(record_path.read_text())["rows"] if args.models and record_path.exists() else {}
    floors: dict = {}
    rows = {}
    for folder in folders:
        if args.models and folder.name not in args.models and folder.name in kept:
            rows[folder.name] = kept[folder.name]  # measured by an earlier run, model unchanged
            continue
        model = load_model(folder).eval()
        evaluation = json.loads((folder / "eval.json").read_text())
        samples = generate(model, 32, seed=0)
        grid = args.docs / "models" / f"{folder.name}.png"
        grid.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid_image(samples, nrow=8, scale=2 if samples.shape[-1] <= 32 else 1), grid)
        dataset, settings = evaluation["dataset"], evaluation["settings"]
        holdout = settings.get("held-out fraction")
        key = (dataset, tuple(model.image_shape), settings["samples"], holdout)
        if key not in floors:
            floors[key] = real_floor(dataset, model.image_shape, num_samples=settings["samples"], holdout=holdout)
        metrics = {name: value for name, value in evaluation["metrics"].items() if name in (*METRICS, "nll", "memorisation_ratio")}
        nll = [value for name, value in card_metrics((folder / "README.md").read_text()).items() if name.startswith("validation NLL")]
        if nll:
            metrics["nll"] = float(nll[0])
        row = {"dataset": dataset, "split": evaluation["split"], "samples": settings["samples"], "metrics": metrics}
        row["floor"] = floors.get(key, {})
        if "swd" in metrics and row["floor"].get("swd"):
            row["swd / floor"] = metrics["swd"] / row["floor"]["swd"]
        if model.image_shape[0] == 3:
            many = generate(model, 500, seed=0)
            real = reference_images(dataset, model.image_shape, "train", limit=500)[0]
            row["sharpness"] = {"samples": float(laplacian_variance(many).mean()), "real": float(laplacian_variance(real).mean())}
        row["grid"] = grid.relative_to(args.docs).as_posix()
        rows[folder.name] = row
        print(f"{folder.name}: {json.dumps(row)}", flush=True)
    record = {
        "rows": rows,
        "context": {
            "machine": f"{environment_summary(pick_device('cpu'))}, {platform.machine()}, torch {torch.__version__}",
            "grids": "32 samples, seed 0 (model.sample(32, seed=0))",
            "metrics": "as each card records them (eval.json); floors measured now with genhub.evaluation.real_floor",
        },
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# The bundled models, with the real-vs-real floor of each metric",
        "",
        "Generated by `python benchmarks/zoo.py --bundled`. Metrics are those the cards record; each floor is the same "
        "metric of real training images (not in the reference) against the same reference at the same size. "
        "Sharpness is the mean variance of the Laplacian (0-255 grey) of 500 samples, and of 500 real images.",
        "",
        "| model | data (reference) | FD ↓ | precision ↑ | recall ↑ | classes | SWD×10³ ↓ | SWD / floor | NLL | sharpness | grid |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        metrics, floor = row["metrics"], row["floor"]

        def pair(key, metrics=metrics, floor=floor):
            if key not in metrics:
                return "-"
            return cell(key, metrics[key]) + (f" ({cell(key, floor[key])})" if key in floor else "")

        ratio = f"{row['swd / floor']:.2f}" if "swd / floor" in row else "-"
        sharp = f"{row['sharpness']['samples']:.0f} (real {row['sharpness']['real']:.0f})" if "sharpness" in row else "-"
        nll = f"{metrics['nll']:.2f}" if "nll" in metrics else "-"
        cells = [pair("fd"), pair("precision"), pair("recall"), pair("class_coverage"), pair("swd"), ratio, nll, sharp]
        lines.append(f"| {name} | {row['dataset']} ({row['split']}, {row['samples']}) | " + " | ".join(cells) + f" | ![]({row['grid']}) |")
    lines += [
        "",
        "Floors in brackets. NLL: nats per image from the card (IWAE); the face VAEs' is a density over continuous pixels, "
        "so it can be negative. " + "; ".join(f"{k}: {v}" for k, v in record["context"].items()) + ".",
        "",
    ]
    (args.docs / "models.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return record


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=BASE, help="the base recipe (a train/gan.py recipe)")
    parser.add_argument(
        "--levers",
        nargs="+",
        default=None,
        help=f"rows to run (default: all of the recipe's kind), of: {', '.join(LEVERS)} (GAN recipes); {', '.join(VAE_LEVERS)} (VAE)",
    )
    parser.add_argument("--combine", nargs="+", default=None, help="run one row that applies all these levers together")
    parser.add_argument("--budget", type=float, default=180, help="training seconds per row (CPU seconds on a CPU)")
    parser.add_argument("--samples", type=int, default=5000, help="generated and held-out real images compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--redo", action="store_true", help="run rows again that the record already has")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "zoo")
    parser.add_argument("--bundled", action="store_true", help="the zoo table of every bundled model instead of the lever study")
    parser.add_argument("--models", nargs="+", default=None, help="with --bundled: measure these (weights/ names) again, keep the others")
    args = parser.parse_args(argv)
    if args.bundled:
        if args.threads:
            torch.set_num_threads(args.threads)
        args.docs.mkdir(parents=True, exist_ok=True)
        return bundled_table(args)
    recipe = read_recipe(args.recipe)
    args.script, fields = recipe["script"], recipe["fields"]
    levers = levers_of(args.script)
    args.levers = args.levers or list(levers)
    unknown = [name for name in [*args.levers, *(args.combine or [])] if name not in levers]
    if unknown:
        parser.error(f"unknown lever(s) {', '.join(map(repr, unknown))} for a {args.script} recipe; known: {', '.join(levers)}")
    if args.budget <= 0 or args.samples < 2:
        parser.error("--budget must be positive and --samples at least 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dataset, holdout = fields["dataset"], fields.get("holdout")
    # a VAE study gets its own record beside a GAN study of the same data
    args.dataset_slug = slug(dataset) + ("-vae" if args.script == "vae" else "")
    args.docs.mkdir(parents=True, exist_ok=True)

    data = load_images(dataset, split=fields.get("split", "train"), limit=fields.get("limit")).images
    if holdout:  # a small set: train on its training part, judge against the held-out part (never trained on)
        data, held_out = holdout_split(data, holdout)
        reference, split = to_unit_range(held_out[: args.samples]), f"held-out {holdout:g} of train"
    else:
        reference, split = reference_images(dataset, tuple(data.shape[1:]), limit=args.samples)
    image_shape = tuple(data.shape[1:])
    reference = reference.to(device)
    classifier = load_evaluator("mnist", device=device) if is_digit_data(dataset, image_shape) else None
    floor = real_floor(dataset, image_shape, num_samples=args.samples, classifier=classifier, holdout=holdout, limit=fields.get("limit"))
    if image_shape[0] == 3:
        floor["sharpness"] = float(laplacian_variance(reference).mean())

    record_path = args.docs / f"levers-{args.dataset_slug}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"rows": {}}
    record["script"] = args.script
    record["floor"] = {key: floor[key] for key in METRICS if key in floor}
    record["context"] = {
        "dataset": f"{dataset} ({len(data)} training images; reference: {len(reference)} {split} images)",
        "base recipe": portable(args.recipe),
        "budget per row": f"{args.budget:g} s of training ({'CPU time of the process' if device.type == 'cpu' else 'wall clock'})",
        "samples": len(reference),
        "machine": f"{environment_summary(device)}, {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)",
        "load average at the end (1/5/15 min)": [round(x, 2) for x in os.getloadavg()],
    }
    plan = {name: levers[name] for name in args.levers}
    if args.combine:
        plan = {" + ".join(args.combine): {key: value for name in args.combine for key, value in levers[name].items()}}
    if args.seed:  # another seed of a row is a row of its own, to see the spread between seeds
        plan = {f"{name} (seed {args.seed})": changes for name, changes in plan.items()}
    for name, changes in plan.items():
        if name in record["rows"] and not args.redo:
            print(f"{name}: kept from {portable(record_path)} (--redo runs it again)")
            continue
        record["rows"][name] = run_row(name, changes, args, data.to(device), reference, classifier, device)
        record["context"]["load average at the end (1/5/15 min)"] = [round(x, 2) for x in os.getloadavg()]
        record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        write_table(record, args.docs, args.dataset_slug)
    table = write_table(record, args.docs, args.dataset_slug)
    print(table.read_text(encoding="utf-8"))
    return record


if __name__ == "__main__":
    main()
