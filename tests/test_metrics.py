"""Sanity of genhub.evaluation.metrics on real MNIST: real-vs-real near the floor, real-vs-noise far,
a mode-dropped set (digits 0-4 only) caught, determinism for a seed, clear input errors."""

import json

import pytest
import torch

from genhub import GenVAE
from genhub.data import load_images
from genhub.evaluation import evaluate_model, real_floor, record_evaluation
from genhub.evaluation.metrics import (
    class_histogram,
    frechet_distance,
    iwae_nll,
    kernel_distance,
    precision_recall,
    sliced_wasserstein,
)
from genhub.models.classifier import DigitClassifier, load_evaluator

N = 1000


@pytest.fixture(scope="module")
def digits(data_dir):
    """Two disjoint real sets (train and test), noise, and a mode-dropped real set (0-4 only)."""
    train = load_images(data_dir / "mnist", split="train", limit=N)
    test = load_images(data_dir / "mnist", split="test", limit=3 * N)
    low = test.images[test.labels < 5][:N]
    generator = torch.Generator().manual_seed(0)
    return {
        "real": train.images.float() / 255,
        "other": test.images[:N].float() / 255,
        "noise": torch.rand(N, 1, 28, 28, generator=generator),
        "dropped": low.float() / 255,
        "test_labels": test.labels[:N],
        "real_labels": train.labels,
    }


@pytest.fixture(scope="module")
def features(digits):
    classifier = load_evaluator("mnist")
    return {name: classifier.features(images) for name, images in digits.items() if not name.endswith("labels")}, classifier


def test_bundled_evaluator_is_accurate_on_real_test_digits(digits, features):
    _, classifier = features
    accuracy = (classifier.predict(digits["other"]) == digits["test_labels"]).float().mean().item()
    assert accuracy >= 0.98


def test_frechet_distance_floor_and_noise(features):
    f, _ = features
    real_vs_real = frechet_distance(f["real"], f["other"])
    real_vs_noise = frechet_distance(f["real"], f["noise"])
    assert real_vs_real < 0.05 * real_vs_noise
    assert frechet_distance(f["real"], f["real"]) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_of_a_shift_is_its_squared_length():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    shift = torch.arange(8.0)
    assert frechet_distance(x, x + shift) == pytest.approx(shift.pow(2).sum().item(), rel=1e-6)


def test_kid_floor_and_noise(features):
    f, _ = features
    real_vs_real = kernel_distance(f["real"], f["other"], subsets=10, subset_size=500)["mean"]
    real_vs_noise = kernel_distance(f["real"], f["noise"], subsets=10, subset_size=500)["mean"]
    assert abs(real_vs_real) < 0.02 * real_vs_noise


def test_precision_recall_floor_noise_and_mode_dropping(features):
    f, _ = features
    real = precision_recall(f["real"], f["other"])
    noise = precision_recall(f["real"], f["noise"])
    dropped = precision_recall(f["real"], f["dropped"])
    assert real["precision"] > 0.6 and real["recall"] > 0.6
    assert noise["precision"] < 0.05 and noise["recall"] < 0.05
    # Half the digits missing: samples stay realistic (precision), coverage of the data falls.
    assert dropped["precision"] > 0.6
    assert dropped["recall"] < real["recall"] - 0.25


def test_class_histogram_catches_the_dropped_digits(digits, features):
    _, classifier = features
    full = class_histogram(classifier.probabilities(digits["other"]))
    dropped = class_histogram(classifier.probabilities(digits["dropped"]))
    assert full["coverage"] == 10 and full["entropy_bits"] > 3.2
    assert dropped["coverage"] == 5 and dropped["entropy_bits"] < 2.4
    assert sum(dropped["counts"]) == len(digits["dropped"])


def test_sliced_wasserstein_floor_noise_and_seed(digits):
    real, other, noise = digits["real"][:300], digits["other"][:300], digits["noise"][:300]
    real_vs_real = sliced_wasserstein(real, other, patches_per_image=32, seed=3)
    real_vs_noise = sliced_wasserstein(real, noise, patches_per_image=32, seed=3)
    assert len(real_vs_real["levels"]) == 2  # 28 and 14 pixels
    assert real_vs_real["mean"] < 0.3 * real_vs_noise["mean"]
    again = sliced_wasserstein(real, other, patches_per_image=32, seed=3)
    assert again["levels"] == real_vs_real["levels"]
    assert sliced_wasserstein(real, other, patches_per_image=32, seed=4)["mean"] != real_vs_real["mean"]


