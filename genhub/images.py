"""Conversions between image tensors and PIL images.

Every genhub model produces images as float tensors in [0, 1], shape (N, C, H, W).
These helpers turn such batches into PIL images, grids and animated GIFs.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [0, 1] -> (N, H, W, C) uint8 array."""
    if images.dim() != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(images.shape)}")
    array = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return array.permute(0, 2, 3, 1).numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """A batch of images in [0, 1] as a list of PIL images (mode L or RGB)."""
    array = to_uint8(images)
    if array.shape[-1] == 1:
        return [Image.fromarray(a[..., 0], mode="L") for a in array]
    return [Image.fromarray(a, mode="RGB") for a in array]


def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile a batch (N, C, H, W) into one (C, H', W') image, `nrow` images per row."""
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = images.new_full((c, ncol * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for index, image in enumerate(images):
        row, col = divmod(index, nrow)
        top, left = padding + row * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = image
    return grid


def grid_image(images: torch.Tensor, nrow: int | None = None, padding: int = 2, scale: int = 1) -> Image.Image:
    """A batch of images in [0, 1] as one PIL grid, optionally upscaled (nearest) by `scale`."""
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding)
    image = to_pil(grid.unsqueeze(0))[0]
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    return image


def save_gif(frames: list[Image.Image], path, duration_ms: int = 80) -> None:
    """Write frames as a looping GIF that plays forward then back."""
    sequence = frames + frames[-2:0:-1]
    from genhub.runtime import atomic_write

    atomic_write(
        path,
        lambda temporary: sequence[0].save(
            temporary, format="GIF", save_all=True, append_images=sequence[1:], duration=duration_ms, loop=0
        ),
    )


# -- the two ranges models speak -------------------------------------------------------------
def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [0, 1] (VAEs, metrics), on whatever device they are on."""
    return images.float().div_(255)


def to_signed_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (what GAN generators and critics speak)."""
    return images.float().div_(127.5).sub_(1)
