"""GAN networks, Hub classes, the trainer (resume, divergence, EMA) and train/gan.py end to end."""

import json

import pytest
import torch
from conftest import script
from huggingface_hub import ModelCard

from genhub import GenDCGAN, GenGAN, GenWGAN, ModelLoadError, load_model
from genhub.models.gan import Critic, build_generator, gan_class
from genhub.objectives import get_objective
from genhub.training.gan import CHECKPOINT_NAME, CheckpointError, GANTrainer, TrainingDiverged, TrainSettings, read_checkpoint

train_gan = script("gan")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These networks are tiny: one thread avoids oversubscribing a small shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHAPES = [(c, s, s) for s in (28, 32, 64) for c in (1, 3)]


@pytest.mark.parametrize("architecture", ["dcgan", "mlp"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_generator_and_critic_shapes(shape, architecture):
    generator = build_generator(16, shape, architecture, width=8, hidden_dims=(32,))
    images = generator(torch.randn(3, 16))
    assert images.shape == (3, *shape)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    for norm in ("batch", "layer", "none"):
        scores = Critic(shape, architecture, width=8, hidden_dims=(32,), norm=norm)(images)
        assert scores.shape == (3,)


def test_gradient_penalty_critics_have_no_batch_norm():
    norm = get_objective("wgan-gp").critic_norm
    critic = Critic((3, 64, 64), width=8, norm=norm)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in Critic((3, 64, 64), width=8).modules())


@pytest.mark.parametrize("cls", [GenDCGAN, GenWGAN, GenGAN])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)], ids=str)
def test_save_and_load_any_size(tmp_path, cls, shape):
    model = cls(image_shape=shape, latent_dim=12, width=8, architecture="dcgan")
    model.save_pretrained(tmp_path, model_card_kwargs={"dataset": "toy"})
    loaded = cls.from_pretrained(tmp_path)
    samples = loaded.sample(16, seed=3)
    assert samples.shape == (16, *shape) and samples.min() >= 0 and samples.max() <= 1
    assert torch.equal(samples, model.sample(16, seed=3))
    assert type(load_model(tmp_path)) is cls
    card = (tmp_path / "README.md").read_text()
    assert cls.__name__ in card and "unconditional-image-generation" in card


def test_mlp_generator_round_trip_keeps_its_hidden_sizes(tmp_path):
    model = GenWGAN(image_shape=(1, 28, 28), architecture="mlp", hidden_dims=(64, 32), objective="wgan")
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["hidden_dims"] == [64, 32]
    loaded = GenWGAN.from_pretrained(tmp_path)
    assert loaded.objective == "wgan" and torch.equal(loaded.sample(4, seed=0), model.sample(4, seed=0))


def test_class_follows_the_objective():
    assert gan_class("dcgan") is GenDCGAN
    assert gan_class("wgan") is GenWGAN and gan_class("wgan-gp") is GenWGAN
    assert gan_class("hinge") is GenGAN and gan_class("lsgan") is GenGAN


def test_bad_model_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="architecture must be one of"):
        GenDCGAN(architecture="resnet")
    with pytest.raises(ValueError, match="image_shape"):
        GenDCGAN(image_shape=(2, 28, 28))
    with pytest.raises(ValueError, match="latent_dim"):
        GenDCGAN(latent_dim=0)
    with pytest.raises(ValueError, match=r"latent codes must have shape \(N, 100\)"):
        GenDCGAN().decode(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="positive integer"):
        GenDCGAN().sample(0)
    GenDCGAN(width=8).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="do not match"):
        GenDCGAN.from_pretrained(tmp_path, width=16)


# -- trainer ------------------------------------------------------------------------------
def toy_images(n=96, shape=(1, 28, 28), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=generator, dtype=torch.uint8)


def toy_trainer(objective="dcgan", out=None, **settings):
    torch.manual_seed(settings.get("seed", 0))  # the networks' initial weights
    objective_spec = get_objective(objective)
    model = gan_class(objective)(latent_dim=8, width=4, objective=objective)
    critic = Critic((1, 28, 28), width=4, norm=objective_spec.critic_norm)
    settings = TrainSettings(**{"batch_size": 16, "grid_size": 4, "progress": False, "check_every": 2, **settings})
    return GANTrainer(model, critic, objective, out=out, settings=settings)


