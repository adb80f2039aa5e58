"""Plain-PyTorch GAN networks, their architecture registry and the validation of their hyper-parameters.

This file imports only torch (and the shared ``modeling_utils``), so ``hf-dgm sample`` can build a generator and load
its weights without importing transformers. ``configuration_gan.py`` calls :func:`validate_gan_config`, so the fast
path and the Hugging Face classes check the same rules.

Architectures (``ARCHITECTURES``; add one there, with its config fields and their validation):

* ``mlp``: the seed article's networks. G: z -> 128 -> 128 -> C*H*W (tanh); D: C*H*W -> 128 -> 128 -> 1 (logit),
  leaky ReLU between layers. Widths are ``generator_hidden_dims`` / ``discriminator_hidden_dims``.
* ``dcgan``: Radford et al. (2015). G: a transposed convolution from the 1x1 latent to an ``initial_size`` map,
  then stride-2 transposed convolutions, BatchNorm + ReLU, tanh output. D: stride-2 convolutions + LeakyReLU(0.2),
  BatchNorm on every block except the first (none on D's input), a final linear layer to one logit.
* ``resnet``: the residual networks of SNGAN (Miyato et al., 2018) and BigGAN, for 28 to 128 px. G: a linear layer
  to an ``initial_size`` map, one up-block per doubling (BN-ReLU-upsample-conv3-BN-ReLU-conv3 + a 1x1 shortcut;
  the BatchNorms are conditional on the class in conditional models), BN-ReLU-conv3-tanh. D: one down-block per
  halving (the first without a leading ReLU), ReLU, sum over space, a linear logit plus the class projection
  (Miyato & Koyama, 2018). Spectral norm in D and the hinge loss are its defaults (as in those papers).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling_utils import (
    check_bool,
    check_choice,
    check_common_fields,
    check_dims,
    check_positive_int,
    conv_schedule,
    make_activation,
    sample_latents,
)


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


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift come from the class (de Vries et al., 2017; BigGAN); plain BatchNorm when the
    model is unconditional."""

    def __init__(self, num_features: int, num_classes: int | None):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=num_classes is None)
        self.scale_shift = None  # one (scale, shift) row per class, starting as the identity
        if num_classes:
            self.scale_shift = nn.Parameter(
                torch.cat([torch.ones(num_classes, num_features), torch.zeros(num_classes, num_features)], 1)
            )

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.bn(x)
        if self.scale_shift is None:
            return x
        scale, shift = self.scale_shift[class_labels][:, :, None, None].chunk(2, dim=1)  # (N, C, 1, 1) each
        return x * scale + shift


class ResidualUpBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_classes: int | None):
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_channels, num_classes)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = ConditionalBatchNorm2d(out_channels, num_classes)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, class_labels)), scale_factor=2.0)  # (N, in, 2s, 2s)
        h = self.conv2(F.relu(self.norm2(self.conv1(h), class_labels)))  # (N, out, 2s, 2s)
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0))


class ResNetGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        initial_size, stages = conv_schedule(cfg.image_size)
        channels = cfg.generator_channels * 2 ** (stages - 1)
        self.initial_shape = (channels, initial_size, initial_size)
        self.linear = nn.Linear(cfg.latent_dim, math.prod(self.initial_shape))
        blocks = []
        for i in range(stages):  # each block doubles the size; the channels halve down to generator_channels
            out = max(cfg.generator_channels, channels // 2) if i < stages - 1 else cfg.generator_channels
            blocks.append(ResidualUpBlock(channels, out, cfg.num_classes))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.BatchNorm2d(channels)
        self.to_image = nn.Conv2d(channels, cfg.num_channels, 3, 1, 1)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.linear(latents).view(-1, *self.initial_shape)  # (N, ch * 2**(n-1), s0, s0)
        for block in self.blocks:
            h = block(h, class_labels)  # doubles the size
        return torch.tanh(self.to_image(F.relu(self.norm(h))))  # (N, C, H, W) in [-1, 1]


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


class ResidualDownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, spectral_norm: bool, first: bool):
        super().__init__()
        self.first = first  # D's input block: no ReLU before its first convolution, pooling before its shortcut
        self.conv1 = _sn(nn.Conv2d(in_channels, out_channels, 3, 1, 1), spectral_norm)
        self.conv2 = _sn(nn.Conv2d(out_channels, out_channels, 3, 1, 1), spectral_norm)
        self.shortcut = _sn(nn.Conv2d(in_channels, out_channels, 1), spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = F.avg_pool2d(self.conv2(F.relu(h)), 2)  # (N, out, s/2, s/2)
        shortcut = self.shortcut(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.shortcut(x), 2)
        return h + shortcut


class ResNetDiscriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        _, stages = conv_schedule(cfg.image_size)
        channels, in_channels, blocks = cfg.discriminator_channels, cfg.num_channels, []
        for i in range(stages):  # each block halves the size; the channels double from discriminator_channels
            blocks.append(ResidualDownBlock(in_channels, channels, cfg.spectral_norm, first=i == 0))
            in_channels, channels = channels, channels * 2
        self.blocks = nn.Sequential(*blocks)
        self.minibatch_std = cfg.minibatch_std
        self.head = _DiscriminatorHead(cfg, in_channels + (1 if cfg.minibatch_std else 0))

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        h = F.relu(self.blocks(images))  # (N, ch * 2**(n-1), s0, s0)
        if self.minibatch_std:
            h = minibatch_stddev(h)
        features = h.sum(dim=(2, 3))  # (N, F): sum pooling over space (SNGAN)
        return self.head(features, class_labels), features


def _validate_mlp(cfg) -> None:
    check_dims("generator_hidden_dims", cfg.generator_hidden_dims)
    check_dims("discriminator_hidden_dims", cfg.discriminator_hidden_dims)


def _validate_convolutional(cfg) -> None:
    conv_schedule(cfg.image_size)
    check_positive_int("generator_channels", cfg.generator_channels)
    check_positive_int("discriminator_channels", cfg.discriminator_channels)


@torch.no_grad()
def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: all weights from N(0, 0.02); BatchNorm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)


