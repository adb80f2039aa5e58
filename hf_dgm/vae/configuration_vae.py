"""VAEConfig: the architecture and likelihood of a variational autoencoder."""

from dataclasses import field

from transformers import PretrainedConfig

from ..modeling_utils import ACTIVATIONS, FORMAT_VERSION, HfDgmConfigMixin
from .networks_vae import ARCHITECTURES, GAUSSIAN_VARIANCES, LIKELIHOODS, validate_vae_config


class VAEConfig(HfDgmConfigMixin, PretrainedConfig):
    r"""
    Configuration of a [`VAEModel`]. It describes architecture only; optimiser, beta, KL warm-up and data settings
    are training arguments, saved next to the weights as `training_args.json`.

    Args:
        architecture (`str`, defaults to `"conv"`):
            `"conv"` (convolutional encoder/decoder), `"resnet"` (the same stages built from residual blocks, for
            colour images), `"mlp"` (the seed article's fully connected networks) or `"hierarchical"` (latent groups
            at several resolutions, NVAE/VDVAE style: `networks_hvae`, docs/hierarchical_vae.md).
        latent_dim (`int`, defaults to 16):
            Size of the latent z. Positive. (The article gives none; 2 is used for the manifold-view model.) For
            `hierarchical`, every group's values together: channels per group x the sum of the groups' areas (for
            groups at 4, 8, 16 and 32, a multiple of 1360), so it must be such a multiple.
        image_size (`int`, defaults to 28):
            Height and width of the square images. For `conv` and `resnet` it must be b * 2**n with 3 <= b <= 7 and n >= 2
            (28, 32, 48, 64, ...); `mlp` accepts any positive size.
        num_channels (`int`, defaults to 1):
            1 for grey images, 3 for RGB.
        likelihood (`str`, defaults to `"bernoulli"`):
            Decoder likelihood p(x | z): `"bernoulli"` (logits; exact NLL for binarized data, comparable with the
            literature), `"gaussian"` (mean `sigmoid(output)`), `"discretized_logistic"` (a location and a
            log-scale per sub-pixel, integrated over each 8-bit level: an exact NLL for 8-bit colour images, in bits
            per dimension) or `"logistic_mixture"` (a mixture of such logistics per pixel, each colour channel
            depending linearly on the earlier ones, as in PixelCNN++; also exact, in bits per dimension). The article used a tanh output with squared error, a fixed-variance Gaussian up to
            constants.
        gaussian_variance (`str`, defaults to `"learned"`):
            `gaussian` only: `"learned"` (one log-scale per channel) or `"fixed"` (`gaussian_fixed_std`).
        gaussian_fixed_std (`float`, defaults to 0.1):
            Standard deviation of the fixed-variance Gaussian likelihood. Positive.
        num_mixtures (`int`, defaults to 10):
            `logistic_mixture` only: components of the mixture per pixel. Positive.
        pixel_context (`int`, defaults to 0):
            0, or an odd window size k >= 3 (`logistic_mixture` only): each pixel's likelihood also depends on the
            earlier pixels (raster order) in a k x k window around it, through a masked convolution and per-pixel
            layers that adjust the decoder's output and pull each component towards a prediction from the nearest
            earlier pixels (PixelVAE, Gulrajani et al., 2017; `networks_vae.PixelContext`). The likelihood of an image
            stays one pass; decoding becomes sequential, pixel by pixel (each pixel drawn from its mixture given those before it).
            Every architecture takes it, the hierarchical one too.
        pixel_context_channels (`int`, defaults to 64):
            Width of the pixel context's layers. Positive.
        latent_prior_kind (`str`, defaults to `"mixture"`):
            The kind of prior fitted to the training images' latents after training (`hf-dgm fit-prior`), where
            `latent_prior_components` is not 0. `"mixture"`: a mixture of Gaussians in a principal subspace of the
            latents and a Gaussian with one variance per latent value in the rest (`latent_prior.FittedPrior`).
            `"autoregressive"` (`hierarchical` only): the groups' noise drawn coarse to fine, each resolution in four
            interleaved subgrids given what was drawn before, each position a mixture of Gaussians
            (`latent_prior.AutoregressivePrior`). Either is saved with the decoder's weights; samples and the
            likelihood bounds use it, training does not. Unconditional VAEs only.
        latent_prior_components (`int`, defaults to 0):
            0: latents are drawn from N(0, I) (for `hierarchical`, each group's noise, given the groups before it).
            K >= 1: from the fitted prior: the mixture's K Gaussians, or the autoregressive prior's K per position.
        latent_prior_rank (`int`, defaults to 0):
            The dimension of the mixture's subspace, 1 to `latent_dim` (0 with no fitted prior or an autoregressive
            one).
        latent_prior_width (`int`, defaults to 0):
            The width of the autoregressive prior's convolutions (0 with no fitted prior or a mixture).
        num_classes (`int`, *optional*):
            `None` for an unconditional VAE, or N >= 2 for a conditional VAE (encoder and decoder both see a label
            embedding).
        class_embed_dim (`int`, defaults to 16):
            Size of the label embedding (conditional models only).
        base_channels (`int`, defaults to 32):
            `conv`, `resnet`, `hierarchical`: channels of the first encoder stage (for `hierarchical`, at the image's
            resolution); each later stage doubles it. The decoder mirrors it.
        latent_groups (`list[int]`, *optional*):
            `hierarchical`: the resolutions of the latent groups, coarse to fine, each the image size divided by a
            power of 2; a resolution repeated gives several groups there. `None`: one group at each resolution of the
            convolutional schedule below the image's (28 px: `[7, 14]`; 64 px: `[4, 8, 16, 32]`).
        cells_per_resolution (`int`, defaults to 1):
            `hierarchical`: residual cells at each resolution of the encoder and of the decoder after its last group.
            Each latent group has two more in the decoder. Positive.
        hidden_dim (`int`, defaults to 256):
            `conv`, `resnet`: width of the fully connected layer between the convolutions and the latent.
        hidden_dims (`list[int]`, defaults to `[128, 64]`):
            `mlp`: encoder widths (the article's 784 -> 128 -> 64); the decoder uses them reversed.
        activation (`str`, defaults to `"leaky_relu"`):
            Hidden activation: `"leaky_relu"` (slope 0.2, as in the article), `"relu"`, `"tanh"` or `"sigmoid"`.
        format_version (`int`, defaults to 1):
            Version of the saved format, for future migrations.
    """

    model_type = "hf_dgm_vae"

    architecture: str = "conv"
    latent_dim: int = 16
    image_size: int = 28
    num_channels: int = 1
    likelihood: str = "bernoulli"
    gaussian_variance: str = "learned"
    gaussian_fixed_std: float = 0.1
    num_mixtures: int = 10
    pixel_context: int = 0
    pixel_context_channels: int = 64
    latent_prior_kind: str = "mixture"
    latent_prior_components: int = 0
    latent_prior_rank: int = 0
    latent_prior_width: int = 0
    num_classes: int | None = None
    class_embed_dim: int = 16
    base_channels: int = 32
    latent_groups: list[int] | None = None
    cells_per_resolution: int = 1
    hidden_dim: int = 256
    hidden_dims: list[int] = field(default_factory=lambda: [128, 64])
    activation: str = "leaky_relu"
    format_version: int = FORMAT_VERSION

    validate_fields = staticmethod(validate_vae_config)
    # the registry a field picks from; an entry's `fields` are the other fields it reads (a flag for another entry is
    # refused by `hf-dgm train`)
    field_registries = {"architecture": ARCHITECTURES, "likelihood": LIKELIHOODS}
    # the values a field accepts, from the registries (the command line offers them as choices)
    field_choices = {
        "architecture": tuple(ARCHITECTURES),
        "likelihood": tuple(LIKELIHOODS),
        "gaussian_variance": GAUSSIAN_VARIANCES,
        "activation": tuple(ACTIVATIONS),
    }
