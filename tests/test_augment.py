"""DiffAugment: each policy against a hand computation, differentiability, and the trainer
showing the critic only augmented images, for every objective kind."""

import pytest
import torch

from genhub.models.gan import GenGAN, build_critic
from genhub.training import GANTrainer, TrainSettings
from genhub.training.augment import DiffAugment, color, cutout, parse_policy, translation


def test_translation_shifts_whole_pixels_with_zero_padding():
    images = torch.arange(16.0).view(1, 1, 4, 4) + 1
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(3)
    shifted = translation(images, generator=generator, ratio=0.25)  # shifts of -1, 0 or +1 pixels
    # Every output pixel is either 0 (padding) or the input pixel one step away (or the same one).
    nonzero = shifted[shifted != 0]
    assert set(nonzero.tolist()) <= set(images.flatten().tolist())
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            expected = torch.zeros_like(images)
            rows, cols = slice(max(dy, 0), 4 + min(dy, 0)), slice(max(dx, 0), 4 + min(dx, 0))
            source_rows, source_cols = slice(max(-dy, 0), 4 + min(-dy, 0)), slice(max(-dx, 0), 4 + min(-dx, 0))
            expected[..., rows, cols] = images[..., source_rows, source_cols]
            if torch.equal(shifted, expected):
                return
    pytest.fail(f"not a whole-pixel shift with zero padding:\n{shifted}")


def test_cutout_zeroes_one_square_of_half_the_side():
    images = torch.ones(64, 3, 8, 8)
    holes = cutout(images, generator=torch.Generator().manual_seed(0)) == 0
    assert torch.equal(holes[:, 0], holes[:, 1]) and torch.equal(holes[:, 0], holes[:, 2])  # all channels alike
    areas = holes[:, 0].flatten(1).sum(1)
    assert areas.max() == 16 and areas.min() >= 4  # a 4x4 square, clipped at the borders


def test_color_keeps_the_shape_and_moves_each_image_as_a_whole():
    images = torch.rand(16, 3, 8, 8) * 2 - 1
    out = color(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and not torch.allclose(out, images)
    grey = torch.rand(4, 1, 8, 8)
    brightened = color(grey, generator=torch.Generator().manual_seed(1))
    # One channel: saturation is the identity, so each image is an affine map of itself.
    for before, after in zip(grey, brightened):
        slope = torch.linalg.lstsq(torch.stack([before.flatten(), torch.ones(64)], 1), after.flatten().unsqueeze(1)).solution
        assert torch.allclose(torch.stack([before.flatten(), torch.ones(64)], 1) @ slope, after.flatten().unsqueeze(1), atol=1e-5)


def test_gradients_flow_through_every_policy_to_the_generated_images():
    fake = (torch.rand(8, 3, 16, 16) * 2 - 1).requires_grad_(True)
    DiffAugment("color,translation,cutout")(fake).sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_probability_and_policy_are_checked():
    assert parse_policy("color, cutout") == ("color", "cutout") and parse_policy("") == ()
    for bad in ("colour", "color,color"):
        with pytest.raises(ValueError, match="comma-separated subset"):
            parse_policy(bad)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        DiffAugment("color", probability=0)
    images = torch.rand(200, 1, 8, 8)
    some = cutout(images, probability=0.25, generator=torch.Generator().manual_seed(0))
    touched = (some != images).flatten(1).any(1).float().mean().item()
    assert 0.1 < touched < 0.4


class Recorder(torch.nn.Module):
    """Wraps a critic and keeps what it was shown."""

    def __init__(self, critic):
        super().__init__()
        self.critic, self.image_shape, self.config, self.seen = critic, critic.image_shape, critic.config, []

    def forward(self, images):
        self.seen.append(images.detach().clone())
        return self.critic(images)


@pytest.mark.parametrize("objective", ["wgan-gp", "mmdgan", "ebgan"])
def test_the_critic_sees_only_augmented_images(objective):
    shape = (1, 28, 28)
    model = GenGAN(shape, latent_dim=8, width=4, objective=objective)
    critic = Recorder(build_critic(objective, shape, width=4))
    trainer = GANTrainer(model, critic, objective, settings=TrainSettings(batch_size=8, n_critic=1, augment="cutout", progress=False))
    real = torch.ones(8, *shape)  # no image of ones survives a cutout intact
    logs = trainer.step(real)
    assert logs is not None and all(torch.isfinite(v) for v in logs.values())
    # The real batch (the critic step's first call) and the generated batch of the generator step
    # (the last call) both had a hole cut out; a gradient penalty's interpolates mix the two.
    for shown in (critic.seen[0], critic.seen[-1]):
        assert ((shown == 0).flatten(1).sum(1) >= 16).all()
    assert trainer.generator_steps == 1


def test_augmentation_is_a_setting_of_the_run(tmp_path):
    from genhub.training.runs import gan_settings

    settings = TrainSettings(batch_size=16, grid_size=4, augment="color,translation", augment_p=0.5, progress=False)
    model = GenGAN((1, 28, 28), latent_dim=8, width=4)
    trainer = GANTrainer(model, build_critic("hinge", (1, 28, 28), width=4), "hinge", settings=settings, out=tmp_path)
    trainer.fit((torch.rand(32, 1, 28, 28) * 255).to(torch.uint8), epochs=1)
    resumed = GANTrainer.from_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed.settings.augment == "color,translation" and resumed.settings.augment_p == 0.5
    assert resumed.augment.describe() == "DiffAugment color,translation, probability 0.5"
    with pytest.raises(ValueError, match="subset"):
        TrainSettings(augment="zoom").check()
    assert gan_settings is not None
