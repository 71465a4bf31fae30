"""Differentiable augmentation for small-data GANs (DiffAugment, Zhao et al. 2020).

With a thousand training images a critic memorises them and stops teaching the generator.
DiffAugment shows the critic only augmented images, real and generated alike, T(x) instead of
x, in every critic call (the generator's step included), so the critic cannot memorise the
exact pixels while the generator still learns the un-augmented distribution: T is
differentiable, and gradients reach the generator through it.

    augment = DiffAugment("color,translation,cutout", probability=1.0)
    images = augment(images)          # (N, C, H, W) in [-1, 1], a fresh random draw per call

The three policies, as in the paper:
  color        brightness + U(-0.5, 0.5); saturation x U(0, 2) around the per-pixel channel
               mean; contrast x U(0.5, 1.5) around the per-image mean
  translation  shift by up to 1/8 of the side in each direction, zero padding
  cutout       zero a square of half the side at a random place

`probability` applies each policy to each image with that probability (1 is DiffAugment as
published; lower values are a weaker augmentation, as in ADA's p).
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def _per_image(images: torch.Tensor, probability: float, generator: torch.Generator | None) -> torch.Tensor:
    """A (N, 1, 1, 1) 0/1 mask: which images this policy touches."""
    if probability >= 1:
        return torch.ones(len(images), 1, 1, 1, device=images.device, dtype=images.dtype)
    draw = torch.rand(len(images), 1, 1, 1, generator=generator).to(images.device, images.dtype)
    return (draw < probability).to(images.dtype)


def _uniform(images: torch.Tensor, generator, low: float, high: float) -> torch.Tensor:
    return (torch.rand(len(images), 1, 1, 1, generator=generator) * (high - low) + low).to(images.device, images.dtype)


def color(images: torch.Tensor, probability: float = 1.0, generator=None) -> torch.Tensor:
    use = _per_image(images, probability, generator)
    images = images + use * (_uniform(images, generator, -0.5, 0.5))
    mean = images.mean(dim=1, keepdim=True)
    images = mean + (images - mean) * (1 + use * (_uniform(images, generator, 0.0, 2.0) - 1))
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (images - mean) * (1 + use * (_uniform(images, generator, 0.5, 1.5) - 1))


def translation(images: torch.Tensor, probability: float = 1.0, generator=None, ratio: float = 0.125) -> torch.Tensor:
    n, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    use = _per_image(images, probability, generator).flatten().long()
    dy = (torch.randint(-shift_y, shift_y + 1, (n,), generator=generator) * use.cpu()).to(images.device)
    dx = (torch.randint(-shift_x, shift_x + 1, (n,), generator=generator) * use.cpu()).to(images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) - dy.view(n, 1, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width) - dx.view(n, 1, 1)
    inside = ((rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)).unsqueeze(1).to(images.dtype)
    rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    index = (rows * width + cols).view(n, 1, height * width).expand(-1, images.shape[1], -1)
    shifted = images.flatten(2).gather(2, index).view_as(images)
    return shifted * inside


def cutout(images: torch.Tensor, probability: float = 1.0, generator=None, ratio: float = 0.5) -> torch.Tensor:
    n, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = torch.randint(0, height + (1 - size_y % 2), (n,), generator=generator).to(images.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), (n,), generator=generator).to(images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    top, left = (centre_y - size_y // 2).view(n, 1, 1), (centre_x - size_x // 2).view(n, 1, 1)
    hole = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    use = _per_image(images, probability, generator).view(n, 1, 1).bool()
    keep = (~(hole & use)).unsqueeze(1).to(images.dtype)
    return images * keep


FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """ "color,translation,cutout" -> ("color", "translation", "cutout"); "" or None -> ()."""
    if not policy:
        return ()
    names = tuple(name.strip() for name in str(policy).split(",") if name.strip())
    unknown = [name for name in names if name not in POLICIES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"augmentation policy {policy!r}: use a comma-separated subset of {', '.join(POLICIES)}, each once")
    return names


class DiffAugment:
    """Callable T: images in [-1, 1] -> augmented images, differentiable in the images."""

    def __init__(self, policy: str = "color,translation,cutout", probability: float = 1.0):
        self.policies = parse_policy(policy)
        if not self.policies:
            raise ValueError("DiffAugment needs at least one policy")
        if not 0 < probability <= 1:
            raise ValueError(f"augmentation probability must be in (0, 1], got {probability}")
        self.probability = float(probability)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        for name in self.policies:
            images = FUNCTIONS[name](images, self.probability)
        return images

    def describe(self) -> str:
        return f"DiffAugment {','.join(self.policies)}, probability {self.probability:g}"
