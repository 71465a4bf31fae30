"""GAN inversion: the latent code whose image is closest to a given one.

    result = invert(model, image, starts=4, steps=200, max_seconds=2.0)
    result.z, result.image, result.loss

For a generator G and a target x (both in [0, 1]), several random starts z_0 ~ p(z) are
optimised together with Adam on

    L(z) = ||G(z) - x||^2 / pixels  +  lambda * ||phi(G(z)) - phi(x)||^2 / features

where phi is the evaluator CNN's feature layer for 28x28 digit models (lambda = `feature_weight`)
and absent otherwise. The run is bounded in steps and in wall time, so it answers in about
`max_seconds` on a CPU; the start with the lowest loss wins. A VAE can also start from its
encoder's posterior mean (`use_encoder`), the usual amortised guess, refined the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch


@dataclass
class Inversion:
    z: torch.Tensor  # (latent_dim,)
    image: torch.Tensor  # (C, H, W) in [0, 1]
    loss: float
    pixel_error: float  # mean squared error per pixel of the best start
    steps: int
    seconds: float


def invert(
    model,
    target: torch.Tensor,
    *,
    starts: int = 4,
    steps: int = 200,
    lr: float = 0.05,
    max_seconds: float = 2.0,
    classifier=None,
    feature_weight: float = 0.05,
    seed: int = 0,
    use_encoder: bool = True,
    progress=None,
) -> Inversion:
    """Find z with G(z) ~ target, (C, H, W) or (1, C, H, W) in [0, 1]. `progress(fraction)` is
    called as it goes (the Space's progress bar)."""
    if starts < 1 or steps < 1 or not max_seconds > 0:
        raise ValueError("starts and steps must be at least 1 and max_seconds positive")
    target = target.reshape(1, *model.image_shape).float().to(model.device)
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    try:
        z = model.sample_latent(starts, seed=seed).detach().clone()
        if use_encoder and callable(getattr(model, "encode", None)):
            with torch.no_grad():
                z[0] = model.posterior_mean(target)[0]
        z.requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        target_features = classifier.features(target) if classifier is not None else None
        done = 0
        for done in range(1, steps + 1):
            images = model.decode(z).clamp(0, 1)
            per_start = (images - target).pow(2).flatten(1).mean(1)
            if classifier is not None:
                features = classifier.body(images * 2 - 1)
                per_start = per_start + feature_weight * (features - target_features).pow(2).mean(1)
            optimizer.zero_grad(set_to_none=True)
            per_start.sum().backward()
            optimizer.step()
            if progress is not None and done % 10 == 0:
                progress(min(done / steps, (time.perf_counter() - started) / max_seconds))
            if time.perf_counter() - started > max_seconds:
                break
        with torch.no_grad():
            images = model.decode(z).clamp(0, 1)
            pixel = (images - target).pow(2).flatten(1).mean(1)
            total = pixel.clone()
            if classifier is not None:
                total = total + feature_weight * (classifier.body(images * 2 - 1) - target_features).pow(2).mean(1)
            best = int(total.argmin())
    finally:
        model.train(was_training)
    return Inversion(z=z[best].detach(), image=images[best].detach().cpu(), loss=float(total[best]), pixel_error=float(pixel[best]),
                     steps=done, seconds=time.perf_counter() - started)  # fmt: skip
