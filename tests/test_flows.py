"""The IAF posterior: its log-determinant against autograd's Jacobian, its autoregressive
structure, the ELBO and IWAE bound it enters, and a Hub round trip."""

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
    vae = GenVAE(latent_dim=4, hidden_dims=(32,), flow_steps=2, flow_hidden=32)
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
