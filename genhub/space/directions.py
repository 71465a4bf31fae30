"""Directions in a latent space that mean something, found without labels (and one with).

Raw latent dimensions of a GAN rarely mean anything on their own. Two unsupervised ways to find
directions that do, for any genhub generator or VAE decoder whose first layer is linear in z:

  SeFa (Shen & Zhou 2021), closed form. The first layer maps z to A z + b, so moving z by n
  changes it by A n; the unit directions that change it most are the top eigenvectors of A^T A
  (the right singular vectors of A):  n_k = argmax ||A n||^2 subject to ||n|| = 1, orthogonal.

  GANSpace (Haerkoenen et al. 2020). Sample codes z, take the first layer's activations
  y = f(z), and find their principal components V. Each sample's coordinates x = V^T (y - mean)
  are regressed back to z by least squares (z ~ U x); U's columns, normalised, are directions
  in z that move the activations along their main axes of variation.

And for digit models, a supervised one: the gradient of the evaluator CNN's logit for a chosen
digit with respect to z, normalised ("make it more like a 3"), at the sample's own code.

All directions are unit vectors in z, shape (k, latent_dim), strongest first.
"""

from __future__ import annotations

import torch
from torch import nn


def first_linear(model) -> nn.Linear:
    """The first nn.Linear of the model's generator or decoder that reads z."""
    network = getattr(model, "generator", None) or getattr(model, "decoder", None)
    if network is None:
        raise ValueError(f"{type(model).__name__} has no generator or decoder to find directions in")
    for module in network.modules():
        if isinstance(module, nn.Linear) and module.in_features == model.latent_dim:
            return module
    raise ValueError(f"{type(model).__name__}'s first layer is not linear in z; SeFa and GANSpace need one")


@torch.no_grad()
def sefa(model, k: int = 8) -> torch.Tensor:
    """The top-k SeFa directions: eigenvectors of A^T A for the first layer's weight A."""
    weight = first_linear(model).weight.detach().float().cpu()  # (out, latent)
    eigenvalues, eigenvectors = torch.linalg.eigh(weight.T @ weight)  # ascending
    order = eigenvalues.argsort(descending=True)[: min(k, model.latent_dim)]
    directions = eigenvectors[:, order].T
    return _signed(directions)


@torch.no_grad()
def ganspace(model, k: int = 8, samples: int = 2000, seed: int = 0) -> torch.Tensor:
    """The top-k GANSpace directions from `samples` codes' first-layer activations."""
    layer = first_linear(model)
    z = model.sample_latent(samples, seed=seed).float().cpu()
    activations = torch.relu(z @ layer.weight.detach().float().cpu().T + layer.bias.detach().float().cpu())
    centred = activations - activations.mean(0)
    components = torch.linalg.svd(centred, full_matrices=False).Vh[: min(k, model.latent_dim)]  # (k, features)
    coordinates = centred @ components.T  # (samples, k)
    latent_directions = torch.linalg.lstsq(coordinates, z - z.mean(0)).solution  # (k, latent): z ~ x U
    return _signed(latent_directions / latent_directions.norm(dim=1, keepdim=True).clamp_min(1e-12))


def classifier_direction(model, classifier, z: torch.Tensor, digit: int) -> torch.Tensor:
    """The unit direction in z that raises the evaluator's log-probability of `digit` fastest
    at `z`: grad_z log p(digit | G(z)), normalised (D,)."""
    if not 0 <= digit < classifier.num_classes:
        raise ValueError(f"digit must be 0..{classifier.num_classes - 1}, got {digit}")
    code = z.detach().reshape(1, -1).to(model.device).requires_grad_(True)
    was_training, classifier_training = model.training, classifier.training
    model.eval()
    classifier.eval()
    try:
        log_probability = classifier(model.decode(code).clamp(0, 1)).log_softmax(-1)[0, digit]
        (gradient,) = torch.autograd.grad(log_probability, code)
    finally:
        model.train(was_training)
        classifier.train(classifier_training)
    return (gradient[0] / gradient.norm().clamp_min(1e-12)).detach()


def classifier_path(model, classifier, z: torch.Tensor, digit: int, length: float = 5.0, step: float = 0.25) -> torch.Tensor:
    """Codes along the classifier-guided path through `z`: from z, steps of `step` along
    classifier_direction, re-taken at each point (towards `digit`, for positive amounts) and
    against it (away, for negative ones), out to `length` either way. A straight line along the
    first gradient soon leaves the digit behind; the path follows it as it turns. Returns
    (2 n + 1, D) codes for amounts -length, ..., 0, ..., length (n = length / step)."""
    count = round(length / step)
    z = z.detach().reshape(-1)
    sides = []
    for sign in (1.0, -1.0):
        current, side = z, []
        for _ in range(count):
            current = current + sign * step * classifier_direction(model, classifier, current, digit).to(current.device)
            side.append(current)
        sides.append(side)
    return torch.stack([*reversed(sides[1]), z, *sides[0]])


def _signed(directions: torch.Tensor) -> torch.Tensor:
    """Eigenvectors have no sign; fix it (largest component positive) so results are stable."""
    signs = torch.sign(directions.gather(1, directions.abs().argmax(1, keepdim=True)))
    return directions * signs


def move(z: torch.Tensor, direction: torch.Tensor, amounts) -> torch.Tensor:
    """Codes z + a * direction for each amount a: (len(amounts), D)."""
    amounts = torch.as_tensor(list(amounts), dtype=z.dtype, device=z.device).reshape(-1, 1)
    return z.reshape(1, -1) + amounts * direction.to(z.device).reshape(1, -1)
