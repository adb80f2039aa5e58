"""Plain-PyTorch VAE encoders/decoders, the decoder likelihoods and the validation of the hyper-parameters.

This file imports nothing but torch, so ``hf-dgm sample`` can build a decoder and load its weights without
importing transformers (see the speed issue). ``configuration_vae.py`` calls :func:`validate_vae_config`, so the
fast path and the Hugging Face classes check the same rules. It travels with saved models (``trust_remote_code``)
and may only import siblings of this folder.

Architectures:

* ``mlp``: the seed article's networks. Encoder C*H*W -> 128 -> 64 -> (mean, log-variance); decoder
  z -> 64 -> 128 -> C*H*W, leaky ReLU. Widths are ``hidden_dims`` (the decoder mirrors them).
* ``conv``: stride-2 convolutions (``base_channels``, doubling each stage) -> a ``hidden_dim`` layer -> (mean,
  log-variance); the decoder mirrors it with stride-2 transposed convolutions.

The decoder returns raw outputs ("logits"). Images are ``sigmoid(logits)`` for both likelihoods: the Bernoulli mean,
or the Gaussian mean squashed into [0, 1].
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
GAUSSIAN_VARIANCES = ("learned", "fixed")
ACTIVATIONS = ("leaky_relu", "relu", "tanh", "sigmoid")


# ----------------------------------------------------------------------------------------------------------------------
# Validation (shared by VAEConfig and the no-transformers fast path)
# ----------------------------------------------------------------------------------------------------------------------


def conv_schedule(image_size: int) -> tuple[int, int]:
    """Return ``(initial_size, num_stages)`` with ``image_size == initial_size * 2**num_stages``, 3 <= initial <= 7,
    num_stages >= 2 (28 -> 7 x 4, 32 -> 4 x 8, 64 -> 4 x 16). Raises ``ValueError`` otherwise."""
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 12:
        raise ValueError(
            f"image_size={image_size!r} is not supported by the convolutional architectures: expected an int "
            "of the form b * 2**n with 3 <= b <= 7 and n >= 2 (for example 28, 32, 48 or 64)."
        )
    size, stages = image_size, 0
    while size % 2 == 0 and size // 2 >= 3:
        size //= 2
        stages += 1
    if stages < 2 or size > 7:
        raise ValueError(
            f"image_size={image_size!r} is not supported by the convolutional architectures: expected an int "
            "of the form b * 2**n with 3 <= b <= 7 and n >= 2 (for example 28, 32, 48 or 64)."
        )
    return size, stages


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}={value!r} is invalid: expected a positive int.")


def validate_vae_config(cfg) -> None:
    """Check every architecture field of a VAE config (an object with attributes, e.g. ``VAEConfig``)."""
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={cfg.architecture!r} is not supported: expected one of {ARCHITECTURES}.")
    if cfg.likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood={cfg.likelihood!r} is not supported: expected one of {LIKELIHOODS}.")
    if cfg.gaussian_variance not in GAUSSIAN_VARIANCES:
        raise ValueError(
            f"gaussian_variance={cfg.gaussian_variance!r} is not supported: expected one of {GAUSSIAN_VARIANCES}."
        )
    std = cfg.gaussian_fixed_std
    if not isinstance(std, (int, float)) or isinstance(std, bool) or not (std > 0 and math.isfinite(std)):
        raise ValueError(f"gaussian_fixed_std={std!r} is invalid: expected a positive finite number.")
    _check_positive_int("latent_dim", cfg.latent_dim)
    _check_positive_int("image_size", cfg.image_size)
    if cfg.num_channels not in (1, 3) or isinstance(cfg.num_channels, bool):
        raise ValueError(f"num_channels={cfg.num_channels!r} is invalid: expected 1 (grey) or 3 (RGB).")
    if cfg.num_classes is not None:
        if not isinstance(cfg.num_classes, int) or isinstance(cfg.num_classes, bool) or cfg.num_classes < 2:
            raise ValueError(f"num_classes={cfg.num_classes!r} is invalid: expected None or an int >= 2.")
        _check_positive_int("class_embed_dim", cfg.class_embed_dim)
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"activation={cfg.activation!r} is not supported: expected one of {ACTIVATIONS}.")
    if cfg.architecture == "conv":
        conv_schedule(cfg.image_size)
        _check_positive_int("base_channels", cfg.base_channels)
        _check_positive_int("hidden_dim", cfg.hidden_dim)
    else:
        if not isinstance(cfg.hidden_dims, (list, tuple)) or len(cfg.hidden_dims) == 0:
            raise ValueError(f"hidden_dims={cfg.hidden_dims!r} is invalid: expected a non-empty list of positive ints.")
        for width in cfg.hidden_dims:
            _check_positive_int("hidden_dims entry", width)


# ----------------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------------


def make_activation(name: str) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    raise ValueError(f"activation={name!r} is not supported: expected one of {ACTIVATIONS}.")


def randn(shape, generator: torch.Generator | None = None, device=None, dtype=None) -> torch.Tensor:
    """``torch.randn`` drawn on the generator's device, then moved: the same seed gives the same numbers
    whatever device the model lives on (as diffusers' ``randn_tensor``)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    sample = torch.randn(shape, generator=generator, device=gen_device, dtype=dtype or torch.float32)
    return sample.to(device) if device is not None else sample


def sample_latents(cfg, batch_size: int, generator=None, device=None, dtype=None, temperature: float = 1.0):
    """The one place prior latents are drawn: VAEModel.generate, the pipeline and the CLI all call it."""
    return randn((batch_size, cfg.latent_dim), generator=generator, device=device, dtype=dtype) * temperature


def check_class_labels(cfg, class_labels, batch_size: int, device=None) -> torch.Tensor | None:
    """Validate and convert ``class_labels`` (int, list or tensor) for a model with ``cfg.num_classes``."""
    if cfg.num_classes is None:
        if class_labels is not None:
            raise ValueError("class_labels were given, but this model is unconditional (num_classes=None).")
        return None
    if class_labels is None:
        raise ValueError(
            f"This model is class-conditional (num_classes={cfg.num_classes}): pass class_labels, "
            f"ints in [0, {cfg.num_classes - 1}]."
        )
    if isinstance(class_labels, int) and not isinstance(class_labels, bool):
        class_labels = [class_labels] * batch_size
    labels = torch.as_tensor(class_labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.ndim != 1:
        raise ValueError(
            f"class_labels must be a 1-D sequence of ints, got dtype {labels.dtype} and shape {tuple(labels.shape)}."
        )
    if labels.shape[0] != batch_size:
        raise ValueError(f"class_labels has {labels.shape[0]} entries, expected one per image ({batch_size}).")
    if labels.numel() and (labels.min() < 0 or labels.max() >= cfg.num_classes):
        bad = labels[(labels < 0) | (labels >= cfg.num_classes)][0].item()
        raise ValueError(f"class label {bad} is out of range: expected ints in [0, {cfg.num_classes - 1}].")
    return labels.to(device=device, dtype=torch.long)


def check_latents(cfg, latents) -> None:
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
        raise ValueError(f"latents must be a floating-point tensor, got {type(latents).__name__}.")
    if latents.ndim != 2 or latents.shape[1] != cfg.latent_dim:
        raise ValueError(f"latents have shape {tuple(latents.shape)}, expected (batch_size, {cfg.latent_dim}).")


def logits_to_images(logits: torch.Tensor) -> torch.Tensor:
    """Decoder output -> images in [0, 1] (the likelihood's mean)."""
    return torch.sigmoid(logits)


# ----------------------------------------------------------------------------------------------------------------------
# MLP (the article's networks)
# ----------------------------------------------------------------------------------------------------------------------


class MLPEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        in_dim = cfg.num_channels * cfg.image_size**2 + (cfg.class_embed_dim if cfg.num_classes else 0)
        layers = []
        for width in cfg.hidden_dims:  # article: 784 -> 128 -> 64
            layers += [nn.Linear(in_dim, width), make_activation(cfg.activation)]
            in_dim = width
        self.net = nn.Sequential(*layers)
        self.mean = nn.Linear(in_dim, cfg.latent_dim)
        self.logvar = nn.Linear(in_dim, cfg.latent_dim)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        x = images.flatten(1)  # (N, C*H*W)
        if self.label_embedding is not None:
            x = torch.cat([x, self.label_embedding(class_labels)], dim=1)
        h = self.net(x)  # (N, hidden_dims[-1])
        return self.mean(h), self.logvar(h)  # (N, z), (N, z)


class MLPDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.image_shape = (cfg.num_channels, cfg.image_size, cfg.image_size)
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if cfg.num_classes else 0)
        layers = []
        for width in reversed(cfg.hidden_dims):  # article: z -> 64 -> 128
            layers += [nn.Linear(in_dim, width), make_activation(cfg.activation)]
            in_dim = width
        layers += [nn.Linear(in_dim, math.prod(self.image_shape))]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, self.label_embedding(class_labels)], dim=1)
        return self.net(latents).view(-1, *self.image_shape)  # (N, C, H, W) logits


