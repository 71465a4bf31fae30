"""benchmarks/zoo.py's lever study, run small: a VAE recipe with a held-out part runs the VAE levers,
judges them against faces it never trained on, and records the sharpness beside the real floor."""

import json
import runpy

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def zoo():
    return runpy.run_path(str(REPO / "benchmarks" / "zoo.py"), run_name="genhub_zoo")


def test_vae_levers_on_a_held_out_part(zoo, data_dir, tmp_path):
    recipe = REPO / "recipes" / "zoo" / "levers-vae-comic-faces.toml"
    argv = ["--recipe", str(recipe), "--budget", "1", "--samples", "40", "--levers", "base", "wider", "--docs", str(tmp_path)]
    record = zoo["main"](argv)
    assert record["script"] == "vae" and set(record["rows"]) == {"base", "wider"}
    assert "3283 training images" in record["context"]["dataset"] and "held-out 0.1" in record["context"]["dataset"]
    for row in record["rows"].values():
        assert row["steps"] >= 1 and (tmp_path / row["grid"]).is_file()
        assert 0 < row["metrics"]["sharpness"] < record["floor"]["sharpness"]  # a second's VAE is blurrier than real faces
        assert row["metrics"]["swd"] > record["floor"]["swd"]
    table = (tmp_path / "levers-comic-faces-vae.md").read_text()
    assert "Levers for small VAEs" in table and "| wider | width=32 |" in table
    assert json.loads((tmp_path / "levers-comic-faces-vae.json").read_text())["rows"]["wider"]["changes"] == {"width": 32}


def test_a_gan_lever_on_a_vae_recipe_is_refused(zoo, data_dir, tmp_path):
    recipe = REPO / "recipes" / "zoo" / "levers-vae-comic-faces.toml"
    with pytest.raises(SystemExit):
        zoo["main"](["--recipe", str(recipe), "--levers", "hinge loss", "--docs", str(tmp_path)])
    assert not list(tmp_path.iterdir())
