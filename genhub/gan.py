"""GANs as Hub models: the generator is the artifact, the critic stays in training checkpoints.

    GenGAN      any objective (LSGAN, hinge, ...)
    GenDCGAN    non-saturating GAN (Radford et al. 2016)
    GenWGAN     Wasserstein GAN, weight clipping or gradient penalty (Arjovsky et al. 2017,
                Gulrajani et al. 2017)

All three share one generator design, chosen by `architecture`:
  "dcgan"  linear -> small feature map -> stride-2 transposed convs with batch norm (nets.ConvDecoder)
  "mlp"    the fully connected generator of the classic WGAN demos (ReLU hidden layers)
and end in tanh, so the generator speaks [-1, 1] (the range training data is scaled to);
`decode` maps that to [0, 1] like every genhub model. The class names the objective the
weights were trained with; `objective` in the config records it exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .hub import GenModel
from .nets import ConvDecoder, ConvEncoder, check_image_shape, mlp

ARCHITECTURES = ("dcgan", "mlp")


def _leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _check_architecture(architecture: str, width: int, hidden_dims) -> tuple[int, ...]:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    if int(width) < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    hidden = tuple(int(h) for h in hidden_dims)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden_dims must be positive layer sizes, got {hidden_dims}")
    return hidden


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialization: conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def build_generator(latent_dim: int, image_shape, architecture: str = "dcgan", width: int = 64, hidden_dims=(512, 512, 512)) -> nn.Sequential:
    """z (N, latent_dim) -> images (N, C, H, W) in [-1, 1]."""
    image_shape = check_image_shape(image_shape)
    hidden = _check_architecture(architecture, width, hidden_dims)
    if architecture == "dcgan":
        network = nn.Sequential(ConvDecoder(latent_dim, image_shape, width=width, batch_norm=True), nn.Tanh())
        dcgan_init(network)
        return network
    body = mlp([latent_dim, *hidden, math.prod(image_shape)], activation=nn.ReLU)
    return nn.Sequential(body, nn.Unflatten(1, image_shape), nn.Tanh())


class Critic(nn.Module):
    """Images in [-1, 1] -> one raw score per image, shape (N,).

    "dcgan": stride-2 convs (nets.ConvEncoder) with `norm` "batch" (DCGAN), or "layer"/"none"
    for gradient-penalty training, where batch norm would couple the per-sample gradients.
    "mlp": LeakyReLU hidden layers, never normalized.
    """

    def __init__(self, image_shape, architecture: str = "dcgan", width: int = 64, hidden_dims=(512, 512, 512), norm: str = "batch"):
        super().__init__()
        self.image_shape = check_image_shape(image_shape)
        hidden = _check_architecture(architecture, width, hidden_dims)
        self.config = {"image_shape": list(self.image_shape), "architecture": architecture, "width": int(width), "hidden_dims": list(hidden), "norm": norm}
        if architecture == "dcgan":
            self.body = ConvEncoder(self.image_shape, 1, width=width, norm=norm, activation=_leaky_relu)
            dcgan_init(self.body)
        else:
            self.body = nn.Sequential(nn.Flatten(), mlp([math.prod(self.image_shape), *hidden, 1], activation=_leaky_relu))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images).squeeze(1)


class GenGAN(GenModel):
    """A GAN generator on the Hub. `forward(z)` gives images in [-1, 1], `decode(z)` in [0, 1]."""

    card_family = "gan"
    default_objective = "hinge"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        latent_dim: int = 100,
        architecture: str = "dcgan",
        width: int = 64,
        hidden_dims: tuple[int, ...] = (512, 512, 512),
        objective: str | None = None,
    ):
        super().__init__()
        if isinstance(latent_dim, bool) or int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
        self.image_shape = check_image_shape(image_shape)
        self.latent_dim = int(latent_dim)
        self.architecture = architecture
        self.objective = objective or self.default_objective
        self.generator = build_generator(self.latent_dim, self.image_shape, architecture, width, hidden_dims)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latent codes must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.generator(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self(z).float() + 1) / 2


class GenDCGAN(GenGAN):
    default_objective = "dcgan"


class GenWGAN(GenGAN):
    default_objective = "wgan-gp"


def gan_class(objective_name: str) -> type[GenGAN]:
    """The Hub class a generator trained with this objective is saved as."""
    from .objectives import get_objective

    return {"GenDCGAN": GenDCGAN, "GenWGAN": GenWGAN}.get(get_objective(objective_name).hub_class, GenGAN)
