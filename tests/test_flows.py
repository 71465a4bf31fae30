"""The IAF posterior: its log-determinant against autograd's Jacobian, its autoregressive
structure, the ELBO and IWAE bound it enters, and a Hub round trip."""

import pytest
import torch

from genhub import GenVAE
from genhub.models.flows import IAF


def test_the_log_determinant_is_the_jacobians():
    torch.manual_seed(0)
    flow = IAF(dim=5, steps=3, context=4, hidden=16).double()  # float64: the determinant is small
    for step in flow.steps:  # away from the near-identity start, so the check means something
        for parameter in step.parameters():
            parameter.data.normal_(0, 0.5)
    z, h = torch.randn(1, 5, dtype=torch.float64), torch.randn(1, 4, dtype=torch.float64)
    out, log_det = flow(z, h)
    jacobian = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0), h)[0][0], z[0])
    sign, log_abs = torch.linalg.slogdet(jacobian)
    assert sign > 0 and torch.allclose(log_abs, log_det[0], atol=1e-9)
    single = IAF(dim=5, steps=1, context=0, hidden=16).double()
    for parameter in single.parameters():
        parameter.data.normal_(0, 0.5)
    jacobian = torch.autograd.functional.jacobian(lambda v: single(v.unsqueeze(0))[0][0], z[0])
    assert torch.allclose(jacobian, jacobian.tril(), atol=1e-7)  # one step: z_i depends on z_<=i only


def test_a_flow_vae_trains_on_its_bound_and_round_trips(tmp_path):
    torch.manual_seed(0)
    vae = GenVAE(latent_dim=4, hidden_dims=(32,), flow_steps=2, aux_hidden=32)
    x = (torch.rand(64, 1, 28, 28) > 0.7).float()
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    first = -vae.elbo(x).mean().item()
    for _ in range(60):
        loss = -vae.elbo(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first - 20
    eps = torch.randn(64, 4)
    vae.save_pretrained(tmp_path)
    loaded = GenVAE.from_pretrained(tmp_path)
    assert loaded.flow_steps == 2 and torch.equal(loaded.elbo(x, eps=eps), vae.elbo(x, eps=eps))
    torch.manual_seed(1)
    elbo = vae.elbo(x).mean().item()
    torch.manual_seed(1)
    iwae = vae.iwae_bound(x, k=64).mean().item()
    assert iwae > elbo  # the importance-weighted bound is tighter, also with the flow's density


def test_without_a_flow_nothing_changes():
    vae = GenVAE(latent_dim=4, hidden_dims=(16,))
    x = torch.rand(2, 1, 28, 28).round()
    assert not hasattr(vae, "flow") and torch.equal(vae.posterior_mean(x), vae.encode(x)[0])


@pytest.mark.parametrize("prior", ["standard", "mog", "vamp"])
def test_a_two_level_vae_samples_trains_and_round_trips(prior, tmp_path):
    torch.manual_seed(0)
    vae = GenVAE(latent_dim=6, hidden_dims=(32,), prior=prior, hierarchy_dim=2, aux_hidden=32, num_pseudo_inputs=8, num_components=4)
    x = (torch.rand(32, 1, 28, 28) > 0.7).float()
    assert vae.sample(3, seed=0).shape == (3, 1, 28, 28) and vae.sample_latent(3, seed=0).shape == (3, 6)
    eps = torch.randn(32, 6)
    vae.save_pretrained(tmp_path)
    loaded = GenVAE.from_pretrained(tmp_path)
    assert loaded.bottom_dim == 4 and torch.equal(loaded.elbo(x, eps=eps), vae.elbo(x, eps=eps))
    loss = -vae.elbo(x).mean()
    loss.backward()
    assert all(p.grad is not None for name, p in vae.named_parameters() if "bottom" in name)


def test_the_two_level_bound_converges_to_the_exact_likelihood():
    """With z = (z1, z2) of one dimension each, log p(x) is an integral over a grid; the IWAE
    bound with many samples must approach it from below, which holds only if both the prior
    p(z2) p(z1|z2) and the posterior density q(z2|x) q(z1|x, z2) are right."""
    torch.manual_seed(0)
    vae = GenVAE(image_shape=(1, 28, 28), latent_dim=2, hidden_dims=(8,), hierarchy_dim=1, aux_hidden=8).double()
    x = (torch.rand(1, 1, 28, 28) > 0.5).double()
    grid = torch.linspace(-7, 7, 281, dtype=torch.float64)
    z = torch.cartesian_prod(grid, grid)  # (z1, z2)
    with torch.no_grad():
        log_joint = vae.log_likelihood(x, vae.decode_logits(z)) + vae.log_prior(z)
        exact = (torch.logsumexp(log_joint, 0) + 2 * torch.log(grid[1] - grid[0])).item()
        torch.manual_seed(1)
        bound = vae.iwae_bound(x, k=5000, chunk=1000).item()
        elbo = vae.elbo(x).item()
    assert bound <= exact + 0.05 and exact - bound < 0.2 * max(1.0, exact - elbo)
