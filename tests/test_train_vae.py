"""train/vae.py end to end on a small slice of real data."""

import json

import pytest
from conftest import script

from genhub import GenVAE


def run_script(argv):
    return script("vae").main(argv)


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("vae-run")
    metrics = run_script(
        [
            "--dataset",
            str(data_dir / "binarized_mnist"),
            "--limit",
            "1000",
            "--epochs",
            "2",
            "--arch",
            "mlp",
            "--latent-dim",
            "8",
            "--hidden",
            "64",
            "--eval-k",
            "20",
            "--eval-limit",
            "50",
            "--out",
            str(out),
            "--eval-samples",
            "200",
        ]
    )
    return out, metrics


def test_writes_weights_card_grids_and_metrics(run):
    out, metrics = run
    model_dir = out / "model"
    assert {"config.json", "model.safetensors", "README.md", "samples.png"} <= {p.name for p in model_dir.iterdir()}
    assert sorted(p.name for p in (out / "epochs").iterdir()) == [
        "001_reconstructions.png",
        "001_samples.png",
        "002_reconstructions.png",
        "002_samples.png",
    ]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["validation_nll_iwae_k20"] == metrics["validation_nll_iwae_k20"]
    assert len(saved["history"]) == 2
    card = (model_dir / "README.md").read_text()
    assert "![samples](samples.png)" in card
    assert f"{metrics['validation_nll_iwae_k20']:.2f}" in card
    # A local mirror of a known dataset is named by its Hub id and genhub name, never by its path.
    assert "datasets:\n- binarized_mnist" in card and "# GenVAE on binarized-mnist" in card
    assert str(out.parent) not in card.split("Trained with:")[0]
    assert "type: nll" in card  # the NLL is in the model-index


def test_final_evaluation_is_in_the_card_next_to_the_nll(run):
    from huggingface_hub import ModelCard

    out, metrics = run
    evaluation = json.loads((out / "model" / "eval.json").read_text())
    assert evaluation["dataset"] == "binarized-mnist" and evaluation["settings"]["samples"] == 200
    assert "nll" not in evaluation["metrics"]  # the held-out NLL comes from the training script, once
    card = ModelCard.load(out / "model" / "README.md")
    assert {"frechet_distance", "recall", "class_coverage", "sliced_wasserstein_distance"} <= {
        r.metric_type for r in card.data.eval_results
    }
    section = card.text.split("## Evaluation")[1]
    assert f"| validation NLL, IWAE k=20 (50 images, nats) | {metrics['validation_nll_iwae_k20']:.2f} |" in section
    assert "Fréchet distance (evaluator CNN features)" in section and "an upper bound on the true" in section


def test_final_model_loads_and_samples(run):
    out, _ = run
    model = GenVAE.from_pretrained(out / "model")
    assert model.latent_dim == 8 and model.likelihood == "bernoulli"
    assert model.sample(4, seed=0).shape == (4, 1, 28, 28)


def test_push_without_token_fails_after_saving(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exit_info:
        run_script(
            [
                "--dataset",
                str(data_dir / "binarized_mnist"),
                "--limit",
                "200",
                "--epochs",
                "1",
                "--arch",
                "mlp",
                "--latent-dim",
                "4",
                "--hidden",
                "16",
                "--eval-k",
                "2",
                "--eval-limit",
                "10",
                "--out",
                str(tmp_path / "run"),
                "--push",
                "--repo-id",
                "someone/vae-test",
                "--no-eval",
            ]
        )
    assert exit_info.value.code == 2
    assert "The model is saved in" in capsys.readouterr().err
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "model" / "eval.json").exists()  # --no-eval


