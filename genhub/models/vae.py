"""GenVAE: a variational auto-encoder (Kingma & Welling 2014) as a Hub model.

    q(z|x) = N(mu(x), diag sigma^2(x))       encoder, reparameterized; `flow_steps` > 0 adds
                                              inverse autoregressive flow steps (genhub.models.flows)

Two levels with `hierarchy_dim` > 0 (the HVAE of the VampPrior paper, Tomczak & Welling 2018):
z = [z1, z2], z2 the top `hierarchy_dim` dimensions under the prior, and

    p(z) = p(z2) N(z1; mu_p(z2), sigma_p^2(z2))          q(z|x) = q(z2|x) q(z1|x, z2)

with q(z1|x, z2) the encoder's bottom-up guess shifted top-down by a network of z2. The decoder
reads the whole z. `aux_hidden` is the width of these networks and of the flow's.

`pixelcnn_layers` > 0 makes p(x|z) autoregressive (binary images): a gated PixelCNN of that
many layers (`width` channels) over the pixels above and to the left, combined with the
decoder's per-pixel output for z (genhub.models.pixelcnn). The likelihood stays one parallel
pass; `decode` then draws the pixels one by one.
    p(z)   = N(0, I), a learned mixture of Gaussians, or a VampPrior (Tomczak & Welling 2018)
    p(x|z) = Bernoulli(sigmoid(f(z)))         binary images (binarized MNIST)
           | N(sigmoid(f(z)), sigma_c^2)      grey/RGB images, a learned scale per channel

`architecture` "conv" (nets.ConvEncoder / nets.ConvDecoder, `width` channels at full
resolution: the GANs' conv nets) or "mlp" (`hidden_dims`). Configs saved before the names were
unified call `width` "conv_width"; they still load.

Log-likelihoods are in nats per example, summed over pixels.
"""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F
from torch import nn

from genhub.models.flows import IAF
from genhub.models.hub import GenModel, check_count, standard_normal
from genhub.models.nets import ConvDecoder, ConvEncoder, check_image_shape, mlp
from genhub.models.pixelcnn import PixelCNN

LOG_2PI = math.log(2 * math.pi)
PRIORS = ("standard", "mog", "vamp")
FIT_PRIOR_DRAWS = 4  # codes z ~ q(z|x) per training image that fit_mixture_prior fits its mixture to


