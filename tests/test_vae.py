import math

import pytest
import torch

from genhub import GenVAE, load_images


def constant_vae(likelihood: str) -> GenVAE:
    """A VAE whose encoder and decoder ignore their input: q(z|x) = N(mu, e^lv), logits = b."""
    model = GenVAE(image_shape=(1, 8, 8), latent_dim=2, hidden_dims=(), likelihood=likelihood)
    encoder, decoder = model.encoder[1][0], model.decoder[0][0]
    with torch.no_grad():
        encoder.weight.zero_()
        encoder.bias.copy_(torch.tensor([0.5, -1.0, math.log(0.25), 0.0]))  # mu = (0.5, -1), log var = (log .25, 0)
        decoder.weight.zero_()
        decoder.bias.fill_(0.3)
        if likelihood == "gaussian":
            model.log_scale.fill_(math.log(0.2))
    return model


def test_bernoulli_elbo_matches_a_hand_computation():
    model = constant_vae("bernoulli")
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, :3] = 1.0  # 24 ones, 40 zeros
    p = 1 / (1 + math.exp(-0.3))
    reconstruction = 24 * math.log(p) + 40 * math.log(1 - p)
    kl = 0.5 * ((0.25 + 0.25 - 1 - math.log(0.25)) + (1.0 + 1.0 - 1 - 0.0))
    assert model.elbo(x).item() == pytest.approx(reconstruction - kl, abs=1e-4)
    assert model.elbo(x, kl_weight=0.0).item() == pytest.approx(reconstruction, abs=1e-4)


def test_gaussian_elbo_matches_a_hand_computation():
    model = constant_vae("gaussian")
    x = torch.full((1, 1, 8, 8), 0.7)
    mean, sigma = 1 / (1 + math.exp(-0.3)), 0.2
    reconstruction = 64 * (-0.5 * ((0.7 - mean) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi))
    kl = 0.5 * ((0.25 + 0.25 - 1 - math.log(0.25)) + 1.0)
    assert model.elbo(x).item() == pytest.approx(reconstruction - kl, abs=1e-3)


@pytest.fixture(scope="module")
def trained(data_dir):
    """A small VAE after 300 steps on real binarized MNIST; records its loss curve."""
    torch.manual_seed(0)
    data = load_images(data_dir / "binarized_mnist", limit=6000).images.float() / 255
    model = GenVAE(latent_dim=16, hidden_dims=(256,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(300):
        x = data[torch.randint(len(data), (64,))]
        loss = model(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    validation = load_images(data_dir / "binarized_mnist", split="validation", limit=200).images.float() / 255
    return model.eval(), losses, validation


def test_training_on_real_data_lowers_the_loss(trained):
    _, losses, _ = trained
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:5]) / 5  # 543 nats at start -> well under 250


@torch.no_grad()
def test_iwae_bound_sits_above_the_elbo_and_tightens_with_k(trained):
    model, _, x = trained
    torch.manual_seed(1)
    elbo = model.elbo(x).mean().item()
    bounds = [model.iwae_bound(x, k).mean().item() for k in (1, 10, 100, 1000)]
    assert bounds[0] == pytest.approx(elbo, abs=3.0)  # k=1 is the ELBO (sampled vs analytic KL)
    assert elbo < bounds[1] < bounds[2] < bounds[3]
    assert bounds[3] - elbo > 1.0


@pytest.mark.parametrize("prior", ["mog", "vamp"])
@torch.no_grad()
def test_mixture_prior_bound_and_samples(prior):
    model = GenVAE(latent_dim=4, hidden_dims=(16,), prior=prior, num_pseudo_inputs=10, num_components=5)
    x = (torch.rand(6, 1, 28, 28) > 0.5).float()
    assert model.iwae_bound(x, 50).shape == (6,)
    assert torch.isfinite(model.elbo(x)).all()
    assert torch.equal(model.sample(3, seed=0), model.sample(3, seed=0))
    z = torch.randn(7, 4)
    mean, log_var, log_weights = model._prior_components()
    by_hand = torch.logsumexp(
        torch.stack(
            [log_weights[k] + torch.distributions.Normal(mean[k], (0.5 * log_var[k]).exp()).log_prob(z).sum(-1) for k in range(len(mean))]
        ),
        dim=0,
    )
    assert torch.allclose(model.log_prior(z), by_hand, atol=1e-4)


def test_reconstruct_keeps_the_shape(trained):
    model, _, x = trained
    out = model.reconstruct(x[:4])
    assert out.shape == (4, 1, 28, 28) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"architecture": "rnn"}, "architecture"),
        ({"likelihood": "poisson"}, "likelihood"),
        ({"prior": "flow"}, "prior"),
        ({"image_shape": (2, 28, 28)}, "image_shape"),
        ({"image_shape": (1, 28, 30)}, "image_shape"),
        ({"image_shape": (1, 7, 7)}, "halve"),
        ({"latent_dim": 0}, "latent_dim"),
    ],
)
def test_bad_configs_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GenVAE(**kwargs)
