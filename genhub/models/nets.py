"""Network building blocks shared by the VAEs and the GANs.

The conv decoder doubles as the DCGAN generator and the conv encoder as the DCGAN
discriminator body, so a VAE decoder can seed a GAN generator weight for weight.
Sizes: any square image whose side halves down to at most 7 (28 -> 14 -> 7,
32 -> ... -> 4, 64 -> ... -> 4).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def base_side(side: int) -> int:
    """The spatial size a conv stack starts from (decoder) or ends at (encoder)."""
    while side % 2 == 0 and side > 7:
        side //= 2
    return side


def num_doublings(side: int) -> int:
    return int(math.log2(side // base_side(side)))


def check_image_shape(image_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] != shape[2]:
        raise ValueError(f"image_shape must be (channels 1 or 3, side, side), got {image_shape}")
    if base_side(shape[1]) == shape[1]:
        raise ValueError(f"image side {shape[1]} must halve at least once down to at most 7 (e.g. 28, 32, 64)")
    return shape


MAX_EXTRA_CONVS = 8


def check_extra_convs(extra_convs) -> int:
    if isinstance(extra_convs, bool) or not isinstance(extra_convs, int) or not 0 <= extra_convs <= MAX_EXTRA_CONVS:
        raise ValueError(f"extra_convs must be an integer from 0 to {MAX_EXTRA_CONVS}, got {extra_convs!r}")
    return extra_convs


def same_size_convs(channels: int, count: int, norm, activation) -> list[nn.Module]:
    """`count` times: a 3x3 stride-1 conv keeping side and channels, `norm(channels)`, `activation()`.
    The conv has a bias only where the norm is an identity (a norm's shift would cancel it)."""
    layers: list[nn.Module] = []
    for _ in range(count):
        normalise = norm(channels)
        bias = isinstance(normalise, nn.Identity)
        layers += [nn.Conv2d(channels, channels, 3, 1, 1, bias=bias), normalise, activation()]
    return layers


def mlp(sizes: list[int], activation=nn.SiLU, norm: bool = False) -> nn.Sequential:
    """Linear layers of the given sizes with an activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            if norm:
                layers.append(nn.BatchNorm1d(fan_out))
            layers.append(activation())
    return nn.Sequential(*layers)


UPSAMPLES = ("transpose", "nearest")


def upsampling_conv(fan_in: int, fan_out: int, upsample: str, bias: bool = True) -> nn.Module:
    """Double the side and map fan_in -> fan_out channels.

    "transpose": a stride-2 4x4 transposed conv (DCGAN). Its kernel overlaps unevenly (each output
    pixel sums 1, 2 or 4 kernel taps, by its position modulo 2), the source of checkerboard
    artefacts (Odena et al. 2016). "nearest": nearest-neighbour upsampling, then a 3x3 conv:
    every output pixel sees the same number of taps, so no checkerboard by construction.
    """
    if upsample == "transpose":
        return nn.ConvTranspose2d(fan_in, fan_out, 4, 2, 1, bias=bias)
    if upsample == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(fan_in, fan_out, 3, 1, 1, bias=bias))
    raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")


class _GradInInputFormat(torch.autograd.Function):
    """Identity; the gradient leaves in the memory format (NCHW or channels-last) the input had."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        ctx.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=ctx.memory_format)


def grad_in_input_format(x: torch.Tensor) -> torch.Tensor:
    """`x` itself, whose gradient is made to match x's memory format on the way back.

    Where a channels-last activation meets a flatten (or an NCHW one meets a channels-last conv),
    the incoming gradient comes back in the other layout, and an elementwise backward that gets
    its saved tensor and its gradient in different layouts takes torch's strided fallback: a
    LeakyReLU backward at (128, 64, 7, 7) in fp32 took 1,064 us instead of 84 us on the project's CPU.
    Converting the gradient once (a copy) keeps both in one layout. Double backward (gradient
    penalties) goes through it: the backward is itself differentiable."""
    return _GradInInputFormat.apply(x)


class Flatten(nn.Flatten):
    """nn.Flatten whose gradient comes back in its input's memory format (grad_in_input_format).
    It has no weights, so it replaces nn.Flatten without changing a state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(grad_in_input_format(x))


class ConvDecoder(nn.Module):
    """z -> (C, H, W) pre-activation outputs: a linear map to a small feature map, then
    upsampling convs (`upsample`, see upsampling_conv) that halve the channels and double the side (DCGAN)."""

    def __init__(
        self,
        latent_dim: int,
        image_shape,
        width: int = 64,
        batch_norm: bool = True,
        out_channels: int | None = None,
        upsample: str = "transpose",
        extra_convs: int = 0,
    ):
        """`out_channels` overrides the image's channels (a feature map of that many at full size).
        `extra_convs` 3x3 stride-1 convs (each with its batch norm and ReLU) follow the projection and
        every upsampling but the last: depth at the same widths, as in SNGAN's conv nets."""
        super().__init__()
        channels, side, _ = check_image_shape(image_shape)
        extra_convs = check_extra_convs(extra_convs)
        channels = out_channels or channels
        steps = num_doublings(side)
        start = base_side(side)
        top = width * 2 ** (steps - 1)
        self.start_shape = (top, start, start)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, top * start * start),
            nn.Unflatten(1, self.start_shape),
            nn.BatchNorm2d(top) if batch_norm else nn.Identity(),
            nn.ReLU(),
        )

        def same_size(channels: int) -> list[nn.Module]:
            return same_size_convs(channels, extra_convs, lambda c: nn.BatchNorm2d(c) if batch_norm else nn.Identity(), nn.ReLU)

        blocks: list[nn.Module] = same_size(top)
        for step in range(steps - 1):
            fan_in = top // 2**step
            blocks += [
                upsampling_conv(fan_in, fan_in // 2, upsample, bias=not batch_norm),
                nn.BatchNorm2d(fan_in // 2) if batch_norm else nn.Identity(),
                nn.ReLU(),
                *same_size(fan_in // 2),
            ]
        blocks.append(upsampling_conv(width, channels, upsample))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.blocks(grad_in_input_format(self.project(z)))


NORMS = ("batch", "layer", "none", "spectral")


class ConvEncoder(nn.Module):
    """(C, H, W) -> features: stride-2 convs doubling the channels, then a linear map to
    `out_features`. `norm` is "batch", "layer" (per-sample, safe with gradient penalties), "none",
    or "spectral": no feature norm, and every conv and linear weight W divided by its largest
    singular value sigma(W) (Miyato et al. 2018, one power iteration per training forward), so
    each layer is 1-Lipschitz and the whole critic is too (LeakyReLU is 1-Lipschitz). Spectral
    norm is per-sample like "layer", so it goes with gradient penalties. The caller applies it
    with `apply_spectral_norm` after initialising the weights. `extra_convs` 3x3 stride-1 convs
    (each with its norm and activation) follow every downsampling conv, as in SNGAN's critic."""

    def __init__(self, image_shape, out_features: int, width: int = 64, norm: str = "batch", activation=None, extra_convs: int = 0):
        super().__init__()
        channels, side, _ = check_image_shape(image_shape)
        extra_convs = check_extra_convs(extra_convs)
        steps = num_doublings(side)
        end = base_side(side)
        activation = activation or (lambda: nn.LeakyReLU(0.2))
        bias = norm in ("none", "spectral")

        def same_size(channels: int) -> list[nn.Module]:
            return same_size_convs(channels, extra_convs, lambda c: _norm2d(norm, c), activation)

        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), activation(), *same_size(width)]
        fan_in = width
        for _ in range(steps - 1):
            layers += [nn.Conv2d(fan_in, fan_in * 2, 4, 2, 1, bias=bias), _norm2d(norm, fan_in * 2), activation(), *same_size(fan_in * 2)]
            fan_in *= 2
        layers += [Flatten(), nn.Linear(fan_in * end * end, out_features)]
        self.layers = nn.Sequential(*layers)
        self.feature_channels = fan_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind in ("none", "spectral"):  # spectral norm reparametrises the weights (apply_spectral_norm), not the features
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """W -> W / sigma(W) on every conv and linear layer of `module` (torch's parametrization: the
    state dict keeps W as `parametrizations.weight.original` and the power iteration's u and v)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            spectral_norm(layer)
    return module
