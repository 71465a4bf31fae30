"""Three SIGKILLs of train/gan.py and of train/vae.py, each followed by --resume, end in weights
identical byte for byte to an uninterrupted run's (benchmarks/soak.py, run small)."""

import runpy

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_three_kills_and_resumes_give_the_uninterrupted_weights(tmp_path, data_dir):
    soak = runpy.run_path(str(REPO / "benchmarks" / "soak.py"), run_name="genhub_soak")
    report = soak["main"](["--kills", "3", "--epochs", "4", "--work", str(tmp_path), "--out", ""])
    for result in report["results"]:
        assert result["kills"] == 3, result
        assert result["resumed_runs"] >= 1, result  # at least one kill came after a checkpoint: a real resume
        assert result["bit_exact"], result
