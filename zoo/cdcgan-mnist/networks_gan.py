"""Plain-PyTorch GAN networks and the validation of their hyper-parameters.

This file imports nothing but torch, so ``hf-dgm sample`` can build a generator and load its weights without
importing transformers (see the speed issue). ``configuration_gan.py`` calls :func:`validate_gan_config` so the
fast path and the Hugging Face classes check exactly the same rules. It travels with saved models
(``trust_remote_code``) and may only import siblings of this folder.

Architectures:

* ``mlp``: the seed article's networks. G: z -> 128 -> 128 -> C*H*W (tanh); D: C*H*W -> 128 -> 128 -> 1 (logit),
  leaky ReLU between layers. Widths are ``generator_hidden_dims`` / ``discriminator_hidden_dims``.
* ``dcgan``: Radford et al. (2015). G: a transposed convolution from the 1x1 latent to an ``initial_size`` map,
  then stride-2 transposed convolutions, BatchNorm + ReLU, tanh output. D: stride-2 convolutions + LeakyReLU(0.2),
  BatchNorm on every block except the first (none on D's input), a final linear layer to one logit.
"""

import math

import torch
from torch import nn

ARCHITECTURES = ("mlp", "dcgan")
ACTIVATIONS = ("leaky_relu", "relu", "tanh", "sigmoid")


# ----------------------------------------------------------------------------------------------------------------------
# Validation (shared by GANConfig and the no-transformers fast path)
# ----------------------------------------------------------------------------------------------------------------------


def conv_schedule(image_size: int) -> tuple[int, int]:
    """Return ``(initial_size, num_upsamplings)`` such that ``image_size == initial_size * 2**num_upsamplings``.

    The largest number of stride-2 stages is used that leaves an initial map between 3 and 7 pixels wide
    (28 -> 7 x 2**2, 32 -> 4 x 2**3, 64 -> 4 x 2**4). Raises ``ValueError`` for sizes the depth can't produce.
    """
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


def _check_dims(name: str, value) -> None:
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise ValueError(f"{name}={value!r} is invalid: expected a non-empty list of positive ints.")
    for v in value:
        _check_positive_int(f"{name} entry", v)


def validate_gan_config(cfg) -> None:
    """Check every architecture field of a GAN config (an object with attributes, e.g. ``GANConfig``)."""
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={cfg.architecture!r} is not supported: expected one of {ARCHITECTURES}.")
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
    if cfg.architecture == "dcgan":
        conv_schedule(cfg.image_size)
        _check_positive_int("generator_channels", cfg.generator_channels)
        _check_positive_int("discriminator_channels", cfg.discriminator_channels)
    else:
        _check_dims("generator_hidden_dims", cfg.generator_hidden_dims)
        _check_dims("discriminator_hidden_dims", cfg.discriminator_hidden_dims)
    if not isinstance(cfg.minibatch_discrimination_kernels, int) or cfg.minibatch_discrimination_kernels < 0:
        raise ValueError(
            f"minibatch_discrimination_kernels={cfg.minibatch_discrimination_kernels!r} is invalid: "
            "expected an int >= 0 (0 turns minibatch discrimination off)."
        )
    if cfg.minibatch_discrimination_kernels:
        _check_positive_int("minibatch_discrimination_dim", cfg.minibatch_discrimination_dim)
    for flag in ("spectral_norm", "minibatch_std", "use_ema"):
        if not isinstance(getattr(cfg, flag), bool):
            raise ValueError(f"{flag}={getattr(cfg, flag)!r} is invalid: expected true or false.")


# ----------------------------------------------------------------------------------------------------------------------
# Small helpers
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


def sample_latents(cfg, batch_size: int, generator: torch.Generator | None = None, device=None, dtype=None):
    """The one place latents are drawn: GANModel.generate, the pipeline and the CLI all call it."""
    return randn((batch_size, cfg.latent_dim), generator=generator, device=device, dtype=dtype)


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


def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


# ----------------------------------------------------------------------------------------------------------------------
# Discriminator add-ons from "Improved Techniques for Training GANs" and ProGAN
# ----------------------------------------------------------------------------------------------------------------------


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. (2016), section 3.2: features -> (B kernels x C dims); for each sample, the summed
    exp(-L1 distance) to every other sample in the batch is appended, so D can see a lack of diversity."""

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int):
        super().__init__()
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.T = nn.Parameter(torch.empty(in_features, num_kernels * kernel_dim))
        nn.init.normal_(self.T, 0.0, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = (x @ self.T).view(-1, self.num_kernels, self.kernel_dim)  # (N, B, C)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # (N, N, B)
        o = torch.exp(-l1).sum(1) - 1.0  # (N, B), minus the sample's distance to itself
        return torch.cat([x, o], dim=1)


def minibatch_stddev(x: torch.Tensor) -> torch.Tensor:
    """Karras et al. (2018): append one feature map holding the batch's mean standard deviation."""
    std = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)  # scalar
    return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


# ----------------------------------------------------------------------------------------------------------------------
# Generators
# ----------------------------------------------------------------------------------------------------------------------


class MLPGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.image_shape = (cfg.num_channels, cfg.image_size, cfg.image_size)
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if cfg.num_classes else 0)
        layers = []
        for width in cfg.generator_hidden_dims:
            layers += [nn.Linear(in_dim, width), make_activation(cfg.activation)]
            in_dim = width
        layers += [nn.Linear(in_dim, math.prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, self.label_embedding(class_labels)], dim=1)  # (N, z + e)
        return self.net(latents).view(-1, *self.image_shape)  # (N, C, H, W) in [-1, 1]


class DCGANGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        initial_size, stages = conv_schedule(cfg.image_size)
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if cfg.num_classes else 0)
        channels = cfg.generator_channels * 2 ** (stages - 1)
        # (N, z, 1, 1) -> (N, channels, s0, s0)
        layers = [
            nn.ConvTranspose2d(in_dim, channels, initial_size, 1, 0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):  # each stage doubles the size and halves the channels
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, cfg.num_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, self.label_embedding(class_labels)], dim=1)  # (N, z + e)
        return self.net(latents[:, :, None, None])  # (N, C, H, W) in [-1, 1]


# ----------------------------------------------------------------------------------------------------------------------
# Discriminators: features -> [minibatch discrimination] -> linear logit [+ class projection]
# ----------------------------------------------------------------------------------------------------------------------


class _DiscriminatorHead(nn.Module):
    """Final layer shared by both discriminators. Conditional models use the projection discriminator
    (Miyato & Koyama, 2018): logit += <embed(y), features>."""

    def __init__(self, cfg, in_features: int):
        super().__init__()
        self.minibatch = None
        if cfg.minibatch_discrimination_kernels:
            self.minibatch = MinibatchDiscrimination(
                in_features, cfg.minibatch_discrimination_kernels, cfg.minibatch_discrimination_dim
            )
            in_features += cfg.minibatch_discrimination_kernels
        self.linear = _sn(nn.Linear(in_features, 1), cfg.spectral_norm)
        self.class_projection = nn.Embedding(cfg.num_classes, in_features) if cfg.num_classes else None

    def forward(self, features: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.minibatch is not None:
            features = self.minibatch(features)  # (N, F + B)
        logits = self.linear(features)  # (N, 1)
        if self.class_projection is not None:
            logits = logits + (self.class_projection(class_labels) * features).sum(1, keepdim=True)
        return logits.squeeze(1)  # (N,)


class MLPDiscriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        in_dim = cfg.num_channels * cfg.image_size**2
        self.minibatch_std = cfg.minibatch_std
        in_dim += 1 if cfg.minibatch_std else 0
        layers = []
        for width in cfg.discriminator_hidden_dims:
            layers += [_sn(nn.Linear(in_dim, width), cfg.spectral_norm), make_activation(cfg.activation)]
            in_dim = width
        self.net = nn.Sequential(*layers)
        self.head = _DiscriminatorHead(cfg, in_dim)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        x = images.flatten(1)  # (N, C*H*W)
        if self.minibatch_std:
            x = torch.cat([x, x.std(dim=0, unbiased=False).mean().expand(x.shape[0], 1)], dim=1)
        features = self.net(x)  # (N, F)
        return self.head(features, class_labels), features


class DCGANDiscriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        initial_size, stages = conv_schedule(cfg.image_size)
        use_bn = not cfg.spectral_norm  # spectral normalization replaces BatchNorm (Miyato et al., 2018)
        channels = cfg.discriminator_channels
        # (N, C, H, W) -> (N, ch, H/2, W/2): no BatchNorm on D's input layer (Radford et al.)
        layers = [_sn(nn.Conv2d(cfg.num_channels, channels, 4, 2, 1), cfg.spectral_norm), nn.LeakyReLU(0.2, True)]
        for _ in range(stages - 1):
            layers += [_sn(nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=not use_bn), cfg.spectral_norm)]
            layers += [nn.BatchNorm2d(channels * 2)] if use_bn else []
            layers += [nn.LeakyReLU(0.2, True)]
            channels *= 2
        self.net = nn.Sequential(*layers)
        self.minibatch_std = cfg.minibatch_std
        in_features = (channels + (1 if cfg.minibatch_std else 0)) * initial_size**2
        self.head = _DiscriminatorHead(cfg, in_features)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        h = self.net(images)  # (N, ch * 2**(n-1), s0, s0)
        if self.minibatch_std:
            h = minibatch_stddev(h)  # (N, ch * 2**(n-1) + 1, s0, s0)
        features = h.flatten(1)  # (N, F)
        return self.head(features, class_labels), features


def build_generator(cfg) -> nn.Module:
    validate_gan_config(cfg)
    return DCGANGenerator(cfg) if cfg.architecture == "dcgan" else MLPGenerator(cfg)


def build_discriminator(cfg) -> nn.Module:
    validate_gan_config(cfg)
    return DCGANDiscriminator(cfg) if cfg.architecture == "dcgan" else MLPDiscriminator(cfg)