@torch.no_grad()
def pytorch_default_init(module: nn.Module) -> None:
    """PyTorch's own initialisation (the article's MLPs)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.reset_parameters()


@torch.no_grad()
def resnet_init(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases (SNGAN); class-conditional BatchNorm starts as the identity."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.xavier_uniform_(weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):  # the class projection of D
        nn.init.xavier_uniform_(module.weight)
    elif isinstance(module, ConditionalBatchNorm2d) and module.scale_shift is not None:
        scale, shift = module.scale_shift.chunk(2, dim=1)
        nn.init.ones_(scale)
        nn.init.zeros_(shift)


@dataclass(frozen=True)
class GANArchitecture:
    generator: Callable[..., nn.Module]
    discriminator: Callable[..., nn.Module]
    validate: Callable[..., None]  # checks the architecture's own config fields
    init_weights: Callable[[nn.Module], None]  # applied to every submodule by GANModel._init_weights
    fields: tuple[str, ...] = ()  # the config fields it reads that not every architecture reads
    spectral_norm: bool = False  # the default of config.spectral_norm (unset)
    loss: str = "non_saturating"  # the adversarial loss `hf-dgm train gan` uses unless --loss is given


_CONV_FIELDS = ("generator_channels", "discriminator_channels")
ARCHITECTURES = {
    "mlp": GANArchitecture(
        MLPGenerator, MLPDiscriminator, _validate_mlp, pytorch_default_init,
        fields=("generator_hidden_dims", "discriminator_hidden_dims", "activation", "class_embed_dim"),
    ),
    "dcgan": GANArchitecture(
        DCGANGenerator, DCGANDiscriminator, _validate_convolutional, dcgan_init, fields=(*_CONV_FIELDS, "class_embed_dim")
    ),
    "resnet": GANArchitecture(  # SNGAN: spectral norm and the hinge loss
        ResNetGenerator, ResNetDiscriminator, _validate_convolutional, resnet_init, fields=_CONV_FIELDS,
        spectral_norm=True, loss="hinge",
    ),
}  # fmt: skip


def validate_gan_config(cfg) -> None:
    """Check every architecture field of a GAN config (an object with attributes, e.g. ``GANConfig``)."""
    check_choice("architecture", cfg.architecture, ARCHITECTURES)
    check_common_fields(cfg)
    ARCHITECTURES[cfg.architecture].validate(cfg)
    if not isinstance(cfg.minibatch_discrimination_kernels, int) or cfg.minibatch_discrimination_kernels < 0:
        raise ValueError(
            f"minibatch_discrimination_kernels={cfg.minibatch_discrimination_kernels!r} is invalid: "
            "expected an int >= 0 (0 turns minibatch discrimination off)."
        )
    if cfg.minibatch_discrimination_kernels:
        check_positive_int("minibatch_discrimination_dim", cfg.minibatch_discrimination_dim)
    for flag in ("spectral_norm", "minibatch_std", "use_ema"):
        check_bool(flag, getattr(cfg, flag))


def build_generator(cfg) -> nn.Module:
    validate_gan_config(cfg)
    return ARCHITECTURES[cfg.architecture].generator(cfg)


def build_discriminator(cfg) -> nn.Module:
    validate_gan_config(cfg)
    return ARCHITECTURES[cfg.architecture].discriminator(cfg)


# ----------------------------------------------------------------------------------------------------------------------
# The fast sampling path (hf-dgm sample): the network that turns latents into images, and how
# ----------------------------------------------------------------------------------------------------------------------


def sampling_network(cfg) -> tuple[nn.Module, str]:
    """The generator `hf-dgm sample` runs (the EMA copy when present) and the prefix of its weights."""
    return build_generator(cfg), ("generator_ema." if cfg.use_ema else "generator.")


def prior_latents(cfg, num_images: int, generator, temperature: float = 1.0) -> torch.Tensor:
    """Latents drawn as GANPipeline draws them. GANs have no prior temperature."""
    if temperature != 1.0:
        raise ValueError(f"temperature={temperature!r}: a prior temperature applies to VAEs only; a GAN samples at 1.")
    return sample_latents(cfg, num_images, generator)


def images_from_latents(cfg, net: nn.Module, latents: torch.Tensor, class_labels=None, generator=None) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] from the sampling network, as GANPipeline maps them (`generator` is unused: a
    GAN's image is a function of its latent)."""
    return ((net(latents, class_labels) + 1.0) / 2.0).clamp(0.0, 1.0)
