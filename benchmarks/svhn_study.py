"""The classic latent study of a WGAN on SVHN, drawn with the Space's own functions.

    python benchmarks/svhn_study.py                       # weights/wgan-gp-svhn -> docs/svhn/

For one sample, every latent dimension i is moved by eps in -5..4 (a row per dimension, the
middle column eps = 0 is the sample itself): genhub.space.app_logic.perturbation_grid, what
the Space's Explore tab shows. Then two samples are joined by latent interpolation (lerp and
slerp) beside a pixel cross-fade: app_logic.interpolate_seeds, the Interpolate tab.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

from genhub import load_model
from genhub.space import app_logic as logic

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "weights" / "wgan-gp-svhn"))
    parser.add_argument("--seed", type=int, default=3, help="the sample whose latent dimensions are moved")
    parser.add_argument("--pair", type=int, nargs=2, default=[3, 7], help="the two seeds interpolated")
    parser.add_argument("--out", default=str(REPO / "docs" / "svhn"))
    args = parser.parse_args(argv)
    model = load_model(args.model).eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    blocks = []
    for first in range(0, model.latent_dim, logic.MAX_ROWS):
        block = logic.perturbation_grid(model, args.seed, first, logic.MAX_ROWS)
        block.save(out / f"perturbation_dims_{first:03d}-{min(first + logic.MAX_ROWS, model.latent_dim) - 1:03d}.png")
        blocks.append(block)
    full = Image.new("RGB", (blocks[0].width, sum(b.height for b in blocks)), "white")
    top = 0
    for block in blocks:
        full.paste(block, (0, top))
        top += block.height
    full.save(out / "perturbation_all_dims.png")

    strip, gif = logic.interpolate_seeds(model, args.pair[0], args.pair[1], 10)
    strip.save(out / "interpolation.png")
    shutil.copyfile(gif, out / "interpolation.gif")
    logic.sample_grid(model, 0, 16).save(out / "samples.png")
    print(f"wrote {len(blocks)} perturbation grids, perturbation_all_dims.png, interpolation.png/.gif and samples.png to {out}")


if __name__ == "__main__":
    main()
