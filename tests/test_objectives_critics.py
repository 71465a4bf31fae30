"""The critic each objective declares (score, feature vector, auto-encoder), built in one place
for images of any supported size and channel count, trained on real MNIST and resumed."""

import pytest
import torch
from conftest import script

from genhub import load_images
from genhub.models.gan import AutoencoderCritic, Critic, GenGAN, build_critic, critic_from_config
from genhub.objectives import OBJECTIVES, get_objective
from genhub.training.gan import CHECKPOINT_NAME, GANTrainer, TrainSettings

train_gan = script("gan")

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 64, 64), (3, 64, 64)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("architecture", ["dcgan", "mlp"])
def test_each_critic_kind_has_the_right_output_shape(shape, architecture):
    images = torch.rand(3, *shape) * 2 - 1
    options = {"architecture": architecture, "width": 4, "hidden_dims": (8,)}
    score = build_critic("wgan", shape, **options)
    features = build_critic("mmdgan", shape, **options)
    autoencoder = build_critic("began", shape, **options)
    assert type(score) is Critic and score(images).shape == (3,)
    assert type(features) is Critic and features(images).shape == (3, get_objective("mmdgan").feature_dim)
    assert type(autoencoder) is AutoencoderCritic and autoencoder(images).shape == images.shape
    for critic in (score, features, autoencoder):
        rebuilt = critic_from_config(critic.config)
        assert type(rebuilt) is type(critic)
        rebuilt.load_state_dict(critic.state_dict())  # same architecture, weight for weight


def test_every_objective_declares_a_critic_that_fits_its_losses():
    kinds = {name: objective.critic_kind for name, objective in OBJECTIVES.items()}
    assert {name for name, kind in kinds.items() if kind == "autoencoder"} == {"ebgan", "began", "magan"}
    assert {name for name, kind in kinds.items() if kind == "features"} == {"mcgan", "mmdgan", "cramer"}


def test_critic_options_are_checked_and_norm_follows_the_objective():
    assert build_critic("wgan-gp", (1, 28, 28), width=4).config["norm"] == "layer"
    assert build_critic("wgan-gp", (1, 28, 28), width=4, norm="none").config["norm"] == "none"
    with pytest.raises(ValueError, match="out_features"):
        Critic((1, 28, 28), out_features=0)
    with pytest.raises(ValueError, match="code_dim"):
        AutoencoderCritic((1, 28, 28), code_dim=0)
    with pytest.raises(ValueError, match="unknown critic class 'Discriminator'"):
        critic_from_config({"class": "Discriminator", "image_shape": [1, 28, 28]})
    # checkpoints written before critics named their class rebuild as the score critic
    assert type(critic_from_config({"image_shape": [1, 28, 28], "width": 4})) is Critic


@pytest.fixture(scope="module")
def mnist_slice(data_dir):
    return load_images(str(data_dir / "mnist"), limit=48).images


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_objective_trains_conv_networks_on_real_mnist_without_nan(name, mnist_slice):
    torch.manual_seed(0)
    shape = tuple(mnist_slice.shape[1:])
    model = GenGAN(shape, latent_dim=8, width=4)
    trainer = GANTrainer(model, build_critic(name, shape, width=4), name, settings=TrainSettings(batch_size=16, progress=False))
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(mnist_slice, epochs=2)  # 6 critic steps: at least one generator step even with n_critic 5
    assert trainer.generator_steps >= 1
    assert all(torch.isfinite(torch.tensor(values)).all() for values in trainer.history.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_an_autoencoder_critic_and_the_began_balance_resume_exactly(tmp_path, mnist_slice):
    shape = tuple(mnist_slice.shape[1:])

    def fresh(out):
        torch.manual_seed(3)
        model = GenGAN(shape, latent_dim=8, width=4)
        return GANTrainer(
            model, build_critic("began", shape, width=4), "began", out=out, settings=TrainSettings(batch_size=16, progress=False)
        )

    straight = fresh(tmp_path / "straight")
    straight.fit(mnist_slice, epochs=2)
    first = fresh(tmp_path / "split")
    first.fit(mnist_slice, epochs=1)
    balance_after_one_epoch = first.objective.k
    del first
    resumed = GANTrainer.from_checkpoint(tmp_path / "split" / CHECKPOINT_NAME, progress=False)
    assert type(resumed.critic) is AutoencoderCritic
    assert resumed.objective.k == balance_after_one_epoch != 0.0
    resumed.fit(mnist_slice, epochs=2)
    assert resumed.history == straight.history
    assert resumed.objective.k == straight.objective.k
    for a, b in zip(resumed.critic.parameters(), straight.critic.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["began", "mmdgan"])
def test_train_gan_builds_the_declared_critic_and_resumes(name, tmp_path, data_dir):
    out = tmp_path / name
    common = [
        "--objective",
        name,
        "--dataset",
        str(data_dir / "mnist"),
        "--limit",
        "64",
        "--width",
        "4",
        "--latent-dim",
        "8",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--no-progress",
        "--no-eval",
    ]
    first = train_gan.main([*common, "--epochs", "1"])
    expected = AutoencoderCritic if name == "began" else Critic
    assert type(first.critic) is expected
    resumed = train_gan.main([*common, "--epochs", "2", "--resume"])
    assert type(resumed.critic) is expected and resumed.epoch == 2
    assert resumed.critic.config == first.critic.config
    assert f"{expected.__name__} ({get_objective(name).critic_kind})" in (out / "model" / "README.md").read_text()