class GenVAE(GenModel):
    card_family = "vae"
    legacy_config_keys = {"conv_width": "width"}  # old config.json key -> constructor argument

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        latent_dim: int = 32,
        architecture: str = "mlp",
        hidden_dims: tuple[int, ...] = (512, 256),
        width: int = 32,
        likelihood: str = "bernoulli",
        prior: str = "standard",
        num_pseudo_inputs: int = 500,
        num_components: int = 100,
        flow_steps: int = 0,
        aux_hidden: int = 256,
        hierarchy_dim: int = 0,
        pixelcnn_layers: int = 0,
    ):
        super().__init__()
        if architecture not in ("mlp", "conv"):
            raise ValueError(f"architecture must be 'mlp' or 'conv', got {architecture!r}")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        self.image_shape = check_image_shape(image_shape)
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.prior = prior
        pixels = math.prod(self.image_shape)
        if isinstance(flow_steps, bool) or int(flow_steps) < 0 or int(aux_hidden) < 1:
            raise ValueError(f"flow_steps must be >= 0 and aux_hidden >= 1, got {flow_steps} and {aux_hidden}")
        self.flow_steps = int(flow_steps)
        if isinstance(hierarchy_dim, bool) or not 0 <= int(hierarchy_dim) < latent_dim:
            raise ValueError(f"hierarchy_dim must be in [0, latent_dim), got {hierarchy_dim}")
        # Two levels: z = [z1, z2] with z2 the last `hierarchy_dim` dimensions (the top, under
        # the prior) and z1 | z2 Gaussian below it; 0 is the usual one-level VAE.
        self.top_dim = int(hierarchy_dim) or latent_dim
        self.bottom_dim = latent_dim - self.top_dim
        if isinstance(pixelcnn_layers, bool) or int(pixelcnn_layers) < 0:
            raise ValueError(f"pixelcnn_layers must be >= 0, got {pixelcnn_layers}")
        self.pixelcnn_layers = int(pixelcnn_layers)
        if self.pixelcnn_layers and likelihood != "bernoulli":
            raise ValueError("a PixelCNN decoder (pixelcnn_layers > 0) models binary pixels: it needs likelihood='bernoulli'")
        decoder_shape = self.image_shape
        if self.pixelcnn_layers:
            self.pixelcnn = PixelCNN(self.image_shape[0], width, self.pixelcnn_layers)
            decoder_shape = (self.pixelcnn.cond_channels, *self.image_shape[1:])  # t(z) and Q(z) per pixel
        # With a flow the encoder also outputs a context h (latent_dim numbers) for the IAF steps.
        self.context_dim = latent_dim if self.flow_steps else 0
        encoder_outputs = 2 * latent_dim + self.context_dim
        if architecture == "mlp":
            hidden = list(hidden_dims)
            self.encoder = nn.Sequential(nn.Flatten(), mlp([pixels, *hidden, encoder_outputs]))
            outputs = math.prod(decoder_shape)
            self.decoder = nn.Sequential(mlp([latent_dim, *hidden[::-1], outputs]), nn.Unflatten(1, decoder_shape))
        else:
            self.encoder = ConvEncoder(self.image_shape, encoder_outputs, width=width, norm="none", activation=nn.SiLU)
            self.decoder = ConvDecoder(latent_dim, self.image_shape, width=width, batch_norm=False, out_channels=decoder_shape[0])
        if self.flow_steps:
            self.flow = IAF(latent_dim, self.flow_steps, self.context_dim, int(aux_hidden))
        if self.bottom_dim:
            # p(z1|z2) and the top-down part of q(z1|x, z2), shifting the encoder's bottom-up guess
            self.prior_bottom = mlp([self.top_dim, int(aux_hidden), 2 * self.bottom_dim], activation=nn.SiLU)
            self.posterior_bottom = mlp([self.top_dim, int(aux_hidden), 2 * self.bottom_dim], activation=nn.SiLU)
        if likelihood == "gaussian":
            self.log_scale = nn.Parameter(torch.full((self.image_shape[0], 1, 1), math.log(0.1)))
        if prior == "vamp":
            # Pseudo-inputs live in logit space so that sigmoid keeps them valid images.
            self.pseudo_inputs = nn.Parameter(torch.randn(num_pseudo_inputs, *self.image_shape) * 0.5 - 1.0)
        if prior == "mog":
            # A learned mixture in latent space: most of the VampPrior's gain without encoding
            # pseudo-inputs at every step. Components start spread out around N(0, I).
            self.prior_means = nn.Parameter(torch.randn(num_components, self.top_dim))
            self.prior_log_vars = nn.Parameter(torch.zeros(num_components, self.top_dim))
            self.prior_logits = nn.Parameter(torch.zeros(num_components))

    # -- the model's pieces ----------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0, 1] -> the base posterior's mean and log-variance, each (N, latent_dim)
        (with a flow, q(z0|x); `posterior_mean` is the code after the flow)."""
        mean, log_var, _ = self._encode(x)
        return mean, log_var

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        outputs = self.encoder(x)
        mean, log_var = outputs[:, : self.latent_dim], outputs[:, self.latent_dim : 2 * self.latent_dim]
        context = outputs[:, 2 * self.latent_dim :] if self.context_dim else None
        return mean, log_var.clamp(-12, 8), context

    def posterior_sample(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ q(z|x) from N(0, I) draws `eps` (..., N, D), and log q(z|x): the Gaussian's density
        (with a hierarchy, q(z2|x) q(z1|x, z2)), minus the flow's log-determinant when there is a
        flow (genhub.models.flows)."""
        mean, log_var, context = self._encode(x)
        if self.bottom_dim:
            d1 = self.bottom_dim
            mean2, log_var2 = mean[..., d1:], log_var[..., d1:]
            z2 = mean2 + (0.5 * log_var2).exp() * eps[..., d1:]
            shift, log_var_shift = self.posterior_bottom(z2).chunk(2, dim=-1)
            mean1, log_var1 = mean[..., :d1] + shift, (log_var[..., :d1] + log_var_shift).clamp(-12, 8)
            z1 = mean1 + (0.5 * log_var1).exp() * eps[..., :d1]
            z = torch.cat([z1, z2], dim=-1)
            log_q = _log_normal(z2, mean2, log_var2) + _log_normal(z1, mean1, log_var1)
        else:
            z = mean + (0.5 * log_var).exp() * eps
            log_q = _log_normal(z, mean, log_var)
        if self.flow_steps:
            shape = z.shape
            h = context.expand(*shape[:-1], context.shape[-1]) if context is not None else None
            z, log_det = self.flow(z.reshape(-1, shape[-1]), h.reshape(-1, h.shape[-1]) if h is not None else None)
            z, log_q = z.reshape(shape), log_q - log_det.reshape(shape[:-1])
        return z, log_q

    def posterior_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The code an image encodes to: the base posterior's mean (top-down through the
        hierarchy), through the flow if any."""
        mean, _ = self.encode(x)
        return self.posterior_sample(x, torch.zeros_like(mean))[0] if self.flow_steps or self.bottom_dim else mean

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The logits of p(x|z) for codes (N, latent_dim); with a PixelCNN they depend on x too (`log_px`)."""
        if self.pixelcnn_layers:
            raise ValueError("a PixelCNN decoder's logits depend on the image as well as z: use log_px(x, z) or decode(z)")
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes -> mean images in [0, 1] (Bernoulli probabilities or Gaussian means).

        With a PixelCNN, the pixels are drawn one by one and the result is the chain's
        probabilities p(x_i = 1 | x_<i, z); the draws come from a generator seeded by each code,
        so one z always gives the same image."""
        if not self.pixelcnn_layers:
            return torch.sigmoid(self.decode_logits(z))
        uniforms = torch.stack([torch.rand(self.image_shape, generator=_generator_for(code)) for code in z]).to(z.device, z.dtype)
        return self.pixelcnn.sample(self.decoder(z), uniforms)

    def log_px(self, x: torch.Tensor, z: torch.Tensor, features=None) -> torch.Tensor:
        """log p(x|z) per example for images x (N, C, H, W) and codes z (..., N, latent_dim).
        `features`: the PixelCNN's features of x, when already computed (they do not depend on z)."""
        cond = self.decoder(z.reshape(-1, z.shape[-1])).unflatten(0, z.shape[:-1])
        if not self.pixelcnn_layers:
            return self.log_likelihood(x, cond)
        s, p = features if features is not None else self.pixelcnn.features(x)
        return self.log_likelihood(x, self.pixelcnn.combine(s, p, *self.pixelcnn.split_cond(cond)))

    def log_likelihood(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example, summed over pixels; `logits` broadcast over leading dims."""
        if self.likelihood == "bernoulli":
            log_p = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        else:
            mean = torch.sigmoid(logits)
            log_p = -0.5 * (((x - mean) / self.log_scale.exp()) ** 2 + LOG_2PI) - self.log_scale
        return log_p.flatten(-3).sum(-1)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), summed over latent dimensions; z is (..., latent_dim). With a hierarchy,
        log p(z2) + log p(z1|z2), the prior (standard, mog or vamp) on the top level z2."""
        if self.bottom_dim:
            z1, z2 = z[..., : self.bottom_dim], z[..., self.bottom_dim :]
            mean1, log_var1 = self.prior_bottom(z2).chunk(2, dim=-1)
            return self._log_top_prior(z2) + _log_normal(z1, mean1, log_var1.clamp(-12, 8))
        return self._log_top_prior(z)

    def _log_top_prior(self, z: torch.Tensor) -> torch.Tensor:
        if self.prior == "standard":
            return _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        mean, log_var, log_weights = self._prior_components()
        per_component = _log_normal(z.unsqueeze(-2), mean, log_var)  # (..., K)
        return torch.logsumexp(per_component + log_weights, dim=-1)

    def _prior_components(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means, log-variances (K, D) and log mixture weights (K,) of a mixture prior."""
        if self.prior == "vamp":
            mean, log_var = self.encode(torch.sigmoid(self.pseudo_inputs))
            mean, log_var = mean[:, self.bottom_dim :], log_var[:, self.bottom_dim :]  # q(z2|u) with a hierarchy
            return mean, log_var, torch.full((len(mean),), -math.log(len(mean)), device=mean.device)
        return self.prior_means, self.prior_log_vars.clamp(-8, 4), torch.log_softmax(self.prior_logits, dim=0)

    def sample_latent(self, n: int, seed: int | None = None, truncation: float | None = None) -> torch.Tensor:
        """n codes from the prior. With `truncation` t, the standard-normal noise behind every draw
        (the top level's, and z1's given z2) is truncated to [-t, t]; mixture components are drawn as usual."""
        if self.prior == "standard" and not self.bottom_dim:
            return super().sample_latent(n, seed, truncation)
        check_count(n)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if self.prior == "standard":
            top = standard_normal((n, self.top_dim), generator, truncation).to(self.device)
        else:
            mean, log_var, log_weights = self._prior_components()
            component = torch.multinomial(log_weights.exp().cpu(), n, replacement=True, generator=generator).to(self.device)
            eps = standard_normal((n, self.top_dim), generator, truncation).to(self.device)
            top = mean[component] + (0.5 * log_var[component]).exp() * eps
        if not self.bottom_dim:
            return top
        mean1, log_var1 = self.prior_bottom(top).chunk(2, dim=-1)  # z1 ~ p(z1|z2)
        eps = standard_normal((n, self.bottom_dim), generator, truncation).to(self.device)
        return torch.cat([mean1 + (0.5 * log_var1.clamp(-12, 8)).exp() * eps, top], dim=-1)

    # -- bounds ------------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, eps: torch.Tensor | None = None, kl_weight: float = 1.0) -> torch.Tensor:
        """Per-example evidence lower bound in nats, one reparameterized sample:
        E_q[log p(x|z)] - kl_weight * KL(q(z|x) || p(z)) (`elbo_terms`).

        eps: the N(0, I) draws to use (N, latent_dim); fresh ones when None. kl_weight scales
        the KL term (beta-VAE); 1 gives the true bound.
        """
        reconstruction, kl = self.elbo_terms(x, eps)
        return reconstruction - kl_weight * kl

    def elbo_terms(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example (log p(x|z), KL) of the ELBO, z = the reparameterized sample from `eps`.
        The KL is analytic for the standard one-level prior without a flow, otherwise the
        one-sample estimate log q(z|x) - log p(z)."""
        if self.flow_steps or self.bottom_dim:  # no closed form with a flow or a hierarchy
            if eps is None:
                eps = torch.randn(len(x), self.latent_dim, device=x.device)
            z, log_q = self.posterior_sample(x, eps)
            return self.log_px(x, z), log_q - self.log_prior(z)
        mean, log_var = self.encode(x)
        if eps is None:
            eps = torch.randn_like(mean)
        z = mean + (0.5 * log_var).exp() * eps
        if self.prior == "standard":
            kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1)
        else:
            kl = _log_normal(z, mean, log_var) - self.log_prior(z)
        return self.log_px(x, z), kl

    def iwae_bound(self, x: torch.Tensor, k: int, chunk: int = 100) -> torch.Tensor:
        """Per-example importance-weighted bound log (1/k) sum_i p(x, z_i)/q(z_i|x) (Burda et al. 2016).

        It is a lower bound on log p(x) that tightens as k grows; k=1 is the ELBO (with a
        sampled KL). Samples are drawn `chunk` at a time to bound memory.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        log_weights = []
        features = self.pixelcnn.features(x) if self.pixelcnn_layers else None  # computed once: they do not depend on z
        for start in range(0, k, chunk):
            count = min(chunk, k - start)
            z, log_q = self.posterior_sample(x, torch.randn(count, len(x), self.latent_dim, device=x.device))  # (count, N, D)
            log_weights.append(self.log_px(x, z, features) + self.log_prior(z) - log_q)
        return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: images in [0, 1]."""
        return self.decode(self.posterior_mean(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss: mean negative ELBO over the batch."""
        return -self.elbo(x).mean()


def _generator_for(code: torch.Tensor) -> torch.Generator:
    """A CPU generator seeded by the code's float32 bytes: the same z draws the same pixels."""
    return torch.Generator().manual_seed(zlib.crc32(code.detach().float().cpu().numpy().tobytes()))


def _log_normal(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    return -0.5 * (LOG_2PI + log_var + (z - mean) ** 2 / log_var.exp()).sum(-1)


def fit_diagonal_gmm(points: torch.Tensor, components: int, iterations: int = 100, seed: int = 0, min_log_var: float = -8.0):
    """A mixture of `components` diagonal Gaussians fitted to `points` (N, D) by EM.

    E step: r_nk = pi_k N(x_n; mu_k, diag s_k^2) / sum_j pi_j N(x_n; mu_j, diag s_j^2).
    M step: pi_k = mean_n r_nk, mu_k = sum_n r_nk x_n / sum_n r_nk,
            s_k^2 = sum_n r_nk (x_n - mu_k)^2 / sum_n r_nk  (floored at exp(min_log_var)).
    The means start at `components` distinct points drawn with `seed`, every variance at the
    data's. Returns (means (K, D), log-variances (K, D), log weights (K,)).
    """
    points = points.detach().double()
    n = len(points)
    if points.ndim != 2 or n < 2:
        raise ValueError(f"fit_diagonal_gmm needs an (N, D) tensor of at least 2 points, got shape {tuple(points.shape)}")
    if not 1 <= components <= n:
        raise ValueError(f"components must be between 1 and the number of points ({n}), got {components}")
    generator = torch.Generator().manual_seed(seed)
    means = points[torch.randperm(n, generator=generator)[:components].to(points.device)].clone()
    log_vars = points.var(0).clamp_min(math.exp(min_log_var)).log().expand(components, -1).clone()
    log_weights = torch.full((components,), -math.log(components), dtype=points.dtype, device=points.device)
    for _ in range(iterations):
        precision = (-log_vars).exp()  # (K, D); the log-densities (N, K) without an (N, K, D) tensor:
        quadratic = points**2 @ precision.T - 2 * points @ (means * precision).T + (means**2 * precision).sum(1)
        log_density = -0.5 * (quadratic + log_vars.sum(1) + points.shape[1] * LOG_2PI) + log_weights
        responsibilities = torch.softmax(log_density, dim=1)
        mass = responsibilities.sum(0) + 1e-10  # (K,)
        means = responsibilities.T @ points / mass[:, None]
        variances = responsibilities.T @ points**2 / mass[:, None] - means**2
        log_vars = variances.clamp_min(math.exp(min_log_var)).log()
        log_weights = (mass / mass.sum()).log()
    return means.float(), log_vars.float(), log_weights.float()


def fit_mixture_prior(
    vae: GenVAE,
    images: torch.Tensor,
    components: int = 100,
    draws: int = FIT_PRIOR_DRAWS,
    iterations: int = 100,
    seed: int = 0,
    batch_size: int = 500,
) -> GenVAE:
    """Ex-post density estimation (Ghosh et al. 2020; the second stage of Dai & Wipf 2019): a
    copy of `vae` whose prior is a mixture of diagonal Gaussians fitted by EM to its aggregate
    posterior q(z) = mean_x q(z|x), from `draws` codes z ~ q(z|x) per image of `images` (the training
    set: uint8 (N, C, H, W), or floats in [0, 1]). A VAE whose KL stays high leaves regions of N(0, I) that no
    image encodes to, and their decodings are blurs; drawing from the fitted q(z) avoids them.
    With a hierarchy the mixture replaces the top level's prior. Encoder and decoder are
    unchanged; the copy's config says prior="mog" with `components` components, so its bounds
    (ELBO, IWAE) are computed under the new prior.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    config = dict(vae._hub_mixin_config or {})
    config.update(prior="mog", num_components=int(components))
    fitted = GenVAE(**config).to(vae.device)
    prior_keys = {"prior_means", "prior_log_vars", "prior_logits", "pseudo_inputs"}
    state = {key: value for key, value in vae.state_dict().items() if key not in prior_keys}
    missing, unexpected = fitted.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= prior_keys, (missing, unexpected)
    generator = torch.Generator().manual_seed(seed)
    codes = []
    was_training = vae.training
    vae.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(vae.device)
            x = x.float() / 255 if x.dtype == torch.uint8 else x
            for _ in range(draws):
                eps = torch.randn(len(x), vae.latent_dim, generator=generator).to(vae.device)
                codes.append(vae.posterior_sample(x, eps)[0][:, vae.bottom_dim :])
    vae.train(was_training)
    means, log_vars, log_weights = fit_diagonal_gmm(torch.cat(codes), components, iterations, seed)
    with torch.no_grad():
        fitted.prior_means.copy_(means)
        fitted.prior_log_vars.copy_(log_vars)
        fitted.prior_logits.copy_(log_weights)
    return fitted.eval()
