"""The package as its users install it: a wheel, not this checkout.

The test builds a wheel, installs it (not editable) into a fresh virtual environment that reuses
the already installed dependencies, and from an unrelated folder saves a model with its card,
loads it back and evaluates it with the bundled evaluator CNN. Card templates and evaluator
weights must therefore ship inside the wheel.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools' build folder: never reuse a stale one
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(REPO)],
        check=True,
        cwd=out,
    )
    shutil.rmtree(REPO / "build", ignore_errors=True)
    (path,) = out.glob("genhub-*.whl")
    return path


def test_the_wheel_carries_templates_and_evaluator(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"genhub/assets/model_cards/gan.md", "genhub/assets/model_cards/vae.md", "genhub/assets/model_cards/classifier.md"} <= names
    assert {"genhub/assets/evaluators/mnist-cnn/model.safetensors", "genhub/assets/evaluators/mnist-cnn/config.json"} <= names
    assert "genhub/training/base.py" in names and "genhub/models/gan.py" in names
    assert not any(name.startswith(("tests/", "train/", "benchmarks/", "weights/")) for name in names)


def test_an_installed_wheel_saves_loads_and_evaluates_from_anywhere(wheel, tmp_path, data_dir):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    # Reuse the dependencies installed here; a .pth line only adds the folder, so this
    # checkout's editable install of genhub (a .pth hook in that folder) is not picked up.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = textwrap.dedent(
        """
        import genhub, json
        from pathlib import Path
        from genhub import GenDCGAN, load_model
        from genhub.evaluation import evaluate_model

        assert "venv" in genhub.__file__, genhub.__file__
        model = GenDCGAN(width=8, latent_dim=16)
        model.save_pretrained("saved", model_card_kwargs={"dataset": "MNIST digits"})
        card = Path("saved/README.md").read_text()
        loaded = load_model("saved")
        evaluation = evaluate_model(loaded, "mnist", num_samples=64, seed=0)
        print(json.dumps({"file": genhub.__file__, "card": card[:2000], "metrics": evaluation.metrics}))
        """
    )
    env = {**os.environ, "GENHUB_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([str(python), "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert str(venv) in report["file"] and str(REPO) not in report["file"]
    assert "# GenDCGAN" in report["card"] and "library_name: genhub" in report["card"]
    assert {"fd", "precision", "recall", "class_coverage", "swd"} <= set(report["metrics"])
