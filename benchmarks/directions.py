"""docs/app/directions.png: the top SeFa directions of bundled models, as the Space's Directions tab draws them.

python benchmarks/directions.py                      # dcgan-mnist and gan-comic-faces, seed 3
python benchmarks/directions.py --models wgan-gp-svhn --method ganspace
python benchmarks/directions.py --models dcgan-mnist --method digit --out docs/app/digit-directions.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from genhub import load_model
from genhub.space import app_logic as logic

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["dcgan-mnist", "gan-comic-faces"])
    parser.add_argument("--method", choices=logic.DIRECTION_METHODS, default="sefa")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--directions", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "docs" / "app" / "directions.png"))
    args = parser.parse_args(argv)
    panels = []
    for name in args.models:
        model = load_model(REPO / "weights" / name).eval()
        grid = logic.direction_grid(model, args.seed, args.method, args.directions)
        title = Image.new("RGB", (grid.width, 18), "white")
        what = "classifier-guided paths towards each digit" if args.method == "digit" else f"top {args.directions} {args.method} directions"
        ImageDraw.Draw(title).text((4, 3), f"{name}: {what}, seed {args.seed}, -3..3", fill="black")
        panels += [title, grid.convert("RGB")]
    figure = Image.new("RGB", (max(p.width for p in panels), sum(p.height for p in panels)), "white")
    top = 0
    for panel in panels:
        figure.paste(panel, (0, top))
        top += panel.height
    figure.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
