"""Build hook: an installed wheel carries the files genhub reads at run time.

The card templates (top-level `model_cards/`, their source) and the bundled evaluator
(`weights/evaluators/`) are copied into the package as `genhub/assets/` when a wheel is built;
`genhub.assets.asset_dir` finds them there, and in the checkout for an editable install.
Everything else about the package is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
ASSETS = {"model_cards": ROOT / "model_cards", "evaluators": ROOT / "weights" / "evaluators"}


class BuildWithAssets(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the checkout directly
            return
        for name, source in ASSETS.items():
            target = Path(self.build_lib) / "genhub" / "assets" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.log", "metrics.json"))


setup(cmdclass={"build_py": BuildWithAssets})