# ----------------------------------------------------------------------------------------------------------------------
# Convolutional VAE
# ----------------------------------------------------------------------------------------------------------------------


class ConvEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        initial_size, stages = conv_schedule(cfg.image_size)
        channels, layers, in_ch = cfg.base_channels, [], cfg.num_channels
        for _ in range(stages):  # each stage halves the size and doubles the channels
            layers += [nn.Conv2d(in_ch, channels, 4, 2, 1), make_activation(cfg.activation)]
            in_ch, channels = channels, channels * 2
        self.net = nn.Sequential(*layers)
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        flat = in_ch * initial_size**2 + (cfg.class_embed_dim if cfg.num_classes else 0)
        self.hidden = nn.Sequential(nn.Linear(flat, cfg.hidden_dim), make_activation(cfg.activation))
        self.mean = nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.logvar = nn.Linear(cfg.hidden_dim, cfg.latent_dim)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        h = self.net(images).flatten(1)  # (N, ch * 2**(n-1) * s0 * s0)
        if self.label_embedding is not None:
            h = torch.cat([h, self.label_embedding(class_labels)], dim=1)
        h = self.hidden(h)  # (N, hidden_dim)
        return self.mean(h), self.logvar(h)  # (N, z), (N, z)


class ConvDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        initial_size, stages = conv_schedule(cfg.image_size)
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if cfg.num_classes else 0)
        channels = cfg.base_channels * 2 ** (stages - 1)
        self.initial_shape = (channels, initial_size, initial_size)
        self.fc = nn.Sequential(
            nn.Linear(in_dim, cfg.hidden_dim),
            make_activation(cfg.activation),
            nn.Linear(cfg.hidden_dim, math.prod(self.initial_shape)),
            make_activation(cfg.activation),
        )
        layers = []
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1), make_activation(cfg.activation)]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, cfg.num_channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, self.label_embedding(class_labels)], dim=1)
        h = self.fc(latents).view(-1, *self.initial_shape)  # (N, ch * 2**(n-1), s0, s0)
        return self.net(h)  # (N, C, H, W) logits


