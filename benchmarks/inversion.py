"""GAN inversion of real held-out digits: how close the projection comes, and whether it keeps the digit.

    python benchmarks/inversion.py                       # 100 MNIST test digits, weights/dcgan-mnist
    python benchmarks/inversion.py --images 20 --seconds 1

Each MNIST test digit (never trained on) is inverted with genhub.space.inversion.invert, the
Space's Invert tab (4 random starts, pixels plus evaluator features, bounded to --seconds). Reported:
the mean pixel MSE of the projections, and the share the evaluator CNN classifies as the original
digit's label, beside the same share for the test digits themselves. Figures go to
docs/app/inversion.json (inversion-pixels.json with --feature-weight 0) and the pairs to .png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from genhub import load_evaluator, load_images, load_model
from genhub.images import to_unit_range
from genhub.space.inversion import invert

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "weights" / "dcgan-mnist"))
    parser.add_argument("--images", type=int, default=100, help="MNIST test digits, taken evenly spaced across the split")
    parser.add_argument("--seconds", type=float, default=2.0, help="time bound per inversion")
    parser.add_argument(
        "--feature-weight",
        type=float,
        default=0.05,
        help="weight of the evaluator-feature term (0: pixels only, independent of the judging network)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "docs" / "app"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    classifier = load_evaluator("mnist")
    test = load_images("mnist", split="test")
    index = torch.linspace(0, len(test) - 1, args.images).long()
    digits, labels = to_unit_range(test.images[index]), test.labels[index]
    projections, errors, seconds = [], [], []
    for digit in digits:
        result = invert(model, digit, starts=4, steps=10_000, max_seconds=args.seconds, seed=0,
                        classifier=classifier if args.feature_weight else None, feature_weight=args.feature_weight)  # fmt: skip
        projections.append(result.image)
        errors.append(result.pixel_error)
        seconds.append(result.seconds)
    projections = torch.stack(projections)
    kept = (classifier.predict(projections) == labels).float().mean().item()
    real = (classifier.predict(digits) == labels).float().mean().item()
    report = {
        "model": Path(args.model).name, "images": args.images, "seconds_bound": args.seconds, "feature_weight": args.feature_weight,
        "mean_pixel_mse": round(sum(errors) / len(errors), 4), "same_class_share": round(kept, 3),
        "test_digits_classified_correctly": round(real, 3), "mean_seconds": round(sum(seconds) / len(seconds), 2),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, {args.threads} torch thread(s)",
        "command": "python benchmarks/inversion.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "" if args.feature_weight else "-pixels"
    (out / f"inversion{tag}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    pairs = torch.stack([digits[:16], projections[:16]], 1).flatten(0, 1)
    model.grid(pairs, nrow=8, scale=2).save(out / f"inversion{tag}.png")
    return report


if __name__ == "__main__":
    main()