def test_push_needs_a_repo_id(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_script(["--push", "--out", str(tmp_path)])
    assert exit_info.value.code == 2  # argparse error, before any training


def test_unknown_dataset_stops_with_the_accepted_names(tmp_path):
    with pytest.raises(Exception, match="Accepted dataset names"):
        run_script(["--dataset", "not-a-dataset", "--out", str(tmp_path)])


def test_eval_only_repackages_a_run(run, data_dir):
    out, metrics = run
    flags = ["--dataset", str(data_dir / "binarized_mnist"), "--out", str(out), "--eval-only", "--eval-k", "5", "--eval-limit", "20"]
    again = run_script(flags)
    assert again["best_epoch"] == metrics["best_epoch"]
    assert again["validation_neg_elbo"] == metrics["validation_neg_elbo"]
    assert again["nll_images"] == 20 and "validation_nll_iwae_k5" in again
    card = (out / "model" / "README.md").read_text()
    assert "Trained with" in card and "--epochs 2" in card  # the training command, from the run's checkpoint
    (out / "checkpoint.pt").rename(out / "checkpoint.bak")
    try:  # without a checkpoint it still packages, without the command
        run_script(flags)
    finally:
        (out / "checkpoint.bak").rename(out / "checkpoint.pt")
    assert "--epochs 2" not in (out / "model" / "README.md").read_text()


def test_a_repeated_nll_evaluation_continues_from_its_record(run, data_dir, capsys):
    out, _ = run
    flags = ["--dataset", str(data_dir / "binarized_mnist"), "--out", str(out), "--eval-only", "--eval-k", "7", "--eval-limit", "30"]
    first = run_script(flags)
    assert "NLL (IWAE, k=7): 30/30 images" in capsys.readouterr().out
    assert sum(map(len, json.loads((out / "nll_bounds.json").read_text())["bounds"])) == 30  # per-image bounds, per batch
    again = run_script(flags)
    assert again["validation_nll_iwae_k7"] == first["validation_nll_iwae_k7"]
    assert "running mean" not in capsys.readouterr().out  # nothing recomputed: every batch was in the record


def test_eval_only_without_a_run_is_a_clear_error(data_dir, tmp_path):
    with pytest.raises(ValueError, match="needs a finished or stopped run"):
        run_script(["--dataset", str(data_dir / "binarized_mnist"), "--out", str(tmp_path), "--eval-only"])


def mlp_flags(data_dir, out):
    return ["--dataset", str(data_dir / "binarized_mnist"), "--limit", "1000", "--arch", "mlp", "--latent-dim", "8", "--hidden", "64",
            "--out", str(out)]  # fmt: skip


def test_init_from_starts_a_second_stage_from_a_runs_model(run, data_dir, tmp_path):
    """--init-from: the weights of a saved GenVAE start the run (fresh optimizer), and the card says so."""
    import torch

    from genhub.training.cli import parse_vae_args
    from genhub.training.runs import build_vae

    out, _ = run
    args = parse_vae_args([*mlp_flags(data_dir, tmp_path / "stage2"), "--init-from", str(out / "model")])
    built = build_vae(args, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    saved = GenVAE.from_pretrained(out / "model")
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), saved.state_dict().values()))
    fresh = build_vae(parse_vae_args(mlp_flags(data_dir, tmp_path / "fresh")), torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), saved.state_dict().values()))

    stage2 = [*mlp_flags(data_dir, tmp_path / "stage2"), "--init-from", str(out / "model"), "--epochs", "1", "--no-eval"]
    metrics = run_script([*stage2, "--card-note", "Stage two of two."])
    first_run = json.loads((out / "metrics.json").read_text())["history"]
    assert metrics["validation_neg_elbo"] < -first_run[0]["val_elbo"]  # it goes on from the trained model, not from scratch
    card = (tmp_path / "stage2" / "model" / "README.md").read_text()
    assert f"| initialised from | {out / 'model'} |" in card and "\nStage two of two.\n" in card


def test_init_from_a_different_model_names_the_fields(run, data_dir, tmp_path):
    out, _ = run
    with pytest.raises(ValueError, match=r"latent_dim 8 \(the flags build 16\)"):
        run_script([*mlp_flags(data_dir, tmp_path / "s"), "--latent-dim", "16", "--init-from", str(out / "model"), "--epochs", "1"])
    with pytest.raises(Exception, match="No model folder at .*nowhere"):
        run_script([*mlp_flags(data_dir, tmp_path / "t"), "--init-from", str(tmp_path / "nowhere"), "--epochs", "1"])


def test_fit_prior_packages_the_run_with_a_mixture_fitted_to_its_codes(run, data_dir, tmp_path):
    """--fit-prior K: the saved model samples from K Gaussians fitted to its aggregate posterior;
    the card says so and gives the validation bound under both priors."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run[0], out)
    flags = ["--dataset", str(data_dir / "binarized_mnist"), "--limit", "1000", "--out", str(out), "--eval-only", "--eval-k", "5"]
    metrics = run_script([*flags, "--eval-limit", "20", "--fit-prior", "5", "--eval-samples", "50"])
    model, best = GenVAE.from_pretrained(out / "model"), GenVAE.from_pretrained(out / "best")
    assert (model.prior, len(model.prior_means)) == ("mog", 5)
    assert (best.prior, len(best.prior_means)) == ("mog", 100)  # the run's own model (the default prior) is kept as trained
    card = (out / "model" / "README.md").read_text()
    assert "mixture of 5 diagonal Gaussians fitted by EM" in card and "under the trained prior" in card
    assert metrics["validation_neg_elbo"] != run[1]["validation_neg_elbo"]
    assert json.loads((out / "model" / "config.json").read_text())["num_components"] == 5


def test_fit_prior_must_not_be_negative(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        run_script(["--fit-prior", "-1", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