def test_kid_is_deterministic_for_a_seed(features):
    f, _ = features
    first = kernel_distance(f["real"], f["dropped"], subsets=5, subset_size=200, seed=7)
    assert kernel_distance(f["real"], f["dropped"], subsets=5, subset_size=200, seed=7) == first
    assert kernel_distance(f["real"], f["dropped"], subsets=5, subset_size=200, seed=8)["mean"] != first["mean"]


def test_bad_inputs_raise_clear_errors(digits):
    real = digits["real"][:50]
    with pytest.raises(ValueError, match="differ in dimension"):
        frechet_distance(torch.randn(50, 8), torch.randn(50, 9))
    with pytest.raises(ValueError, match="2-D"):
        precision_recall(torch.randn(50, 8, 1), torch.randn(50, 8))
    with pytest.raises(ValueError, match="NaN"):
        kernel_distance(torch.full((10, 4), float("nan")), torch.randn(10, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sliced_wasserstein(real, real * 255)
    with pytest.raises(ValueError, match="uint8|float"):
        sliced_wasserstein(real, (real * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="differ in shape"):
        sliced_wasserstein(real, torch.rand(50, 3, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        DigitClassifier().features(torch.rand(4, 1, 32, 32))
    with pytest.raises(ValueError, match="min_fraction"):
        class_histogram(torch.rand(4, 10), min_fraction=2)
    with pytest.raises(TypeError, match="VAEs only"):
        iwae_nll(DigitClassifier(), real)


def test_iwae_nll_is_deterministic_and_tightens(data_dir):
    torch.manual_seed(0)
    model = GenVAE(latent_dim=8, hidden_dims=(64,))
    images = load_images(data_dir / "binarized_mnist", split="validation", limit=20).images.float() / 255
    one = iwae_nll(model, images, k=1, seed=0)
    many = iwae_nll(model, images, k=64, seed=0)
    assert iwae_nll(model, images, k=64, seed=0) == many
    assert many["nll"] < one["nll"]  # log-mean-exp of 64 weights bounds log p(x) more tightly
    assert many["bits_per_dim"] == pytest.approx(many["nll"] / (784 * 0.6931471805599453))


def test_iwae_nll_resumes_from_its_record(data_dir, tmp_path):
    torch.manual_seed(0)
    model = GenVAE(latent_dim=8, hidden_dims=(64,))
    images = load_images(data_dir / "binarized_mnist", split="validation", limit=30).images.float() / 255
    whole = iwae_nll(model, images, k=16, batch_size=10, seed=3)
    record = tmp_path / "nll_bounds.json"

    def stop_after_two(done, total, running):
        if done == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        iwae_nll(model, images, k=16, batch_size=10, seed=3, record=record, progress=stop_after_two)
    assert [len(batch) for batch in json.loads(record.read_text())["bounds"]] == [10, 10]
    seen = []
    resumed = iwae_nll(model, images, k=16, batch_size=10, seed=3, record=record, progress=lambda *a: seen.append(a[0]))
    assert seen == [30]  # the two recorded batches were not recomputed
    assert resumed == whole
    other = iwae_nll(model, images, k=8, batch_size=10, seed=3, record=record)  # another k: the record is replaced
    assert other == iwae_nll(model, images, k=8, batch_size=10, seed=3)
    record.write_text("{ truncated")
    assert iwae_nll(model, images, k=16, batch_size=10, seed=3, record=record) == whole


def test_iwae_nll_in_channels_last_matches_and_leaves_the_model_as_it_was(tmp_path):
    torch.manual_seed(0)
    model = GenVAE(architecture="conv", latent_dim=4, width=8, pixelcnn_layers=1)
    images = torch.bernoulli(torch.full((6, 1, 28, 28), 0.3))
    plain = iwae_nll(model, images, k=4, batch_size=3)
    nhwc = iwae_nll(model, images, k=4, batch_size=3, channels_last=True)
    assert nhwc["nll"] == pytest.approx(plain["nll"], abs=1e-3)
    assert all(p.is_contiguous() for p in model.parameters())


def test_evaluate_model_and_record_in_card(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENHUB_DATA_DIR", str(data_dir))
    torch.manual_seed(0)
    model = GenVAE(latent_dim=8, hidden_dims=(64,))
    folder = tmp_path / "vae"
    model.save_pretrained(folder, model_card_kwargs={"dataset": "binarized MNIST"})
    evaluation = evaluate_model(model, "binarized-mnist", num_samples=200, nll_k=4, nll_images=20)
    assert evaluation.split == "validation"
    assert set(evaluation.metrics) >= {"fd", "kid", "precision", "recall", "class_coverage", "swd", "nll"}
    again = evaluate_model(model, "binarized-mnist", num_samples=200, nll_k=4, nll_images=20)
    assert again.metrics == evaluation.metrics
    record_evaluation(folder, evaluation)
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / "README.md")
    types = {result.metric_type for result in card.data.eval_results}
    assert {"frechet_distance", "recall", "nll"} <= types
    assert card.text.count("## Evaluation") == 1 and "Fréchet distance" in card.text
    assert json.loads((folder / "eval.json").read_text())["metrics"]["class_coverage"] == evaluation.metrics["class_coverage"]
    # Recording twice replaces the section rather than appending a second one.
    record_evaluation(folder, evaluation)
    assert ModelCard.load(folder / "README.md").text.count("## Evaluation") == 1


def test_recording_merges_with_results_written_at_training_time(tmp_path):
    """A new evaluation replaces the metrics it recomputes and keeps every other result."""
    from huggingface_hub import EvalResult, ModelCard

    from genhub.evaluation import METRICS, Evaluation, with_evaluation

    folder = tmp_path / "vae"
    training_nll = EvalResult(
        task_type="unconditional-image-generation", dataset_type="d", dataset_name="d", metric_type="nll", metric_value=85.65
    )
    GenVAE(latent_dim=4, hidden_dims=(16,)).save_pretrained(
        folder,
        model_card_kwargs={
            "metrics": {"validation NLL, IWAE k=1000 (2000 images, nats)": "85.65"},
            "metrics_note": "The NLL is an upper bound.",
            "eval_results": [training_nll],
            "model_name": "vae",
        },
    )
    first = Evaluation("mnist", "ylecun/mnist", "test", {"fd": 30.0, "swd": 20.0}, settings={"samples": 100})
    record_evaluation(folder, first)
    second = Evaluation("mnist", "ylecun/mnist", "test", {"fd": 12.5, "recall": 0.5}, settings={"samples": 200})
    record_evaluation(folder, second)

    card = ModelCard.load(folder / "README.md")
    values = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert values == {"frechet_distance": 12.5, "recall": 0.5, "sliced_wasserstein_distance": 20.0, "nll": 85.65}
    section = card.text.split("## Evaluation")[1].split("## Limitations")[0]
    assert "| validation NLL, IWAE k=1000 (2000 images, nats) | 85.65 |" in section  # written at training time
    assert f"| {METRICS['fd'][0]} | 12.50 |" in section and "30.00" not in section  # recomputed: replaced
    assert f"| {METRICS['swd'][0]} | 20.00 |" in section  # not recomputed: kept, with the note that explains it
    assert section.count("| metric | value |") == 1 and "The NLL is an upper bound." in section
    assert "(samples 100)" in section and "(samples 200)" in section
    # The same merge for a training script's card context, before the card is first written.
    context = with_evaluation({"metrics": {"final critic loss": "0.1"}, "metrics_note": "Losses."}, second)
    assert list(context["metrics"]) == ["final critic loss", METRICS["fd"][0], METRICS["recall"][0]]
    assert context["metrics_note"].startswith("Losses.\n\nMeasured on mnist")
    assert [result.metric_type for result in context["eval_results"]] == ["frechet_distance", "recall"]


def test_a_failed_end_of_training_evaluation_keeps_the_card_and_says_why(tmp_path, capsys):
    from genhub.evaluation import evaluate_for_card

    card = {"metrics": {"final critic loss": "0.1"}}
    model = GenVAE(latent_dim=4, hidden_dims=(16,))
    assert evaluate_for_card(model, "no-such-data", card, tmp_path, num_samples=10) is card
    assert "evaluation skipped: Unknown dataset 'no-such-data'" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()


def test_a_few_classifier_steps_lower_the_loss(digits):
    from genhub.training.classifier import train_steps

    torch.manual_seed(0)
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images = (digits["real"][:256] * 255).to(torch.uint8)
    labels = digits["real_labels"][:256]
    generator = torch.Generator().manual_seed(0)
    first = train_steps(model, optimizer, images, labels, 64, generator)
    for _ in range(3):
        last = train_steps(model, optimizer, images, labels, 64, generator)
    assert last < first - 0.3


def test_evaluate_cli_explains_bad_model_and_dataset(tmp_path):
    from conftest import script

    evaluate = script("evaluate")

    with pytest.raises(SystemExit, match="no config.json"):
        evaluate.main([str(tmp_path), "--dataset", "mnist"])
    folder = tmp_path / "vae"
    GenVAE(latent_dim=4, hidden_dims=(16,)).save_pretrained(folder)
    with pytest.raises(SystemExit, match="Unknown dataset 'no-such-data'"):
        evaluate.main([str(folder), "--dataset", "no-such-data"])
    assert not (folder / "eval.json").exists()  # nothing half-written


def test_evaluate_cli_truncation_writes_beside_the_card_not_into_it(tmp_path, data_dir):
    from conftest import script

    evaluate = script("evaluate")
    folder = tmp_path / "vae"
    GenVAE(latent_dim=4, hidden_dims=(16,)).save_pretrained(folder)
    card = (folder / "README.md").read_text()
    with pytest.raises(SystemExit):  # argparse: --truncation needs --out
        evaluate.main([str(folder), "--dataset", "mnist", "--truncation", "1"])
    with pytest.raises(SystemExit):
        evaluate.main([str(folder), "--dataset", "mnist", "--truncation", "0", "--out", str(tmp_path / "t")])
    argv = [str(folder), "--dataset", "mnist", "--samples", "200", "--nll-k", "0", "--out", str(tmp_path / "t")]
    truncated = evaluate.main([*argv, "--truncation", "0.5"])
    assert truncated["settings"]["latent truncation"] == 0.5
    assert (folder / "README.md").read_text() == card and not (folder / "eval.json").exists()
    assert json.loads((tmp_path / "t" / "eval.json").read_text())["settings"]["latent truncation"] == 0.5
    plain = evaluate.main([*argv, "--no-card"])
    assert "latent truncation" not in plain["settings"] and plain["metrics"]["fd"] != truncated["metrics"]["fd"]


def test_memorisation_tells_a_copier_from_a_generator_of_new_images():
    from genhub.data import holdout_split
    from genhub.evaluation.metrics import memorisation

    images = (torch.rand(400, 1, 8, 8) > 0.5).float()
    train, held_out = holdout_split(images, 0.25, seed=0)
    again_train, again_held = holdout_split(images, 0.25, seed=0)
    assert torch.equal(train, again_train) and torch.equal(held_out, again_held) and len(held_out) == 100
    assert not any((held_out[i] == train).flatten(1).all(1).any() for i in range(5))  # disjoint (random bits)
    copier = memorisation(train[:64], train, held_out)
    assert copier["pixel"]["ratio"] == 0 and copier["pixel"]["share_closer_than_5pct_held_out"] == 1
    assert torch.equal(train[copier["nearest"]], train[:64])
    fresh = memorisation((torch.rand(64, 1, 8, 8) > 0.5).float(), train, held_out, features=lambda x: x.flatten(1) * 2)
    assert 0.9 < fresh["pixel"]["ratio"] < 1.1 and fresh["features"]["ratio"] == pytest.approx(fresh["pixel"]["ratio"], rel=1e-5)
    assert fresh["pixel"]["share_closer_than_5pct_held_out"] < 0.2
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        holdout_split(images, 1.5)


def test_the_nll_uses_nll_images_not_the_sample_count(data_dir, monkeypatch):
    """The reported case: --samples 5000 --nll-images 10000 evaluated the NLL on 5,000 images."""
    monkeypatch.setenv("GENHUB_DATA_DIR", str(data_dir))
    vae = GenVAE(latent_dim=4, hidden_dims=(16,))
    evaluation = evaluate_model(vae, "binarized-mnist", num_samples=50, nll_k=2, nll_images=120)
    assert evaluation.details["nll"]["images"] == 120 and evaluation.settings["NLL images"] == 120
    assert evaluation.settings["samples"] == 50


def test_real_floor_scores_real_images_near_perfect_against_the_evaluation_reference(data_dir):
    floor = real_floor("mnist", (1, 28, 28), num_samples=500)
    assert floor["images"] == 500 and floor["class_coverage"] == 10
    assert floor["fd"] < 10 and floor["precision"] > 0.7 and floor["recall"] > 0.4  # k-NN recall is low at 500 images
    noise = evaluate_model(GenVAE(latent_dim=2, architecture="mlp", hidden_dims=(8,)), "mnist", num_samples=500, nll_k=0)
    assert noise.metrics["fd"] > 10 * floor["fd"]  # an untrained model sits far above it
    faces = real_floor("comic-faces", (3, 64, 64), holdout=0.1)  # the held-out tenth against the last training images
    assert faces["images"] == 365 and set(faces) == {"swd", "images"}
    with pytest.raises(ValueError, match="too few for a real-vs-real floor"):
        real_floor("svhn", (3, 32, 32), num_samples=1000)  # 1,083 train-only images cannot give 2 x 1,000
