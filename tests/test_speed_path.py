"""The GAN trainer's speed options (precision, channels_last, compile): each trains, and the
compiled gradient penalty falls back to an eager critic instead of failing."""

from __future__ import annotations

import pytest
import torch

from genhub.models.gan import GenWGAN, build_critic
from genhub.objectives import get_objective
from genhub.training.gan import GANTrainer, TrainSettings


def trainer(objective: str, **settings) -> GANTrainer:
    torch.manual_seed(0)
    shape = (1, 16, 16)
    model = GenWGAN(image_shape=shape, latent_dim=8, architecture="conv", width=8, objective=objective)
    critic = build_critic(get_objective(objective), shape, architecture="conv", width=8)
    return GANTrainer(model, critic, objective, settings=TrainSettings(batch_size=8, progress=False, **settings))


def images(n: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("settings", [{"precision": "bf16"}, {"channels_last": True}, {"precision": "bf16", "channels_last": True}])
def test_speed_options_train(settings):
    gan = trainer("wgan-gp", **settings)
    before = [p.clone() for p in gan.model.parameters()]
    gan.fit(images(), steps=2)
    assert gan.generator_steps == 2
    assert all(torch.isfinite(torch.tensor(values)).all() for values in gan.history.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.model.parameters()))
    if settings.get("channels_last"):
        assert gan.critic.body.layers[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert gan.scale(images(2)).is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_runs_the_forward_in_bf16_on_cpu():
    gan = trainer("wgan-gp", precision="bf16")
    assert gan.use_autocast
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=gan.use_autocast):
        assert gan.step_generator(torch.randn(2, 8)).dtype == torch.bfloat16
    assert not trainer("wgan-gp").use_autocast  # "auto" is fp32 on the CPU


@pytest.mark.slow
def test_compile_with_a_gradient_penalty_keeps_the_critic_step_eager(capsys):
    gan = trainer("wgan-gp", compile=True)
    assert "runs eager" in capsys.readouterr().out
    assert gan.step_critic is gan.critic  # the critic step is not compiled
    assert hasattr(gan.step_generator, "_orig_mod") and hasattr(gan.generator_step_critic, "_orig_mod")  # the rest is
    gan.fit(images(), steps=2)  # n_critic 5: ten critic steps with the penalty, two generator steps
    assert all(torch.isfinite(torch.tensor(values)).all() for values in gan.history.values())


@pytest.mark.slow
def test_a_double_backward_met_under_compile_falls_back_to_eager(capsys):
    gan = trainer("wgan-gp", compile=True)
    gan.step_critic = torch.compile(gan.critic)  # as if the objective's penalty had not been foreseen
    gan.fit(images(), steps=1)
    assert "runs eager" in capsys.readouterr().out and gan.step_critic is gan.critic


def test_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision must be auto, bf16 or fp32"):
        TrainSettings(precision="fp16").check()
