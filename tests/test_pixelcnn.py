"""The PixelCNN decoder: autoregressive by construction, sampling consistent with the likelihood."""

import pytest
import torch

from genhub import GenVAE
from genhub.models.pixelcnn import PixelCNN


def logit_gradient(net: PixelCNN, x: torch.Tensor, cond: torch.Tensor, row: int, column: int) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    net.logits(x, cond)[0, 0, row, column].backward()
    return x.grad[0, 0].abs()


def test_logits_depend_only_on_earlier_pixels_and_have_no_blind_spot():
    torch.manual_seed(0)
    net = PixelCNN(channels=1, width=8, layers=3)
    x = torch.bernoulli(torch.full((1, 1, 12, 12), 0.5))
    cond = torch.randn(1, net.cond_channels, 12, 12)
    row, column = 6, 5
    grad = logit_gradient(net, x, cond, row, column)
    order = torch.arange(144).reshape(12, 12)
    later = order >= row * 12 + column
    assert grad[later].max() == 0  # the pixel itself and every later one: no influence
    # Earlier pixels are seen, including up and to the right (the blind spot of a single masked stack).
    for seen in [(row, column - 1), (row - 1, column), (row - 1, column + 3), (row - 2, column + 4), (row - 3, column - 4)]:
        assert grad[seen] > 0, seen


def test_first_pixel_depends_on_the_code_only():
    torch.manual_seed(1)
    net = PixelCNN(channels=1, width=8, layers=2)
    cond = torch.randn(1, net.cond_channels, 8, 8)
    a, b = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert torch.equal(net.logits(a, cond)[0, 0, 0, 0], net.logits(b, cond)[0, 0, 0, 0])
    assert not torch.equal(net.logits(a, cond)[0, 0, 1, 1], net.logits(b, cond)[0, 0, 1, 1])


@pytest.mark.parametrize("layers, channels", [(1, 1), (4, 1), (3, 2)])
def test_pixel_by_pixel_sampling_matches_the_parallel_likelihood(layers, channels):
    """The probabilities the sampler used at each pixel are the parallel pass's on the drawn image,
    so the windowed, cached sampler computes the same model."""
    torch.manual_seed(2)
    net = PixelCNN(channels=channels, width=8, layers=layers)
    for parameter in net.parameters():  # larger weights than the init, so that the pixels really interact
        parameter.data.mul_(3)
    cond = torch.randn(3, net.cond_channels, 28, 28)
    uniforms = torch.rand(3, channels, 28, 28)
    probabilities = net.sample(cond, uniforms)
    drawn = (uniforms < probabilities).float()
    with torch.no_grad():
        parallel = torch.sigmoid(net.logits(drawn, cond))
    assert torch.allclose(probabilities, parallel, atol=1e-5)
    assert 0.05 < drawn.mean() < 0.95  # not a degenerate all-0 or all-1 draw


def test_vae_with_pixelcnn_trains_round_trips_and_samples(tmp_path):
    torch.manual_seed(3)
    vae = GenVAE(image_shape=(1, 28, 28), latent_dim=4, architecture="conv", width=8, pixelcnn_layers=2)
    x = torch.bernoulli(torch.rand(16, 1, 28, 28) * 0.3)
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    first = -vae.elbo(x).mean().item()
    for _ in range(30):
        loss = -vae.elbo(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first - 20
    vae.save_pretrained(tmp_path)
    loaded = GenVAE.from_pretrained(tmp_path)
    assert loaded.pixelcnn_layers == 2
    eps = torch.randn(16, 4)
    assert torch.equal(loaded.elbo(x, eps=eps), vae.elbo(x, eps=eps))
    with torch.no_grad():
        bound = vae.iwae_bound(x[:4], k=50)
        elbo = torch.stack([vae.elbo(x[:4]) for _ in range(50)]).mean(0)
    assert (bound > elbo).all()  # the importance-weighted bound is tighter than the average ELBO
    z = vae.sample_latent(3, seed=0)
    images = vae.decode(z)
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(vae.decode(z), images)  # one code, one drawing
    assert not torch.equal(images[0], images[1])


def test_pixelcnn_needs_binary_pixels():
    with pytest.raises(ValueError, match="bernoulli"):
        GenVAE(image_shape=(3, 32, 32), likelihood="gaussian", pixelcnn_layers=2)
    with pytest.raises(ValueError, match="pixelcnn_layers"):
        GenVAE(pixelcnn_layers=-1)
    with pytest.raises(ValueError, match="log_px"):
        GenVAE(pixelcnn_layers=1).decode_logits(torch.zeros(1, 32))


def _one_step(settings) -> GenVAE:
    from genhub.training.vae import VAETrainer

    torch.manual_seed(4)
    vae = GenVAE(image_shape=(1, 28, 28), latent_dim=4, architecture="conv", width=8, pixelcnn_layers=1)
    trainer = VAETrainer(vae, settings=settings)
    torch.manual_seed(5)
    trainer.step(torch.bernoulli(torch.rand(8, 1, 28, 28) * 0.3))
    return trainer.model


def test_free_bits_stop_the_kl_gradient_below_the_floor():
    """Below the floor the KL adds a constant: the update is the reconstruction's alone."""
    from genhub.training.vae import VAESettings

    no_kl = _one_step(VAESettings(kl_weight=0.0, progress=False))
    floored = _one_step(VAESettings(free_bits=1e6, progress=False))
    plain = _one_step(VAESettings(progress=False))
    for a, b in zip(no_kl.parameters(), floored.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, c) for a, c in zip(no_kl.encoder.parameters(), plain.encoder.parameters()))
    with pytest.raises(ValueError, match="free_bits"):
        VAESettings(free_bits=-1.0).check()
