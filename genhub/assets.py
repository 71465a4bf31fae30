"""Where genhub finds the files it ships: model card templates and the evaluator weights.

An installed wheel carries them inside the package, under `genhub/assets/` (setup.py copies
them there at build time from the top-level `model_cards/` and `weights/evaluators/`, which
stay their source). A checkout, editable install included, reads the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_ASSETS = Path(__file__).resolve().parent / "assets"
CHECKOUT = Path(__file__).resolve().parent.parent


def asset_dir(name: str) -> Path:
    """The folder for `name` ("model_cards" or "evaluators"): inside the package when it was
    installed from a wheel, else in the checkout (which may not exist; callers check)."""
    packaged = PACKAGE_ASSETS / name
    if packaged.is_dir():
        return packaged
    return CHECKOUT / ("weights/evaluators" if name == "evaluators" else name)


def bundled_weights_dir() -> Path:
    """The Space's bundled models: the checkout's `weights/` (the Space runs from its repository)."""
    return CHECKOUT / "weights"
