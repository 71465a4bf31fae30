"""Validation NLL of the default GenVAE recipe on statically binarized MNIST.

Trains recipes/vae-binarized-mnist.toml (the bundled model's recipe) through
genhub.training.train_vae under a budget of training minutes, then estimates the validation
negative log-likelihood with the k-sample IWAE bound, and writes the figures to
docs/vae_nll.json and docs/vae_nll.md beside the published references.

    python benchmarks/vae_nll.py                       # 30-minute budget, k=1000
    python benchmarks/vae_nll.py --minutes 5 --k 100   # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from genhub.runtime import portable
from genhub.training import recipe_args, train_vae

REPO = Path(__file__).resolve().parent.parent
REFERENCES = {"VAE (Burda et al. 2016)": 88.7, "IWAE, k=50 (Burda et al. 2016)": 87.1}
BAR = 88.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "vae-binarized-mnist.toml"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall-clock budget")
    parser.add_argument("--k", type=int, default=1000, help="importance samples for the NLL estimate")
    parser.add_argument(
        "--images", type=int, default=2000, help="validation images for the NLL estimate (the -ELBO always uses all 10,000)"
    )
    parser.add_argument("--eval-only", action="store_true", help="re-evaluate the finished or stopped run in --out")
    parser.add_argument("--resume", action="store_true", help="continue the stopped run in --out")
    parser.add_argument("--out", default="runs/vae-benchmark")
    parser.add_argument("--docs", default=str(REPO / "docs"))
    args = parser.parse_args()

    start = time.time()
    run_args = recipe_args(
        args.recipe,
        time_budget=args.minutes,
        eval_k=args.k,
        eval_limit=args.images,
        out=args.out,
        eval_only=args.eval_only,
        resume=args.resume,
    )
    train_vae(run_args, command=f"python benchmarks/vae_nll.py --minutes {args.minutes} --k {args.k} --images {args.images}")
    metrics = json.loads((Path(args.out) / "metrics.json").read_text())
    nll = metrics[f"validation_nll_iwae_k{args.k}"]
    result = {
        "validation_nll": nll,
        "k": args.k,
        "validation_neg_elbo": metrics["validation_neg_elbo"],
        "epochs": len(metrics["history"]),
        "best_epoch": metrics["best_epoch"],
        "train_minutes": metrics["train_minutes"],
        "eval_minutes": metrics["eval_minutes"],
        "nll_images": metrics["nll_images"],
        "total_minutes": round((time.time() - start) / 60, 1),
        "recipe": portable({key: value for key, value in metrics["args"].items() if key not in ("token",)}),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "bar_nats": BAR,
        "meets_bar": nll <= BAR,
        "references": REFERENCES,
    }
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "vae_nll.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {name} | {value:.1f} |" for name, value in REFERENCES.items())
    (docs / "vae_nll.md").write_text(
        "# GenVAE on statically binarized MNIST (validation split)\n\n"
        f"| model | NLL (nats) |\n|---|---|\n"
        f"| genhub recipe, IWAE k={args.k} (first {metrics['nll_images']:,} validation images) | **{nll:.2f}** |\n"
        f"| genhub recipe, -ELBO (all validation images) | {metrics['validation_neg_elbo']:.2f} |\n{rows}\n\n"
        f"{result['epochs']} epochs (best {result['best_epoch']}) in {result['train_minutes']} min of training, "
        f"{result['eval_minutes']} min of evaluation, on {result['machine']}. Bar: <= {BAR} nats "
        f"({'met' if result['meets_bar'] else 'NOT met'}).\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