@pytest.mark.parametrize("objective", ["dcgan", "wgan-gp", "wgan"])
def test_resume_continues_identically(tmp_path, objective):
    images = toy_images()
    straight = toy_trainer(objective, out=tmp_path / "straight", seed=5)
    straight.fit(images, epochs=2)

    first = toy_trainer(objective, out=tmp_path / "split", seed=5)
    first.fit(images, epochs=1)
    del first
    resumed = GANTrainer.from_checkpoint(tmp_path / "split" / CHECKPOINT_NAME, progress=False)
    assert resumed.epoch == 1
    resumed.fit(images, epochs=2)

    assert resumed.history == straight.history  # every logged loss of both epochs, exactly
    assert len(straight.history["step"]) == 2 * (96 // 16) // straight.n_critic
    for a, b in zip(resumed.ema.parameters(), straight.ema.parameters()):
        assert torch.equal(a, b)
    assert (tmp_path / "split" / "samples" / "epoch_002.png").exists()
    assert (tmp_path / "split" / "loss_curves.png").exists()


def test_different_seeds_give_different_runs():
    images = toy_images()
    a, b = toy_trainer(seed=0), toy_trainer(seed=1)
    a.fit(images, 1)
    b.fit(images, 1)
    assert a.history["critic_loss"] != b.history["critic_loss"]


def test_ema_generator_trails_the_live_one():
    trainer = toy_trainer()
    initial = [p.clone() for p in trainer.ema.parameters()]
    trainer.fit(toy_images(), epochs=1)
    live, ema = list(trainer.model.parameters()), list(trainer.ema.parameters())
    assert any(not torch.equal(e, i) for e, i in zip(ema, initial))  # it moved
    assert any(not torch.equal(e, p) for e, p in zip(ema, live))  # but is not a copy


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = toy_trainer(out=tmp_path)
    images = toy_images()
    trainer.fit(images, epochs=1)
    good = (tmp_path / CHECKPOINT_NAME).read_bytes()
    trainer.objective.generator_loss = lambda fake_scores: fake_scores.mean() * float("nan")
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 2.*generator_loss=nan.*last good checkpoint \(epoch 1\)"):
        trainer.fit(images, epochs=3)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == good
    assert read_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 1


def test_generator_learning_rate_scales_against_the_critics():
    assert [g["lr"] for g in toy_trainer("dcgan").optimizer_g.param_groups] == [2e-4]  # the objective's recipe
    trainer = toy_trainer("dcgan", lr=1e-3, generator_lr_scale=2.0)
    assert [g["lr"] for g in trainer.optimizer_g.param_groups] == [2e-3]
    assert [g["lr"] for g in trainer.optimizer_d.param_groups] == [1e-3]
    with pytest.raises(ValueError, match="generator_lr_scale must be positive"):
        toy_trainer("dcgan", generator_lr_scale=0.0)


def test_trainer_rejects_wrong_data():
    trainer = toy_trainer()
    with pytest.raises(ValueError, match="uint8"):
        trainer.fit(torch.rand(32, 1, 28, 28), epochs=1)
    with pytest.raises(ValueError, match=r"shape \(3, 28, 28\) but the model makes \(1, 28, 28\)"):
        trainer.fit(toy_images(shape=(3, 28, 28)), epochs=1)
    with pytest.raises(ValueError, match="fewer than one batch"):
        trainer.fit(toy_images(n=8), epochs=1)
    with pytest.raises(ValueError, match="critic sees"):
        GANTrainer(GenDCGAN(width=4), Critic((1, 32, 32), width=4), "dcgan")


def test_corrupt_or_missing_checkpoints_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        GANTrainer.from_checkpoint(tmp_path / CHECKPOINT_NAME)
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        GANTrainer.from_checkpoint(tmp_path / CHECKPOINT_NAME)
    torch.save({"weights": torch.zeros(1)}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="not a genhub GAN checkpoint"):
        GANTrainer.from_checkpoint(tmp_path / CHECKPOINT_NAME)


# -- train/gan.py ---------------------------------------------------------------------------
def test_two_epochs_on_real_mnist_write_a_loadable_generator_and_card(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    common = [
        "--dataset",
        str(data_dir / "mnist"),
        "--limit",
        "256",
        "--width",
        "8",
        "--latent-dim",
        "16",
        "--batch-size",
        "32",
        "--out",
        str(out),
        "--no-progress",
        "--objective",
        "wgan-gp",
        "--eval-samples",
        "200",
    ]
    train_gan.main([*common, "--epochs", "2", "--card-note", "Trained by the test suite."])
    folder = out / "model"
    model = GenWGAN.from_pretrained(folder)
    assert model.sample(16, seed=0).shape == (16, 1, 28, 28)
    assert type(load_model(folder)) is GenWGAN
    card = (folder / "README.md").read_text()
    assert "wgan-gp" in card and "256 images" in card and "| epochs | 2 |" in card and "samples.png" in card
    assert "Trained by the test suite." in card and "python train/gan.py --dataset" in card
    assert (folder / "samples.png").exists() and (out / "loss_curves.png").exists()
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    # The final evaluation is in the card next to the training losses, and in its model-index.
    assert json.loads((folder / "eval.json").read_text())["settings"]["samples"] == 200
    assert "| final critic loss |" in card and "| recall (k=3) |" in card and "Losses of the last logged step" in card
    assert {"frechet_distance", "class_coverage"} <= {r.metric_type for r in ModelCard.load(folder / "README.md").data.eval_results}

    with pytest.raises(SystemExit, match="exists; pass --resume"):
        train_gan.main([*common, "--epochs", "3"])
    train_gan.main([*common, "--epochs", "3", "--resume"])
    assert "resumed" in capsys.readouterr().out
    assert read_checkpoint(out / CHECKPOINT_NAME)["epoch"] == 3
    assert "| epochs | 3 |" in (folder / "README.md").read_text()


def test_faces_are_evaluated_with_the_network_free_metric_only(tmp_path, data_dir):
    out = tmp_path / "faces"
    train_gan.main(
        [
            "--dataset",
            str(data_dir / "anime_faces"),
            "--limit",
            "32",
            "--width",
            "4",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--no-progress",
            "--eval-samples",
            "64",
        ]
    )
    evaluation = json.loads((out / "model" / "eval.json").read_text())
    assert list(evaluation["metrics"]) == ["swd"] and evaluation["metrics"]["swd"] > 0
    assert "evaluator CNN reads 28x28 grey digits" in (out / "model" / "README.md").read_text()


def test_push_without_hub_fails_cleanly_after_saving(tmp_path, data_dir):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        train_gan.main(
            [
                "--dataset",
                str(data_dir / "mnist"),
                "--limit",
                "64",
                "--width",
                "4",
                "--batch-size",
                "32",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--no-progress",
                "--push",
                "--repo-id",
                "someone/gan",
                "--no-eval",
            ]
        )
    assert exit_info.value.code == 2
    assert GenDCGAN.from_pretrained(out / "model").sample(2).shape == (2, 1, 28, 28)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--objective", "wgan-gp", "--critic-norm", "batch"], "gradient penalty"),
        (["--objective", "vanilla"], "invalid choice"),
        (["--push"], "--push needs --repo-id"),
        (["--epochs", "0"], "--epochs must be a positive integer"),
        (["--lr", "-1"], "--lr must be positive"),
        (["--eval-samples", "1"], "--eval-samples must be at least 2"),
        (["--r1", "-1"], "--r1 must be a penalty weight >= 0"),
        (["--r1", "nan"], "--r1 must be a penalty weight >= 0"),
        (["--objective", "mmdgan", "--r1", "1"], "--r1 needs a score objective"),
        (["--upsample", "bilinear"], "invalid choice"),
        (["--generator-extra-convs", "9"], "--generator-extra-convs must be from 0 to 8"),
        (["--arch", "mlp", "--critic-extra-convs", "1"], "--critic-extra-convs applies to --arch conv only"),
        (["--critic-norm", "spectrum"], "invalid choice"),
    ],
)
def test_cli_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        train_gan.parse_args(argv)
    assert message in capsys.readouterr().err


