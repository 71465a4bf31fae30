"""Walks through a model's latent space: interpolation paths and perturbation grids.

    lerp(a, b, t)   = (1 - t) a + t b
    slerp(a, b, t)  = sin((1 - t) w) / sin(w) a + sin(t w) / sin(w) b,   w = angle(a, b)

Under a N(0, I) prior, codes concentrate on a shell of radius ~sqrt(d); the midpoint of a
straight line between two codes falls inside that shell (norm ~sqrt(d/2)), where the
generator saw few codes in training. Slerp keeps the norm, so its frames stay typical
(White 2016, "Sampling Generative Networks"). A pixel cross-fade is the baseline that
shows what interpolation in latent space buys: it blends, it never morphs.
"""

from __future__ import annotations

import torch

PERTURBATION_OFFSETS = tuple(range(-5, 5))  # eps in -5..4; eps = 0 is the original code


def interpolation_weights(steps: int, device=None) -> torch.Tensor:
    """`steps` weights evenly spaced from 0 to 1, both ends included."""
    if steps < 2:
        raise ValueError(f"an interpolation needs at least 2 steps, got {steps}")
    return torch.linspace(0, 1, steps, device=device)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line from a to b (each (D,)) at weights t (T,) -> (T, D)."""
    t = t[:, None]
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle path from a to b (each (D,)) at weights t (T,) -> (T, D).

    The norm is interpolated linearly along the arc; nearly parallel codes (where the
    sine vanishes) fall back to lerp.
    """
    a_norm, b_norm = a.norm(), b.norm()
    cos_angle = torch.dot(a / a_norm, b / b_norm).clamp(-1, 1)
    angle = torch.arccos(cos_angle)
    if angle.abs() < 1e-4 or a_norm == 0 or b_norm == 0:
        return lerp(a, b, t)
    t = t[:, None]
    direction = (torch.sin((1 - t) * angle) * (a / a_norm) + torch.sin(t * angle) * (b / b_norm)) / torch.sin(angle)
    return direction * ((1 - t) * a_norm + t * b_norm)


def cross_fade(image_a: torch.Tensor, image_b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Pixel-space blend of two images (C, H, W) at weights t (T,) -> (T, C, H, W)."""
    t = t[:, None, None, None]
    return (1 - t) * image_a + t * image_b


def perturbation_codes(z: torch.Tensor, dims: list[int], offsets=PERTURBATION_OFFSETS) -> torch.Tensor:
    """One row per latent dimension i in `dims`, one column per offset eps: z with z_i + eps.

    z: (D,). Returns (len(dims) * len(offsets), D), row-major, ready for a grid with
    `nrow=len(offsets)`.
    """
    latent_dim = z.shape[-1]
    for dim in dims:
        if not 0 <= dim < latent_dim:
            raise ValueError(f"latent dimension {dim} is out of range 0..{latent_dim - 1}")
    offsets = torch.as_tensor(offsets, dtype=z.dtype, device=z.device)
    codes = z.repeat(len(dims), len(offsets), 1)  # (rows, cols, D)
    for row, dim in enumerate(dims):
        codes[row, :, dim] += offsets
    return codes.flatten(0, 1)