def build_encoder(cfg) -> nn.Module:
    validate_vae_config(cfg)
    return ConvEncoder(cfg) if cfg.architecture == "conv" else MLPEncoder(cfg)


def build_decoder(cfg) -> nn.Module:
    validate_vae_config(cfg)
    return ConvDecoder(cfg) if cfg.architecture == "conv" else MLPDecoder(cfg)


# ----------------------------------------------------------------------------------------------------------------------
# Likelihoods: -log p(x | z) summed over pixels, one value per image (nats)
# ----------------------------------------------------------------------------------------------------------------------


def reconstruction_nll(cfg, logits: torch.Tensor, images: torch.Tensor, log_scale: torch.Tensor | None = None):
    """Negative log-likelihood of ``images`` (in [0, 1]) under the decoder output ``logits``; shape (N,).

    * bernoulli: binary cross-entropy with logits, exact for binary data; for grey levels it is a
      cross-entropy, not a likelihood, so report it as NLL only on binarized data.
    * gaussian: N(x; sigmoid(logits), sigma^2) with sigma = exp(log_scale) (learned, one per channel) or
      ``gaussian_fixed_std``.
    """
    if cfg.likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none")
    else:
        mean = torch.sigmoid(logits)
        if cfg.gaussian_variance == "learned":
            log_sigma = log_scale.view(1, -1, 1, 1)
        else:
            log_sigma = torch.full((), math.log(cfg.gaussian_fixed_std), dtype=logits.dtype, device=logits.device)
        nll = 0.5 * ((images - mean) * torch.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1)
