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


# -- the ex-post mixture prior (genhub.models.vae.fit_mixture_prior) ---------------------------
def test_one_component_mixture_is_the_points_mean_and_variance():
    from genhub.models.vae import fit_diagonal_gmm

    points = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    means, log_vars, log_weights = fit_diagonal_gmm(points, components=1, iterations=3)
    assert torch.allclose(means, torch.tensor([[2.0, 2.0]]))
    assert torch.allclose(log_vars.exp(), torch.tensor([[8 / 3, 2.0]]))  # the biased variance: sum of squares / N
    assert log_weights.tolist() == pytest.approx([0.0])


def test_mixture_finds_two_separated_clusters_and_their_weights():
    from genhub.models.vae import fit_diagonal_gmm

    generator = torch.Generator().manual_seed(0)
    left = torch.randn(300, 3, generator=generator) * 0.5 - 5
    right = torch.randn(900, 3, generator=generator) * 2.0 + 5
    means, log_vars, log_weights = fit_diagonal_gmm(torch.cat([left, right]), components=2, iterations=50)
    order = means[:, 0].argsort()
    assert torch.allclose(means[order], torch.tensor([[-5.0] * 3, [5.0] * 3]), atol=0.3)
    assert torch.allclose(log_vars[order].exp().sqrt(), torch.tensor([[0.5] * 3, [2.0] * 3]), atol=0.2)
    assert log_weights[order].exp().tolist() == pytest.approx([0.25, 0.75], abs=1e-3)


@pytest.mark.parametrize(("points", "components", "message"), [
    (torch.zeros(5, 2), 0, "components must be between 1"),
    (torch.zeros(5, 2), 6, "components must be between 1"),
    (torch.zeros(5), 1, r"needs an \(N, D\) tensor"),
])  # fmt: skip
def test_mixture_fit_rejects_bad_inputs(points, components, message):
    from genhub.models.vae import fit_diagonal_gmm

    with pytest.raises(ValueError, match=message):
        fit_diagonal_gmm(points, components)


@pytest.mark.parametrize(
    "options", [{}, {"prior": "vamp", "num_pseudo_inputs": 4}, {"hierarchy_dim": 3}, {"flow_steps": 1, "aux_hidden": 8}]
)
def test_fitted_prior_keeps_the_networks_and_samples_where_the_codes_are(options, tmp_path):
    from genhub.models.vae import fit_mixture_prior

    torch.manual_seed(0)
    vae = GenVAE(image_shape=(1, 8, 8), latent_dim=6, hidden_dims=(16,), **options).eval()
    images = (torch.rand(40, 1, 8, 8) > 0.5).to(torch.uint8) * 255
    fitted = fit_mixture_prior(vae, images, components=3, iterations=10)
    top = 3 if options.get("hierarchy_dim") else 6
    assert (fitted.prior, fitted.prior_means.shape, vae.prior) == ("mog", (3, top), options.get("prior", "standard"))
    z = torch.randn(5, 6)
    with torch.no_grad():
        assert torch.equal(fitted.decode_logits(z), vae.decode_logits(z))  # encoder and decoder untouched
        assert torch.equal(fitted.posterior_mean(images[:4].float() / 255), vae.posterior_mean(images[:4].float() / 255))
        # the mixture sits where the training codes are: their mean, not N(0, I)'s zero
        codes = vae.posterior_mean(images.float() / 255)[:, vae.bottom_dim :]
        mixture_mean = (fitted.prior_logits.softmax(0)[:, None] * fitted.prior_means).sum(0)
        assert torch.allclose(mixture_mean, codes.mean(0), atol=0.3)
        assert torch.isfinite(fitted.elbo(images.float() / 255)).all()
    fitted.save_pretrained(tmp_path / "fitted")
    loaded = GenVAE.from_pretrained(tmp_path / "fitted")
    assert torch.equal(loaded.sample(4, seed=1), fitted.sample(4, seed=1))
    with pytest.raises(ValueError, match="draws must be >= 1"):
        fit_mixture_prior(vae, images, components=3, draws=0)
