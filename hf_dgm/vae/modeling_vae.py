"""VAEModel: encoder, decoder and likelihood of a variational autoencoder (Kingma & Welling, 2014) as a
`PreTrainedModel`. The API follows diffusers' AutoencoderKL: `encode` returns a posterior with `sample`, `mode`
and `kl`; `decode` returns images. Unlike AutoencoderKL, `forward` also returns the loss terms.

Loss (``forward``): the negative ELBO in nats per image,
    loss = E_q[-log p(x|z)] + KL(q(z|x) || p(z)),
the reconstruction term summed over pixels (one Monte-Carlo sample), both averaged over the batch. The seed
article's `reconstruction_error - kl_divergence` has the KL sign flipped; it is not reproduced here.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ..modeling_utils import (
    HfDgmModelMixin,
    check_batch_size,
    check_class_labels,
    check_latents,
    check_pixel_values,
    eval_mode,
    randn,
)
from .configuration_vae import VAEConfig
from .latent_prior import LATENT_PRIOR_FIELDS, AutoregressivePrior, FittedPrior, standard_normal_log_prob
from .networks_vae import (
    LIKELIHOODS,
    build_decoder,
    build_encoder,
    decode,
    decoder_mean,
    likelihood_output,
    prior_latents,
    reconstruction_nll,
)


class DiagonalGaussianDistribution:
    """q(z | x) = N(mean, diag(exp(logvar))). Shapes: (batch_size, latent_dim)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean = mean
        self.logvar = torch.clamp(logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        # drawn in float32 (also under bf16/fp16 autocast), then cast
        noise = randn(self.mean.shape, generator=generator, device=self.mean.device).to(self.mean.dtype)
        return self.mean + self.std * noise  # reparameterisation trick

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) in nats, summed over latent dimensions: shape (batch_size,)."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z | x) summed over latent dimensions; z may carry extra leading sample dimensions."""
        return (-0.5 * ((z - self.mean) / self.std) ** 2 - 0.5 * self.logvar - 0.5 * math.log(2 * math.pi)).sum(-1)


@dataclass
class VAEEncoderOutput(ModelOutput):
    """
    Args:
        latent_dist (`DiagonalGaussianDistribution`):
            The posterior q(z | x); mean and std have shape `(batch_size, latent_dim)`.
    """

    latent_dist: DiagonalGaussianDistribution | None = None


@dataclass
class VAEDecoderOutput(ModelOutput):
    """
    Args:
        sample (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            Decoded images in [0, 1] (the likelihood's mean).
        logits (`torch.FloatTensor` of shape `(batch_size, output_channels, image_size, image_size)`):
            Raw decoder outputs (`networks_vae.output_channels`): Bernoulli logits or the Gaussian mean before the
            sigmoid (`num_channels`), the discretized logistic's locations and log-scales (`2 * num_channels`), or
            the logistic mixture's parameters.
    """

    sample: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


@dataclass
class VAEOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Negative ELBO in nats per image: `reconstruction_loss + kl_loss`.
        reconstruction_loss (`torch.FloatTensor` of shape `()`):
            -log p(x | z), summed over pixels, averaged over the batch.
        kl_loss (`torch.FloatTensor` of shape `()`):
            KL(q(z | x) || p(z)), summed over latent dimensions, averaged over the batch.
        sample (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            Reconstructions in [0, 1]: the likelihood's mean (with a pixel context, each pixel's given the true
            pixels before it; `VAEPipeline.reconstruct` decodes pixel by pixel instead).
        latent_dist (`DiagonalGaussianDistribution`):
            The posterior q(z | x) (`hierarchical`: in the prior-standardised noise of each group, given the groups
            drawn before it).
        kl_per_group (`torch.FloatTensor` of shape `(batch_size, num_groups)`, *optional*):
            `hierarchical` only: KL(q(z_g | z_<g, x) || p(z_g | z_<g)) of each latent group in nats, coarse to fine;
            they add up to `kl_loss` (averaged over the batch).
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    kl_loss: torch.FloatTensor | None = None
    sample: torch.FloatTensor | None = None
    latent_dist: DiagonalGaussianDistribution | None = None
    kl_per_group: torch.FloatTensor | None = None


