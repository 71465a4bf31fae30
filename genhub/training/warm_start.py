"""Warm start: a GAN generator initialized from a pre-trained conv VAE's decoder.

A conv GenVAE decodes z to sigmoid(f(z)), f = nets.ConvDecoder(batch_norm=False); a "conv"
GenGAN built with `batch_norm=False` and the same width is tanh(f(z)) with the same layers.
Since sigmoid(x) = (1 + tanh(x / 2)) / 2, copying f and halving its last layer's weight and
bias makes the generator's `decode(z)` equal the VAE's mean image `decode(z)` before the
first GAN step. The GAN draws z ~ N(0, I), so the VAE must have the standard prior.
"""

from __future__ import annotations

import torch

from genhub.models.gan import GenGAN, gan_class
from genhub.models.nets import ConvDecoder
from genhub.models.vae import GenVAE


def _conv_decoder(model, role: str) -> ConvDecoder:
    decoder = model.decoder if role == "VAE" else model.generator[0]
    if not isinstance(decoder, ConvDecoder):
        kind = f"architecture {model._hub_mixin_config.get('architecture')!r}"
        raise ValueError(f"warm start needs a conv decoder, but the {role} has {kind}; use a conv VAE and a 'conv' GAN")
    return decoder


def decoder_width(vae: GenVAE) -> int:
    """Channels of the decoder's last feature map (the VAE's `width`)."""
    return _conv_decoder(vae, "VAE").blocks[-1].in_channels


def load_vae_decoder(generator: GenGAN, vae: GenVAE) -> GenGAN:
    """Copy the VAE decoder's weights into `generator` (in place) so that both decode every z
    to the same image; raises ValueError naming the first mismatch when they do not fit."""
    if vae.prior != "standard":
        raise ValueError(f"warm start needs a VAE with the standard N(0, I) prior (the GAN samples z ~ N(0, I)), got prior {vae.prior!r}")
    if (generator.latent_dim, tuple(generator.image_shape)) != (vae.latent_dim, tuple(vae.image_shape)):
        raise ValueError(
            f"the generator (latent_dim {generator.latent_dim}, images {tuple(generator.image_shape)}) and the VAE "
            f"(latent_dim {vae.latent_dim}, images {tuple(vae.image_shape)}) must share latent size and image shape"
        )
    source = _conv_decoder(vae, "VAE").state_dict()
    target = _conv_decoder(generator, "generator")
    target_state = target.state_dict()
    hint = f"build the GAN with architecture='conv', width={decoder_width(vae)}, batch_norm=False (or use gan_from_vae)"
    if source.keys() != target_state.keys():
        only_gan = sorted(set(target_state) - set(source))[:3]
        only_vae = sorted(set(source) - set(target_state))[:3]
        raise ValueError(
            f"the generator's layers differ from the VAE decoder's (only in the generator: {only_gan}, only in the VAE: {only_vae}); {hint}"
        )
    for name, tensor in source.items():
        if tensor.shape != target_state[name].shape:
            raise ValueError(
                f"layer {name}: the generator has shape {tuple(target_state[name].shape)}, the VAE decoder {tuple(tensor.shape)}; {hint}"
            )
    with torch.no_grad():
        target.load_state_dict(source)
        last = target.blocks[-1]
        last.weight.mul_(0.5)  # tanh(x / 2) heads: (1 + tanh(x / 2)) / 2 = sigmoid(x)
        last.bias.mul_(0.5)
    return generator


def gan_from_vae(vae: GenVAE, objective: str = "dcgan") -> GenGAN:
    """A new generator of the VAE decoder's architecture, initialized from it, saved as the
    Hub class of `objective` (GenDCGAN for "dcgan", ...)."""
    generator = gan_class(objective)(
        image_shape=tuple(vae.image_shape),
        latent_dim=vae.latent_dim,
        architecture="conv",
        width=decoder_width(vae),
        batch_norm=False,
        objective=objective,
    )
    return load_vae_decoder(generator.to(vae.device), vae)


def early_layers(generator: GenGAN, count: int) -> list[torch.nn.Module]:
    """The generator's first `count` layers, coarse to fine: the projection of z to the smallest
    feature map, then the transposed convs. They set the layout (pose, face shape, colours) that
    the VAE decoder already learned; the later ones draw the fine detail the VAE blurred."""
    decoder = _conv_decoder(generator, "generator")
    layers = [decoder.project, *(layer for layer in decoder.blocks if isinstance(layer, torch.nn.ConvTranspose2d))]
    if not 0 <= count <= len(layers):
        raise ValueError(f"the generator has {len(layers)} layers (projection + transposed convs); got early layer count {count}")
    return layers[:count]


def slow_early_layers(optimizer: torch.optim.Optimizer, generator: GenGAN, count: int, lr_scale: float) -> torch.optim.Optimizer:
    """Split the generator optimizer's parameters in two groups (in place): the first `count`
    layers train at `lr_scale` times the learning rate (0 freezes them), the rest unchanged.
    Call it on a fresh optimizer, before the first step."""
    if lr_scale < 0:
        raise ValueError(f"the early layers' learning-rate scale must be >= 0, got {lr_scale}")
    if len(optimizer.param_groups) != 1 or optimizer.state:
        raise ValueError("slow_early_layers needs a fresh optimizer with one parameter group")
    if count == 0 or lr_scale == 1:
        return optimizer
    early = {id(p) for layer in early_layers(generator, count) for p in layer.parameters()}
    group = optimizer.param_groups.pop()
    params = group.pop("params")
    optimizer.add_param_group({**group, "params": [p for p in params if id(p) in early], "lr": group["lr"] * lr_scale})
    optimizer.add_param_group({**group, "params": [p for p in params if id(p) not in early]})
    return optimizer
