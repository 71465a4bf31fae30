"""Inverse autoregressive flow (IAF, Kingma et al. 2016) for a richer VAE posterior.

A diagonal Gaussian q(z0|x) is transformed by T steps of

    [m, s] = MADE(z_{t-1}, h)          autoregressive: m_i, s_i depend on z_{<i} (and h) only
    sigma  = sigmoid(s)
    z_t    = sigma * z_{t-1} + (1 - sigma) * m

with h a context vector the encoder also outputs. Each step's Jacobian is triangular with
diagonal sigma, so

    log q(z_T|x) = log q(z0|x) - sum_t sum_i log sigma_t,i

and one parallel pass computes it. The order of z is reversed between steps so that every
coordinate depends on every other after two steps. The gate bias starts at +2, so at
initialisation each step is close to the identity (sigma ~ 0.88 with m ~ 0 shrinks z slightly).
"""

from __future__ import annotations

import torch
from torch import nn


def _degrees(dim: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = torch.arange(1, dim + 1)
    hiddens = (torch.arange(hidden) % max(dim - 1, 1)) + 1
    return inputs, hiddens


class MaskedLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class IAFStep(nn.Module):
    """One autoregressive step: a one-hidden-layer MADE over z, conditioned on the context h."""

    def __init__(self, dim: int, context: int, hidden: int):
        super().__init__()
        inputs, hiddens = _degrees(dim, hidden)
        self.first = MaskedLinear(dim, hidden, hiddens[:, None] >= inputs[None, :])
        self.context = nn.Linear(context, hidden) if context else None
        output_mask = inputs[:, None] > hiddens[None, :]  # output i sees hidden units of degree < i
        self.shift = MaskedLinear(hidden, dim, output_mask)
        self.gate = MaskedLinear(hidden, dim, output_mask)
        nn.init.zeros_(self.shift.weight)
        nn.init.zeros_(self.shift.bias)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 2.0)

    def forward(self, z: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.first(z)
        if self.context is not None and h is not None:
            hidden = hidden + self.context(h)
        hidden = nn.functional.elu(hidden)
        sigma = torch.sigmoid(self.gate(hidden))
        z = sigma * z + (1 - sigma) * self.shift(hidden)
        return z, torch.log(sigma).sum(-1)


class IAF(nn.Module):
    """T IAF steps, the order of z reversed between them. forward(z0, h) -> (z_T, log|det dz_T/dz0|)."""

    def __init__(self, dim: int, steps: int, context: int, hidden: int):
        super().__init__()
        self.steps = nn.ModuleList(IAFStep(dim, context, hidden) for _ in range(steps))

    def forward(self, z: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
        for index, step in enumerate(self.steps):
            if index:
                z = z.flip(-1)
            z, step_log_det = step(z, h)
            log_det = log_det + step_log_det
        if len(self.steps) > 1:
            z = z.flip(-1) if (len(self.steps) - 1) % 2 else z  # back to the original order
        return z, log_det
