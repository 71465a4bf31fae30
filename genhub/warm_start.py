"""Warm start: a GAN generator initialized from a pre-trained conv VAE's decoder.

A conv GenVAE decodes z to sigmoid(f(z)), f = nets.ConvDecoder(batch_norm=False); a "dcgan"
GenGAN built with `batch_norm=False` and the same width is tanh(f(z)) with the same layers.
Since sigmoid(x) = (1 + tanh(x / 2)) / 2, copying f and halving its last layer's weight and
bias makes the generator's `decode(z)` equal the VAE's mean image `decode(z)` before the
first GAN step. The GAN draws z ~ N(0, I), so the VAE must have the standard prior.
"""

from __future__ import annotations

import torch

from .gan import GenGAN, gan_class
from .nets import ConvDecoder
from .vae import GenVAE


def _conv_decoder(model, role: str) -> ConvDecoder:
    decoder = model.decoder if role == "VAE" else model.generator[0]
    if not isinstance(decoder, ConvDecoder):
        kind = f"architecture {model._hub_mixin_config.get('architecture')!r}"
        raise ValueError(f"warm start needs a conv decoder, but the {role} has {kind}; use a conv VAE and a 'dcgan' GAN")
    return decoder


def decoder_width(vae: GenVAE) -> int:
    """Channels of the decoder's last feature map (the VAE's `conv_width`)."""
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
    hint = f"build the GAN with architecture='dcgan', width={decoder_width(vae)}, batch_norm=False (or use gan_from_vae)"
    if source.keys() != target_state.keys():
        only_gan = sorted(set(target_state) - set(source))[:3]
        only_vae = sorted(set(source) - set(target_state))[:3]
        raise ValueError(f"the generator's layers differ from the VAE decoder's (only in the generator: {only_gan}, only in the VAE: {only_vae}); {hint}")
    for name, tensor in source.items():
        if tensor.shape != target_state[name].shape:
            raise ValueError(f"layer {name}: the generator has shape {tuple(target_state[name].shape)}, the VAE decoder {tuple(tensor.shape)}; {hint}")
    with torch.no_grad():
        target.load_state_dict(source)
        last = target.blocks[-1]
        last.weight.mul_(0.5)  # tanh(x / 2) heads: (1 + tanh(x / 2)) / 2 = sigmoid(x)
        last.bias.mul_(0.5)
    return generator


def gan_from_vae(vae: GenVAE, objective: str = "dcgan") -> GenGAN:
    """A new generator of the VAE decoder's architecture, initialized from it, saved as the
    Hub class of `objective` (GenDCGAN for "dcgan", ...)."""
    generator = gan_class(objective)(image_shape=tuple(vae.image_shape), latent_dim=vae.latent_dim, architecture="dcgan",
                                     width=decoder_width(vae), batch_norm=False, objective=objective)
    return load_vae_decoder(generator.to(vae.device), vae)
