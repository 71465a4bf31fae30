"""GANs as Hub models: the generator is the artifact, the critic stays in training checkpoints.

    GenGAN      any objective (LSGAN, hinge, ...)
    GenDCGAN    non-saturating GAN (Radford et al. 2016)
    GenWGAN     Wasserstein GAN, weight clipping or gradient penalty (Arjovsky et al. 2017,
                Gulrajani et al. 2017)

All three share one generator design, chosen by `architecture` (the same names and `width` as
GenVAE's; configs saved before the names were unified, with "dcgan", still load as "conv"):
  "conv"   linear -> small feature map -> stride-2 transposed convs with batch norm (nets.ConvDecoder);
           `batch_norm=False` drops the norms, which makes it the conv VAE's decoder layer for
           layer, so a VAE decoder can seed the generator (genhub.training.warm_start);
           `upsample="nearest"` doubles the side with nearest-neighbour upsampling and a 3x3 conv
           instead, which cannot draw the transposed conv's checkerboard
  "mlp"    the fully connected generator of the classic WGAN demos (ReLU hidden layers)
and end in tanh, so the generator speaks [-1, 1] (the range training data is scaled to);
`decode` maps that to [0, 1] like every genhub model. The class names the objective the
weights were trained with; `objective` in the config records it exactly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genhub.models.hub import GenModel
from genhub.models.nets import NORMS, UPSAMPLES, ConvDecoder, ConvEncoder, apply_spectral_norm, check_image_shape, mlp

ARCHITECTURES = ("conv", "mlp")
LEGACY_ARCHITECTURES = {"dcgan": "conv"}  # the old name of "conv", in configs and checkpoints saved before


def _leaky_relu() -> nn.Module:
    """The critics' activation. In place: it always follows a conv, linear or norm layer, none
    of which needs its output for its backward, and it saves an allocation per layer (3-10% of a
    bf16 channels-last step in an A/B timing on the project's CPU)."""
    return nn.LeakyReLU(0.2, inplace=True)


def canonical_architecture(architecture: str) -> str:
    """ "conv" or "mlp"; the legacy "dcgan" is "conv"."""
    return LEGACY_ARCHITECTURES.get(architecture, architecture)


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


def build_generator(
    latent_dim: int,
    image_shape,
    architecture: str = "conv",
    width: int = 64,
    hidden_dims=(512, 512, 512),
    batch_norm: bool = True,
    upsample: str = "transpose",
    extra_convs: int = 0,
) -> nn.Sequential:
    """z (N, latent_dim) -> images (N, C, H, W) in [-1, 1]. `batch_norm`, `upsample` and `extra_convs`
    (3x3 convs added at each resolution) apply to "conv" only."""
    image_shape = check_image_shape(image_shape)
    architecture = canonical_architecture(architecture)
    hidden = _check_architecture(architecture, width, hidden_dims)
    if upsample not in UPSAMPLES:
        raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
    if architecture == "conv":
        decoder = ConvDecoder(latent_dim, image_shape, width=width, batch_norm=batch_norm, upsample=upsample, extra_convs=extra_convs)
        network = nn.Sequential(decoder, nn.Tanh())
        dcgan_init(network)
        return network
    _no_extra_convs(extra_convs)
    body = mlp([latent_dim, *hidden, math.prod(image_shape)], activation=nn.ReLU)
    return nn.Sequential(body, nn.Unflatten(1, image_shape), nn.Tanh())


def _critic_shape(image_shape, architecture: str, width: int, hidden_dims, norm: str):
    """A critic's checked image shape, canonical architecture name and hidden sizes (both critic kinds)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    architecture = canonical_architecture(architecture)
    return check_image_shape(image_shape), architecture, _check_architecture(architecture, width, hidden_dims)


def _no_extra_convs(extra_convs) -> None:
    if extra_convs:
        raise ValueError(f"extra_convs applies to the 'conv' architecture only, got {extra_convs!r} with 'mlp'")


class Critic(nn.Module):
    """Images in [-1, 1] -> one raw score per image, shape (N,), or `out_features` features per
    image, shape (N, out_features), for the feature objectives (McGAN, MMD-GAN, Cramér GAN).

    "conv": stride-2 convs (nets.ConvEncoder) with `norm` "batch" (DCGAN), or "layer"/"none"
    for gradient-penalty training, where batch norm would couple the per-sample gradients.
    "mlp": LeakyReLU hidden layers, not normalized.
    `norm="spectral"` (either architecture): every weight divided by its spectral norm
    (Miyato et al. 2018, nets.apply_spectral_norm), a 1-Lipschitz critic by construction.
    `extra_convs` ("conv" only): 3x3 stride-1 convs after every downsampling (SNGAN's deeper critic).
    """

    def __init__(
        self,
        image_shape,
        architecture: str = "conv",
        width: int = 64,
        hidden_dims=(512, 512, 512),
        norm: str = "batch",
        out_features: int = 1,
        extra_convs: int = 0,
    ):
        super().__init__()
        self.image_shape, architecture, hidden = _critic_shape(image_shape, architecture, width, hidden_dims, norm)
        if isinstance(out_features, bool) or int(out_features) < 1:
            raise ValueError(f"out_features must be a positive integer, got {out_features}")
        self.out_features = int(out_features)
        self.config = {
            "image_shape": list(self.image_shape),
            "architecture": architecture,
            "width": int(width),
            "hidden_dims": list(hidden),
            "norm": norm,
            "out_features": self.out_features,
            **({"extra_convs": extra_convs} if extra_convs else {}),  # absent at 0, as in checkpoints from before the field
        }
        if architecture == "conv":
            self.body = ConvEncoder(
                self.image_shape, self.out_features, width=width, norm=norm, activation=_leaky_relu, extra_convs=extra_convs
            )
            dcgan_init(self.body)
        else:
            _no_extra_convs(extra_convs)
            self.body = nn.Sequential(nn.Flatten(), mlp([math.prod(self.image_shape), *hidden, self.out_features], activation=_leaky_relu))
        if norm == "spectral":
            apply_spectral_norm(self.body)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs = self.body(images)
        return outputs.squeeze(1) if self.out_features == 1 else outputs


class AutoencoderCritic(nn.Module):
    """Images in [-1, 1] -> their reconstructions, same shape: the energy-based critics of EBGAN,
    BEGAN and MAGAN, whose energy is the reconstruction error.

    "conv": nets.ConvEncoder down to a `code_dim` code, nets.ConvDecoder back up (batch norm in
    the decoder only with norm "batch"). "mlp": LeakyReLU layers `hidden_dims` down to the code
    and the same sizes back up. The output is linear: a reconstruction, not a probability.
    """

    def __init__(
        self,
        image_shape,
        architecture: str = "conv",
        width: int = 64,
        hidden_dims=(512, 512, 512),
        norm: str = "none",
        code_dim: int = 64,
        extra_convs: int = 0,
    ):
        super().__init__()
        self.image_shape, architecture, hidden = _critic_shape(image_shape, architecture, width, hidden_dims, norm)
        if isinstance(code_dim, bool) or int(code_dim) < 1:
            raise ValueError(f"code_dim must be a positive integer, got {code_dim}")
        code_dim = int(code_dim)
        self.config = {
            "class": "AutoencoderCritic",
            "image_shape": list(self.image_shape),
            "architecture": architecture,
            "width": int(width),
            "hidden_dims": list(hidden),
            "norm": norm,
            "code_dim": code_dim,
            **({"extra_convs": extra_convs} if extra_convs else {}),
        }
        if architecture == "conv":
            self.encoder = ConvEncoder(self.image_shape, code_dim, width=width, norm=norm, activation=_leaky_relu, extra_convs=extra_convs)
            self.decoder = ConvDecoder(code_dim, self.image_shape, width=width, batch_norm=norm == "batch", extra_convs=extra_convs)
            dcgan_init(self)
        else:
            _no_extra_convs(extra_convs)
            size = math.prod(self.image_shape)
            self.encoder = nn.Sequential(nn.Flatten(), mlp([size, *hidden, code_dim], activation=_leaky_relu))
            self.decoder = nn.Sequential(
                mlp([code_dim, *reversed(hidden), size], activation=_leaky_relu), nn.Unflatten(1, self.image_shape)
            )
        if norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))


def build_critic(
    objective,
    image_shape,
    architecture: str = "conv",
    width: int = 64,
    hidden_dims=(512, 512, 512),
    norm: str | None = None,
    extra_convs: int = 0,
) -> nn.Module:
    """The critic an objective (a name or a genhub.objectives.Objective) declares in `critic_kind`:
    a one-score Critic, a Critic with `feature_dim` outputs, or an AutoencoderCritic.
    `norm` None takes the objective's own `critic_norm`; `extra_convs`: see Critic."""
    from genhub.objectives import get_objective

    objective = get_objective(objective) if isinstance(objective, str) else objective
    norm = objective.critic_norm if norm is None else norm
    if objective.critic_kind == "autoencoder":
        return AutoencoderCritic(image_shape, architecture, width, hidden_dims, norm, extra_convs=extra_convs)
    out_features = objective.feature_dim if objective.critic_kind == "features" else 1
    return Critic(image_shape, architecture, width, hidden_dims, norm, out_features=out_features, extra_convs=extra_convs)


def critic_from_config(config: dict) -> nn.Module:
    """Rebuild a critic from its `config` (as training checkpoints store it)."""
    config = dict(config)
    kind = config.pop("class", "Critic")  # checkpoints from before AutoencoderCritic name no class
    classes = {"Critic": Critic, "AutoencoderCritic": AutoencoderCritic}
    if kind not in classes:
        raise ValueError(f"unknown critic class {kind!r}; known: {', '.join(classes)}")
    return classes[kind](**config)


class GenGAN(GenModel):
    """A GAN generator on the Hub. `forward(z)` gives images in [-1, 1], `decode(z)` in [0, 1]."""

    card_family = "gan"
    default_objective = "hinge"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        latent_dim: int = 100,
        architecture: str = "conv",
        width: int = 64,
        hidden_dims: tuple[int, ...] = (512, 512, 512),
        objective: str | None = None,
        batch_norm: bool = True,
        upsample: str = "transpose",
        extra_convs: int = 0,
    ):
        super().__init__()
        if isinstance(latent_dim, bool) or int(latent_dim) < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim}")
        self.image_shape = check_image_shape(image_shape)
        self.latent_dim = int(latent_dim)
        self.architecture = canonical_architecture(architecture)
        if self._hub_mixin_config:  # save the canonical name, also for a config read with the legacy one
            self._hub_mixin_config["architecture"] = self.architecture
        self.objective = objective or self.default_objective
        self.width = int(width)
        self.batch_norm = bool(batch_norm)
        self.upsample = upsample
        self.extra_convs = extra_convs
        self.generator = build_generator(
            self.latent_dim,
            self.image_shape,
            self.architecture,
            width,
            hidden_dims,
            batch_norm=self.batch_norm,
            upsample=upsample,
            extra_convs=extra_convs,
        )

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
    from genhub.objectives import get_objective

    return {"GenDCGAN": GenDCGAN, "GenWGAN": GenWGAN}.get(get_objective(objective_name).hub_class, GenGAN)