class VAEModel(HfDgmModelMixin, PreTrainedModel):
    config_class = VAEConfig
    base_model_prefix = "vae"
    main_input_name = "pixel_values"

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.encoder = build_encoder(config)
        self.decoder = build_decoder(config)
        if LIKELIHOODS[config.likelihood].learned_log_scale(config):
            self.log_scale = nn.Parameter(torch.zeros(config.num_channels))  # log sigma per channel
        else:
            self.log_scale = None
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
            module.reset_parameters()  # PyTorch's defaults (Kaiming-uniform) suit the VAE
            context = self.decoder.pixel_context
            if context is not None and module is context.mix[-1]:
                # a new pixel context starts as the decoder without it; zeroed here, as its layer is initialised:
                # transformers skips modules without parameters of their own, such as PixelContext itself
                context.reset_last_layer()
        elif module is self and self.log_scale is not None:
            nn.init.zeros_(self.log_scale)
        elif module is not self and hasattr(module, "reset_parameters"):  # a network's own parameters (hierarchical)
            module.reset_parameters()

    def _check_pixel_values(self, pixel_values: torch.Tensor):
        check_pixel_values(self.config, pixel_values)
        lo, hi = pixel_values.min().item(), pixel_values.max().item()
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"pixel_values span [{lo:.3g}, {hi:.3g}]; a VAE expects images in [0, 1].")

    def with_pixel_context(self, size: int, channels: int) -> "VAEModel":
        """A new VAE: this one with a pixel context of window `size` and width `channels` added to its decoder
        (``VAEConfig.pixel_context``). Every other weight is kept, and the new layers start as the identity, so
        training goes on from this model's likelihood (PixelVAE's context on a trained VAE)."""
        if self.config.pixel_context:
            raise ValueError(f"This VAE already has a pixel context (pixel_context={self.config.pixel_context}).")
        config = VAEConfig(**{**self.config.to_dict(), "pixel_context": size, "pixel_context_channels": channels})
        model = VAEModel(config).to(device=self.device, dtype=self.dtype)
        missing, unexpected = model.load_state_dict(self.state_dict(), strict=False)
        if unexpected or any(not name.startswith("decoder.pixel_context.") for name in missing):
            raise RuntimeError(f"Adding a pixel context changed other weights: {missing=}, {unexpected=}.")
        return model

    def with_latent_prior(self, prior: FittedPrior | AutoregressivePrior | None) -> "VAEModel":
        """A new VAE: this one with `prior` (fitted: ``FittedPrior``, ``AutoregressivePrior``) as the prior its
        latents are drawn from and scored by, or with None, N(0, I) again (``VAEConfig.latent_prior_kind``). Every
        network weight is kept."""
        fields = {name: getattr(VAEConfig, name) for name in LATENT_PRIOR_FIELDS}  # the defaults: none
        if prior is not None:
            fields |= prior.config_fields()
        model = VAEModel(VAEConfig(**{**self.config.to_dict(), **fields})).to(device=self.device, dtype=self.dtype)
        weights = {k: v for k, v in self.state_dict().items() if not k.startswith("decoder.latent_prior.")}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(not name.startswith("decoder.latent_prior.") for name in missing):
            raise RuntimeError(f"Changing the latent prior changed other weights: {missing=}, {unexpected=}.")
        if prior is not None:
            model.decoder.latent_prior.load_state_dict(prior.state_dict())
        return model

    @property
    def latent_prior(self) -> FittedPrior | AutoregressivePrior | None:
        """The fitted prior latents are drawn from and scored by, or None: N(0, I) (``latent_prior``)."""
        return self.decoder.latent_prior

    @property
    def sampling_network(self) -> nn.Module:
        """The network that turns latents into images: the decoder."""
        return self.decoder

    @property
    def is_hierarchical(self) -> bool:
        """Latent groups at several resolutions (`architecture="hierarchical"`, `networks_hvae`)."""
        return self.config.architecture == "hierarchical"

    def posterior_pass(
        self, pixel_values: torch.Tensor, labels, noise: torch.Tensor, num_samples: int = 1, pixel_context: bool = True
    ):
        """`hierarchical`: the encoder, then the decoder's top-down pass through the posterior with standard `noise`
        (num_samples * N, latent_dim) (zeros: the mean path), the images repeated `num_samples` times ->
        (likelihood parameters, `networks_hvae.GroupResult`); with a pixel context (and `pixel_context`: False skips
        it where only the posterior is wanted), each pixel's parameters are also given the pixels of `pixel_values`
        before it."""
        features = self.encoder(pixel_values, labels)
        if num_samples > 1:
            features = {r: f.repeat(num_samples, 1, 1, 1) for r, f in features.items()}
            labels = labels.repeat(num_samples) if labels is not None else None
            pixel_values = pixel_values.repeat(num_samples, 1, 1, 1)
        output, result = self.decoder.posterior(features, noise, labels)
        if pixel_context and self.decoder.pixel_context is not None:
            output = self.decoder.pixel_context(output, pixel_values)
        return output, result

    def _posterior(
        self, pixel_values: torch.Tensor, labels, noise: torch.Tensor | None = None, pixel_context: bool = True
    ):
        """q(z | x) as a diagonal Gaussian: the encoder's, or for `hierarchical` each group's in its prior's units
        along the pass drawn with `noise` (None: the mean path), and that pass's (output, GroupResult) or None (the
        output without the pixel context where `pixel_context` is False)."""
        if not self.is_hierarchical:
            return DiagonalGaussianDistribution(*self.encoder(pixel_values, labels)), None
        if noise is None:
            noise = pixel_values.new_zeros(pixel_values.shape[0], self.config.latent_dim)
        output, result = self.posterior_pass(pixel_values, labels, noise, pixel_context=pixel_context)
        return DiagonalGaussianDistribution(result.eps_mean, 2.0 * torch.log(result.eps_std)), (output, result)

    def encode(self, pixel_values: torch.Tensor, class_labels=None, return_dict: bool = True):
        """Images in [0, 1], shape (N, C, H, W) -> posterior q(z | x) (`hierarchical`: along its mean path, in the
        prior-standardised noise of each group; its mode decodes to the posterior means)."""
        self._check_pixel_values(pixel_values)
        labels = check_class_labels(self.config, class_labels, pixel_values.shape[0], device=pixel_values.device)
        posterior = self._posterior(pixel_values, labels, pixel_context=False)[0]
        return VAEEncoderOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, latents: torch.Tensor, class_labels=None, return_dict: bool = True, generator=None, progress=None):
        """Latents (N, latent_dim) -> images in [0, 1] and the raw decoder logits: the likelihood's mean, or with a
        pixel context a draw from it, pixel by pixel (its uniforms from `generator`; without one, seeded with 0;
        `progress`, where given, called with 1 after each row), and each pixel's logits given the decoded pixels
        before it. `class_labels`: ints, or class weights (N, num_classes) that mix the classes' embeddings
        (``modeling_utils.embed_classes``)."""
        check_latents(self.config, latents)
        labels = check_class_labels(self.config, class_labels, latents.shape[0], device=latents.device, mixing=True)
        sample, logits = decode(self.config, self.decoder, latents, labels, generator, progress)
        return VAEDecoderOutput(sample=sample, logits=logits) if return_dict else (sample, logits)

    def likelihood_output(self, latents: torch.Tensor, labels, pixel_values: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameters for `pixel_values` given `latents` (see `networks_vae.likelihood_output`)."""
        return likelihood_output(self.decoder, latents, labels, pixel_values)

    def reconstruction_nll(self, logits: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) in nats summed over pixels, shape (N,) (see `networks_vae.reconstruction_nll`)."""
        return reconstruction_nll(self.config, logits, pixel_values, self.log_scale)

    def forward(
        self,
        pixel_values: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
        class_labels=None,
        sample_posterior: bool = True,
    ):
        self._check_pixel_values(pixel_values)
        labels = check_class_labels(self.config, class_labels, pixel_values.shape[0], device=pixel_values.device)
        kl_per_group = None
        if self.is_hierarchical:
            shape, device = (pixel_values.shape[0], self.config.latent_dim), pixel_values.device
            noise = randn(shape, generator=generator, device=device) if sample_posterior else torch.zeros(shape)
            posterior, (logits, result) = self._posterior(pixel_values, labels, noise.to(pixel_values))
            kl_per_group = result.kl  # (N, groups)
            kl_loss = kl_per_group.sum(1).mean()
        else:
            posterior = self._posterior(pixel_values, labels)[0]
            z = posterior.sample(generator) if sample_posterior else posterior.mode()  # (N, z)
            logits = self.likelihood_output(z, labels, pixel_values)  # (N, output_channels, H, W)
            kl_loss = posterior.kl().mean()
        reconstruction_loss = self.reconstruction_nll(logits, pixel_values).mean()
        loss = reconstruction_loss + kl_loss
        sample = decoder_mean(self.config, logits)
        if not return_dict:
            return (loss, reconstruction_loss, kl_loss, sample, posterior)
        return VAEOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            kl_loss=kl_loss,
            sample=sample,
            latent_dist=posterior,
            kl_per_group=kl_per_group,
        )

    def log_importance_weights(self, x: torch.Tensor, num_samples: int, generator, labels=None) -> torch.Tensor:
        """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for `num_samples` z_i ~ q(z | x) per image:
        (num_samples, N), with gradients (evaluation calls it under no_grad). (`hierarchical`: p and q of every
        group, each given the groups drawn before it.)"""
        if self.is_hierarchical:
            self._check_pixel_values(x)
            b = x.shape[0]
            labels = check_class_labels(self.config, labels, b, device=x.device)
            noise = torch.randn((num_samples, b, self.config.latent_dim), generator=generator, dtype=x.dtype)
            noise = noise.to(x.device).reshape(num_samples * b, -1)
            output, result = self.posterior_pass(x, labels, noise, num_samples)
            x_s = x.repeat(num_samples, 1, 1, 1)
            log_ratio = result.log_ratio
            if self.latent_prior is not None:  # the fitted prior's density of the groups' noise instead of N(0, I)
                prior_change = self.latent_prior.log_prob(result.eps) - standard_normal_log_prob(result.eps)
                log_ratio = log_ratio + prior_change.to(log_ratio)
            return (log_ratio - self.reconstruction_nll(output, x_s)).view(num_samples, b)
        posterior = self.encode(x, class_labels=labels).latent_dist
        eps = torch.randn((num_samples, *posterior.mean.shape), generator=generator, dtype=posterior.mean.dtype)
        z = posterior.mean + posterior.std * eps.to(posterior.mean.device)  # (S, B, D)
        s, b = z.shape[:2]
        y = labels.repeat(s) if labels is not None else None
        x_s = x.repeat(s, 1, 1, 1)
        log_px = -self.reconstruction_nll(self.likelihood_output(z.reshape(s * b, -1), y, x_s), x_s).view(s, b)
        prior = self.latent_prior.log_prob if self.latent_prior is not None else standard_normal_log_prob
        log_pz = prior(z.reshape(s * b, -1)).view(s, b).to(z)
        return log_px + log_pz - posterior.log_prob(z)

    @torch.no_grad()
    def generate(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        class_labels=None,
        temperature: float | list[float] = 1.0,
        return_dict: bool = True,
        progress=None,
    ):
        """Decode prior samples z ~ N(0, temperature^2 I) into images in [0, 1], in eval mode (with a pixel context,
        `generator` also draws the pixels, and `progress` is called after each row: see `decode`). `hierarchical`:
        each group's prior standard deviation times the temperature, or one temperature per group (a list, coarse to
        fine). A fitted prior (``latent_prior``) draws them instead."""
        if latents is None:
            check_batch_size(batch_size)
            latents = prior_latents(self.config, self.decoder, batch_size, generator, temperature)
        latents = self.prepare_latents(batch_size, generator, latents)
        with eval_mode(self):
            out = self.decode(latents, class_labels=class_labels, generator=generator, progress=progress)
        return VAEDecoderOutput(sample=out.sample, logits=out.logits) if return_dict else (out.sample, out.logits)