def test_cli_explains_bad_data_and_missing_checkpoints(tmp_path):
    with pytest.raises(SystemExit, match="Unknown dataset 'no-such-data'"):
        train_gan.main(["--dataset", "no-such-data", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no checkpoint at"):
        train_gan.main(["--resume", "--out", str(tmp_path)])


def test_small_data_run_holds_out_images_and_measures_memorisation(tmp_path, data_dir):
    """svhn with --holdout and DiffAugment: the held-out tenth is never trained on, and the final
    evaluation compares against it, with the memorisation ratios and grid in the card."""
    out = tmp_path / "svhn"
    train_gan.main(
        [
            "--dataset",
            str(data_dir / "svhn_sample"),
            "--objective",
            "wgan-gp",
            "--limit",
            "200",
            "--holdout",
            "0.1",
            "--width",
            "4",
            "--batch-size",
            "16",
            "--epochs",
            "1",
            "--augment",
            "color,translation,cutout",
            "--out",
            str(out),
            "--no-progress",
            "--eval-samples",
            "64",
        ]  # fmt: skip
    )
    evaluation = json.loads((out / "model" / "eval.json").read_text())
    assert evaluation["split"] == "train, held-out 0.1 (20 images)"
    assert {"swd", "memorisation_ratio", "memorisation_ratio_features"} <= set(evaluation["metrics"])
    assert evaluation["metrics"]["memorisation_ratio"] > 0
    assert (out / "model" / "memorisation.png").exists()
    card = (out / "model" / "README.md").read_text()
    assert "180 images" in card and "DiffAugment color,translation,cutout, probability 1" in card
    assert "memorisation: nearest-training-image distance" in card and "held out for evaluation" in card
    assert "first 1,083 crops" in card and "(Hub: `ufldl-stanford/svhn`)" in card  # what the offline data is
