"""Validation NLL of GenVAE variants on statically binarized MNIST, as a table.

Each variant is the bundled model's recipe (recipes/vae-binarized-mnist.toml) with one option
switched on, trained through genhub.training.train_vae under the same budget of training
minutes, then scored on the validation split:

    current     the recipe as it is (conv VAE, mixture-of-Gaussians prior)
    flow        + 4 inverse autoregressive flow steps on q(z|x)          (--flow-steps 4)
    hierarchy   + a second latent level, z2 of 16 dimensions on top      (--hierarchy-dim 16)
    pixelcnn    + a 3-layer gated PixelCNN decoder, 2 free nats          (--pixelcnn-layers 3)
    best        PixelCNN decoder + flow posterior: recipes/vae-binarized-mnist-pixelcnn-flow.toml
                (the likelihood bar's recipe, trained there for 115 minutes, here for the table's budget,
                and without the recipe's fitted prior, so that every row keeps the prior it trained)

Columns: the NLL from the k-sample IWAE bound on every validation image (with its standard
error over images), the -ELBO and KL(q(z|x) || p(z)) of the best epoch, training minutes, and
the time to draw 16 samples with one torch thread (the Space's setting). Rows are kept in
docs/vae_nll.json, so variants can be run one at a time (in separate sessions, on a GPU) and
the table is rebuilt from every row present; a stopped variant resumes from its checkpoint.

    python benchmarks/vae_nll.py                                  # every variant, 30 min each, k=1000, all images
    python benchmarks/vae_nll.py --variants pixelcnn --minutes 5 --k 100 --images 1000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

from genhub import GenVAE
from genhub.evaluation import table_rows
from genhub.runtime import environment_summary, pick_device
from genhub.training import recipe_args, train_vae

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "vae-binarized-mnist.toml"
VARIANTS = {
    "current": (RECIPE, {}),
    "flow": (RECIPE, {"flow_steps": 4}),
    "hierarchy": (RECIPE, {"hierarchy_dim": 16}),
    "pixelcnn": (RECIPE, {"pixelcnn_layers": 3, "free_bits": 2.0}),
    "best": (REPO / "recipes" / "vae-binarized-mnist-pixelcnn-flow.toml", {"fit_prior": 0}),  # the learned prior, like every row
}
# Published test NLLs (nats) on statically binarized MNIST, as reported in Tomczak & Welling
# (2018), "VAE with a VampPrior", Table 2, with the works they cite.
REFERENCES = {
    "convHVAE (2 levels) + VampPrior (Tomczak & Welling 2018)": 81.09,
    "IAF VAE (Kingma et al. 2016)": 79.88,
    "PixelVAE (Gulrajani et al. 2017)": 79.66,
    "PixelHVAE (2 levels) + VampPrior (Tomczak & Welling 2018)": 79.78,
    "VLAE (Chen et al. 2017)": 79.03,
}
BAR = 81.0
BAR_MINUTES = 150  # of training, wall clock, on the 2-core CPU
BUNDLED = ("vae-binarized-mnist", "vae-pixelcnn-binarized-mnist", "vae-pixelcnn-flow-binarized-mnist")


def bar_candidates(rows: dict) -> dict[str, float]:
    """What the bar is judged on, name -> NLL: the table's rows and the bundled VAEs' cards that were
    scored with k >= 1000 on all 10,000 validation images after one training run of at most
    BAR_MINUTES of wall time (a card initialised from another run's weights, or giving CPU time
    without wall time, does not count: its training time is not all on it)."""
    found = {
        f"row {name}": row["validation_nll"]
        for name, row in rows.items()
        if row["nll_images"] >= 10_000 and row["k"] >= 1000 and row["train_minutes"] <= BAR_MINUTES
    }
    for name in BUNDLED:
        card = table_rows((REPO / "weights" / name / "README.md").read_text(encoding="utf-8"))
        label = next((label for label in card if label.startswith("validation NLL")), "")
        scored = re.search(r"k=(\d+) \((\d+) images", label)
        time_row = card.get("training time", "")
        wall = re.fullmatch(r"([\d.]+) min", time_row) or re.search(r"([\d.]+) min of wall time", time_row)
        if scored and wall and "initialised from" not in card and int(scored[1]) >= 1000 and int(scored[2]) >= 10_000:
            if float(wall[1]) <= BAR_MINUTES:
                found[f"weights/{name}"] = float(card[label])
    return found


def sampling_seconds(model: GenVAE, n: int = 16, repeats: int = 3) -> float:
    """Median wall time of model.sample(n) with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.sample(2, seed=0)  # warm-up
        times = []
        for repeat in range(repeats):
            start = time.perf_counter()
            model.sample(n, seed=repeat)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times)


