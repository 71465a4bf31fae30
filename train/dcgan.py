"""Preset: train/gan.py with --objective dcgan, a DCGAN (non-saturating GAN, Adam 2e-4, betas 0.5/0.999).
Every train/gan.py flag works here too, e.g. `python train/dcgan.py --dataset svhn --epochs 20`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan import main  # noqa: E402

if __name__ == "__main__":
    main(["--objective", "dcgan", *sys.argv[1:]])
