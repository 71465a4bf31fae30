"""Preset: train/gan.py with --objective wgan-gp, a WGAN-GP (Adam 1e-4, betas 0/0.9, 5 critic steps, gradient penalty 10; --objective wgan for weight clipping).
Every train/gan.py flag works here too, e.g. `python train/wgan.py --dataset svhn --epochs 20`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan import main  # noqa: E402

if __name__ == "__main__":
    main(["--objective", "wgan-gp", *sys.argv[1:]])