def run_variant(name: str, args) -> dict:
    recipe, options = VARIANTS[name]
    out = Path(args.out) / name
    resume = (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    eval_only = (out / "metrics.json").exists()
    run_args = recipe_args(
        recipe,
        **options,
        time_budget=args.minutes,
        budget_clock="wall",  # one clock for every row (the bundled recipe's own budget counts CPU time)
        eval_k=args.k,
        eval_limit=args.images,
        out=str(out),
        resume=resume,
        eval_only=eval_only,
        no_eval=False,
        eval_samples=0,  # the likelihood is what this table measures, not sample metrics
        no_progress=True,
        **({"threads": args.threads} if args.threads else {}),
    )
    threads = f" --threads {args.threads}" if args.threads else ""
    command = f"python benchmarks/vae_nll.py --variants {name} --minutes {args.minutes:g} --k {args.k}{threads}"
    run = train_vae(run_args, command=command)
    metrics = run.metrics
    nll = metrics[f"validation_nll_iwae_k{args.k}"]
    return {
        "variant": name,
        "options": {"recipe": str(recipe.relative_to(REPO)), **options},
        "validation_nll": nll,
        "nll_standard_error": metrics["nll_standard_error"],
        "nll_images": metrics["nll_images"],
        "k": args.k,
        "validation_neg_elbo": metrics["validation_neg_elbo"],
        "validation_kl": metrics.get("validation_kl"),
        "train_minutes": metrics["train_minutes"],
        "budget_minutes": args.minutes,
        "eval_minutes": metrics["eval_minutes"],
        "sample16_seconds": round(sampling_seconds(run.model.cpu().eval()), 3),
        "best_epoch": metrics["best_epoch"],
        "parameters": run.model.num_parameters(),
        "machine": machine(),
        "when": time.strftime("%Y-%m-%d"),
    }


def machine() -> str:
    """The machine a row ran on, as the cards name it, with the CPU's architecture."""
    return f"{environment_summary(pick_device('auto'))}, {platform.machine()}"


def write_table(rows: dict, docs: Path) -> None:
    def fmt(value, digits=2):
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "# GenVAE variants on statically binarized MNIST (validation split)",
        "",
        "Written by `benchmarks/vae_nll.py`; each row trained under the stated budget of training minutes on the "
        "machine named, then scored on the validation split.",
        "",
        "| variant | NLL (nats) | ± s.e. | images, k | -ELBO | KL | train min (budget) | 16 samples (s, 1 thread) | machine |",
        "|---|---:|---:|---|---:|---:|---|---:|---|",
    ]
    for name in VARIANTS:
        if name not in rows:
            lines.append(f"| {name} | not run yet | | | | | | | |")
            continue
        row = rows[name]
        lines.append(
            f"| {name} | **{fmt(row['validation_nll'])}** | {fmt(row['nll_standard_error'], 3)} | "
            f"{row['nll_images']:,}, {row['k']} | {fmt(row['validation_neg_elbo'])} | {fmt(row['validation_kl'])} | "
            f"{row['train_minutes']} ({row['budget_minutes']:g}) | {fmt(row['sample16_seconds'])} | {row['machine']} |"
        )
    lines += ["", "Published figures (on the test split, which genhub keeps apart; as reported in Tomczak & Welling 2018, Table 2):", ""]
    lines += ["| model | NLL (nats) |", "|---|---:|"] + [f"| {name} | {value:.2f} |" for name, value in REFERENCES.items()]
    lines += ["", "The bundled VAEs, as their cards give them (each trained under its own budget, not this table's):", ""]
    lines += ["| model | NLL label on the card | NLL (nats) | -ELBO | training time | 16 samples (s, 1 thread, measured now) |",
              "|---|---|---:|---:|---|---:|"]  # fmt: skip
    for name in BUNDLED:
        folder = REPO / "weights" / name
        card = table_rows((folder / "README.md").read_text(encoding="utf-8"))
        nll = next(((label, value) for label, value in card.items() if label.startswith("validation NLL")), ("-", "-"))
        # the evaluation row, "validation -ELBO (split, ...)", not the training row "... under the trained prior"
        elbo = next((value for label, value in card.items() if label.startswith("validation -ELBO (")), "-")
        seconds = sampling_seconds(GenVAE.from_pretrained(folder).eval())
        lines.append(f"| `weights/{name}` | {nll[0]} | {nll[1]} | {elbo} | {card.get('training time', '-')} | {seconds:.3f} |")
    lines += ["", f"Sampling times measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} CPU cores, "
              "one torch thread: the median of 3 draws after a warm-up."]  # fmt: skip
    candidates = bar_candidates(rows)
    if candidates:
        name, nll = min(candidates.items(), key=lambda item: item[1])
        verdict = "met" if nll <= BAR else "not met"
        lines += [
            "",
            f"Bar: <= {BAR:g} nats (k=1000, all 10,000 validation images, trained in one run of at most {BAR_MINUTES} minutes): "
            f"{verdict}; best {name} at {nll:.2f}.",
        ]
    (docs / "vae_nll.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget of every variant (wall-clock minutes)")
    parser.add_argument("--k", type=int, default=1000, help="importance samples for the NLL estimate")
    parser.add_argument("--images", type=int, default=None, help="validation images for the NLL (default: all 10,000)")
    parser.add_argument("--out", default="runs/vae-nll", help="one run folder per variant under this")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for training and evaluation (default: the recipe's)")
    parser.add_argument("--docs", default=str(REPO / "docs"))
    parser.add_argument("--redo", action="store_true", help="run variants again even when docs/vae_nll.json has their row")
    parser.add_argument("--table-only", action="store_true", help="rewrite docs/vae_nll.md from the rows recorded, train nothing")
    args = parser.parse_args()
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    record_path = docs / "vae_nll.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    rows = record.get("variants", {})
    if args.table_only:
        write_table(rows, docs)
        print((docs / "vae_nll.md").read_text())
        return
    for name in names:
        old = rows.get(name)
        if old and not args.redo and (old["k"], old["nll_images"], old["budget_minutes"]) == (args.k, args.images or 10_000, args.minutes):
            print(f"{name}: kept from {record_path.name} (--redo to train it again)")
            continue
        row = run_variant(name, args)
        # read again before writing: another variant may have finished meanwhile in another process
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        rows = {**record.get("variants", {}), name: row}
        meets_bar = any(nll <= BAR for nll in bar_candidates(rows).values())
        record = {**record, "bar_nats": BAR, "meets_bar": meets_bar, "references": REFERENCES, "variants": rows}  # other keys kept
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        write_table(rows, docs)
        print(json.dumps(rows[name], indent=2), flush=True)


if __name__ == "__main__":
    main()
