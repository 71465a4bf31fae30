"""How many components should a VAE's fitted prior have? One trained GenVAE, its prior refitted
with K diagonal Gaussians (genhub.models.vae.fit_mixture_prior) for each K given, every row judged
on the same samples count against the same held-out images: SWD, sharpness and the memorisation
ratio (does the mixture put samples on top of training images?). With --judge likelihood, the
rows are judged by their bounds on a validation split instead: -ELBO, KL and the IWAE NLL, all on
the same images with the same noise, so the differences between rows are paired.

    python benchmarks/fit_prior.py --model runs/vaegan-comic-faces/vae/best    # the comic VAE as trained
    python benchmarks/fit_prior.py --model weights/vae-anime-faces --dataset anime-faces --limit 10000
    python benchmarks/fit_prior.py --model weights/vae-pixelcnn-binarized-mnist --dataset binarized-mnist \
        --judge likelihood --components 100 500 --nll-k 100 --nll-images 2000

Writes docs/zoo/fit-prior-<dataset>.{json,md}. The first row is the model's own prior.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from genhub import GenVAE
from genhub.data import load_images
from genhub.evaluation import evaluate_images, generate, held_out_images
from genhub.evaluation.metrics import iwae_nll, laplacian_variance, memorisation
from genhub.images import to_unit_range
from genhub.models.vae import FIT_PRIOR_DRAWS, fit_mixture_prior
from genhub.runtime import environment_summary, portable
from genhub.training.vae import mean_elbo_terms

REPO = Path(__file__).resolve().parent.parent


def judge(model: GenVAE, train: torch.Tensor, held_out: torch.Tensor, samples: int, seconds: float | None = None) -> dict:
    images = generate(model, samples, seed=0)
    copied = memorisation(images, train, held_out)["pixel"]
    return {
        "swd": evaluate_images(images, held_out)[0]["swd"],
        "sharpness": float(laplacian_variance(images).mean()),
        "memorisation_ratio": copied["ratio"],
        "share_closer_than_5pct_held_out": copied["share_closer_than_5pct_held_out"],
        **({"fit_seconds": round(seconds, 1)} if seconds is not None else {}),
    }


def judge_likelihood(model: GenVAE, validation: torch.Tensor, k: int, seconds: float | None = None) -> dict:
    """-ELBO, KL and the IWAE NLL (k samples) of uint8 `validation` images, with fixed noise."""
    torch.manual_seed(0)  # the one-sample ELBO under a mixture prior draws z
    elbo, kl = mean_elbo_terms(model, validation)
    nll = iwae_nll(model, to_unit_range(validation), k=k, seed=0)
    return {
        "neg_elbo": round(-elbo, 3),
        "kl": round(kl, 3),
        "nll": round(nll["nll"], 3),
        "nll_standard_error": round(nll["nll_stderr"], 3),
        **({"fit_seconds": round(seconds, 1)} if seconds is not None else {}),
    }


def write_table(record: dict, path: Path) -> None:
    if record.get("judge") == "likelihood":
        lines = [
            f"# The fitted prior's size: `{record['model']}` on {record['dataset']}, judged by likelihood",
            "",
            "Written by `benchmarks/fit_prior.py --judge likelihood`: the model's own prior, then its prior refitted with K "
            f"diagonal Gaussians (genhub.models.vae.fit_mixture_prior, {record['draws']} codes per training image), each "
            f"scored on the first {record['nll_images']:,} images of the {record['val_split']} split with the same noise "
            f"(IWAE k={record['nll_k']}).",
            "",
            "| prior | -ELBO | KL | NLL (nats) | ± s.e. (over images) | fit (s of CPU) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {name} | {row['neg_elbo']:.2f} | {row['kl']:.2f} | {row['nll']:.2f} | {row['nll_standard_error']:.2f} | "
                  f"{row.get('fit_seconds', '-')} |" for name, row in record["rows"].items()]  # fmt: skip
        lines += ["", f"Machine: {record['machine']}; {record['when']}."]
        path.write_text("\n".join(lines) + "\n")
        return
    lines = [
        f"# The fitted prior's size: `{record['model']}` on {record['dataset']}",
        "",
        "Written by `benchmarks/fit_prior.py`: the model's own prior, then its prior refitted with K diagonal Gaussians "
        f"(genhub.models.vae.fit_mixture_prior, {record['draws']} codes per training image), {record['samples']} samples "
        f"against {record['held_out']} held-out images.",
        "",
        "| prior | SWD×10³ ↓ | sharpness | memorisation ratio (pixels) | samples nearer a training image than 95% of held-out | fit (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in record["rows"].items():
        lines.append(
            f"| {name} | {row['swd']:.1f} | {row['sharpness']:.0f} | {row['memorisation_ratio']:.2f} | "
            f"{row['share_closer_than_5pct_held_out']:.1%} | {row.get('fit_seconds', '-')} |"
        )
    lines += ["", f"Real held-out images: sharpness {record['real_sharpness']:.0f}. Machine: {record['machine']}; {record['when']}."]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a saved GenVAE folder (or Hub id)")
    parser.add_argument("--dataset", default="comic-faces")
    parser.add_argument("--holdout", type=float, default=0.1, help="the held-out fraction the model was trained without")
    parser.add_argument("--limit", type=int, default=None, help="the first N images, as the model was trained on")
    parser.add_argument("--components", type=int, nargs="+", default=[1, 10, 100, 400, 1000])
    parser.add_argument("--draws", type=int, default=FIT_PRIOR_DRAWS, help="codes z ~ q(z|x) per training image")
    parser.add_argument("--samples", type=int, default=365)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--judge", choices=["samples", "likelihood"], default="samples", help="what each row is scored by")
    parser.add_argument("--val-split", default="validation", help="--judge likelihood: the split scored")
    parser.add_argument("--nll-k", type=int, default=1000, help="--judge likelihood: importance samples")
    parser.add_argument("--nll-images", type=int, default=2000, help="--judge likelihood: the first N images of --val-split")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "zoo")
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.components) or args.draws < 1 or args.samples < 2 or args.nll_k < 1 or args.nll_images < 1:
        parser.error("--components, --draws, --nll-k and --nll-images must be >= 1, --samples >= 2")
    torch.set_num_threads(args.threads)
    model = GenVAE.from_pretrained(args.model).eval()
    if args.judge == "likelihood":
        train = load_images(args.dataset, split="train", limit=args.limit).images
        validation = load_images(args.dataset, split=args.val_split).images[: args.nll_images]

        def score(vae, seconds=None):
            return judge_likelihood(vae, validation, args.nll_k, seconds)

        extra = {"judge": "likelihood", "val_split": args.val_split, "nll_k": args.nll_k, "nll_images": len(validation)}
    else:
        train, held_out = held_out_images(args.dataset, model.image_shape, args.holdout, limit=args.limit)
        held_out = held_out[: args.samples]

        def score(vae, seconds=None):
            return judge(vae, train, held_out, args.samples, seconds)

        extra = {"held_out": len(held_out), "samples": args.samples, "real_sharpness": float(laplacian_variance(held_out).mean())}
    rows = {f"its own prior ({model.prior})": score(model)}
    print(f"own prior: {json.dumps(rows[f'its own prior ({model.prior})'])}", flush=True)
    for k in args.components:
        start = time.process_time()
        fitted = fit_mixture_prior(model, train, components=k, draws=args.draws)
        rows[f"fitted, K = {k}"] = score(fitted, time.process_time() - start)
        print(f"K={k}: {json.dumps(rows[f'fitted, K = {k}'])}", flush=True)
    record = {
        "model": portable(args.model, root=REPO),
        "dataset": args.dataset,
        "draws": args.draws,
        **extra,
        "rows": rows,
        "machine": f"{environment_summary(torch.device('cpu'))}, {platform.machine()}",
        "when": time.strftime("%Y-%m-%d"),
    }
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / f"fit-prior-{args.dataset}.json").write_text(json.dumps(record, indent=2) + "\n")
    write_table(record, args.docs / f"fit-prior-{args.dataset}.md")
    print((args.docs / f"fit-prior-{args.dataset}.md").read_text())
    return record


if __name__ == "__main__":
    main()
