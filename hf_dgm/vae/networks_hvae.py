"""The hierarchical VAE (``architecture="hierarchical"``): plain-PyTorch networks, imported by ``networks_vae``.

A small NVAE / VDVAE (Vahdat & Kautz, 2020; Child, 2021; Hazami et al., 2022):

* a bottom-up encoder of residual cells, from the image down to the coarsest latent resolution, halving the size and
  doubling the width at each stage (``base_channels`` at full resolution), keeping its features at each resolution;
* a top-down decoder that starts from a learned map at the coarsest resolution and, for each latent group (its
  resolutions, coarse to fine, are ``latent_groups``), computes the prior p(z_g | z_<g) from its state, draws z_g
  and adds it back to the state through residual cells; after the last group it upsamples to the image and outputs
  the likelihood's parameters (``networks_vae.output_channels``);
* a posterior q(z_g | z_<g, x) that is a residual correction of the prior (NVAE): its mean is the prior's plus a
  shift and its log-scale the prior's plus a change, both computed from the decoder's state and the encoder's
  features at the group's resolution. KL(q || p) of each group is then exact and computed in closed form.

The "latents" of this architecture (``latent_dim`` values per image) are the prior-standardised noise of every group,
flattened and concatenated coarse to fine: z_g = mean_p + scale_p * eps_g. The decoder turns them into images in one
pass, so a temperature T (eps ~ N(0, T^2 I)) scales each group's prior standard deviation, as in NVAE; the encoder
gives the eps of the posterior along its mean path (``TopDown.posterior``). This file imports torch and the shared
``modeling_utils`` only.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling_utils import check_positive_int, check_temperature, conv_schedule, embed_classes, make_activation


def latent_resolutions(cfg) -> list[int]:
    """The latent groups' resolutions, coarse to fine: ``latent_groups``, or by default one group at each
    resolution of the convolutional schedule below the image's (28 px: 7, 14; 64 px: 4, 8, 16, 32)."""
    groups = getattr(cfg, "latent_groups", None)
    if groups is None:
        initial, stages = conv_schedule(cfg.image_size)
        return [initial * 2**k for k in range(stages)]
    return list(groups)


def latent_positions(cfg) -> int:
    """Latent positions per channel: the sum of the groups' areas."""
    return sum(r * r for r in latent_resolutions(cfg))


def latent_channels(cfg) -> int:
    """Channels of each latent group: ``latent_dim`` / the groups' total area."""
    return cfg.latent_dim // latent_positions(cfg)


def group_temperatures(cfg, temperatures) -> torch.Tensor:
    """One temperature per latent group (coarse to fine) -> the scale of each latent value, (latent_dim,)."""
    groups = latent_resolutions(cfg)
    if len(temperatures) != len(groups):
        raise ValueError(
            f"temperature={list(temperatures)!r} has {len(temperatures)} values: expected one number, or one per "
            f"latent group ({len(groups)}, at {groups})."
        )
    for value in temperatures:
        check_temperature(value)
    sizes = [latent_channels(cfg) * r * r for r in groups]
    return torch.cat([torch.full((n,), float(t)) for t, n in zip(temperatures, sizes, strict=True)])


def width(cfg, resolution: int) -> int:
    """Channels of the encoder and decoder at a resolution: ``base_channels`` at the image's, doubled at each halving."""
    return cfg.base_channels * (cfg.image_size // resolution)


def validate_hierarchical(cfg) -> None:
    """The hierarchical architecture's fields; one clear line for the first bad value."""
    conv_schedule(cfg.image_size)
    check_positive_int("base_channels", cfg.base_channels)
    check_positive_int("cells_per_resolution", getattr(cfg, "cells_per_resolution", 1))
    groups = getattr(cfg, "latent_groups", None)
    if groups is not None:
        sizes = [cfg.image_size // 2**k for k in range(cfg.image_size.bit_length()) if cfg.image_size % 2**k == 0]
        ok = isinstance(groups, (list, tuple)) and len(groups) > 0
        ok = ok and all(isinstance(r, int) and not isinstance(r, bool) and r in sizes for r in groups)
        if not (ok and list(groups) == sorted(groups)):
            raise ValueError(
                f"latent_groups={groups!r} is invalid for image_size={cfg.image_size}: expected a non-empty list of "
                f"resolutions, coarse to fine (repeats allowed), each one of {sorted(sizes)}."
            )
    positions = latent_positions(cfg)
    if cfg.latent_dim % positions:
        raise ValueError(
            f"latent_dim={cfg.latent_dim!r} is invalid for the hierarchical architecture with latent groups at "
            f"{latent_resolutions(cfg)}: expected a multiple of their {positions} positions (channels per group x "
            f"{positions})."
        )


class ScaledConv2d(nn.Conv2d):
    """A convolution whose initial weights are PyTorch's default times ``init_scale`` (0: a layer that starts at zero,
    so a residual branch or a posterior correction starts switched off). Its ``reset_parameters`` keeps the scale, so
    transformers' weight initialisation keeps it too."""

    def __init__(self, *args, init_scale: float = 1.0, **kwargs):
        self.init_scale = init_scale
        super().__init__(*args, **kwargs)

    def reset_parameters(self):
        super().reset_parameters()
        with torch.no_grad():
            self.weight.mul_(self.init_scale)
            if self.bias is not None:
                self.bias.mul_(self.init_scale)


class Cell(nn.Module):
    """A residual bottleneck cell (VDVAE): activation, 1x1 to a quarter of the width, two 3x3, 1x1 back, plus the
    input (or, where the widths differ, only the branch). No normalisation: an image's likelihood does not depend on
    its batch."""

    def __init__(self, in_channels: int, out_channels: int, activation: str, residual_scale: float = 0.1):
        super().__init__()
        mid = max(out_channels // 4, 4)
        self.residual = in_channels == out_channels
        self.net = nn.Sequential(
            make_activation(activation),
            nn.Conv2d(in_channels, mid, 1),
            make_activation(activation),
            nn.Conv2d(mid, mid, 3, padding=1),
            make_activation(activation),
            nn.Conv2d(mid, mid, 3, padding=1),
            make_activation(activation),
            ScaledConv2d(mid, out_channels, 1, init_scale=residual_scale if self.residual else 1.0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x) if self.residual else self.net(x)


def _cells(cfg, channels: int) -> list[nn.Module]:
    return [Cell(channels, channels, cfg.activation) for _ in range(getattr(cfg, "cells_per_resolution", 1))]


class HierarchicalEncoder(nn.Module):
    """Bottom-up: images (N, C, H, W) in [0, 1] (and labels) -> {resolution: features (N, width, r, r)} at each
    resolution from the image's down to the coarsest latent group's."""

    def __init__(self, cfg):
        super().__init__()
        self.coarsest = latent_resolutions(cfg)[0]
        self.stem = nn.Conv2d(cfg.num_channels, width(cfg, cfg.image_size), 3, padding=1)
        self.label_embedding = nn.Embedding(cfg.num_classes, width(cfg, cfg.image_size)) if cfg.num_classes else None
        self.stages, self.downs = nn.ModuleList(), nn.ModuleList()
        resolution = cfg.image_size
        while True:
            self.stages.append(nn.Sequential(*_cells(cfg, width(cfg, resolution))))
            if resolution == self.coarsest:
                break
            self.downs.append(nn.Conv2d(width(cfg, resolution), width(cfg, resolution // 2), 1))
            resolution //= 2

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        h = self.stem(images * 2.0 - 1.0)
        if self.label_embedding is not None:
            h = h + self.label_embedding(class_labels)[:, :, None, None]
        features = {}
        for index, stage in enumerate(self.stages):
            h = stage(h)
            features[h.shape[-1]] = h
            if index < len(self.downs):
                h = self.downs[index](F.avg_pool2d(h, 2))
        return features


def _soft_clamp(x: torch.Tensor, bound: float = 5.0) -> torch.Tensor:
    """Log-scales kept within (-bound, bound) smoothly (NVAE): no overflow, gradients everywhere."""
    return bound * torch.tanh(x / bound)


@dataclass
class GroupResult:
    """One top-down pass, per image: ``kl`` (N, G) nats of KL(q || p) per group (zeros when sampling the prior),
    ``log_ratio`` (N,) log p(z) - log q(z | x) of the drawn z, and the posterior in prior-standardised noise:
    ``eps_mean``, ``eps_std`` (N, latent_dim) of the pass's z_<g, and the drawn ``eps`` (N, latent_dim)."""

    kl: torch.Tensor
    log_ratio: torch.Tensor
    eps_mean: torch.Tensor
    eps_std: torch.Tensor
    eps: torch.Tensor


class TopDownGroup(nn.Module):
    """One latent group at `resolution`: upsample the state if it is coarser, prior p(z | state), posterior as its
    residual correction from the encoder's features, z added back to the state."""

    def __init__(self, cfg, previous: int, resolution: int, channels: int):
        super().__init__()
        w, self.scale = width(cfg, resolution), resolution // previous
        self.up = nn.Conv2d(width(cfg, previous), w, 1) if self.scale > 1 else None
        self.prior_cell = Cell(w, w, cfg.activation)
        self.prior = ScaledConv2d(w, 2 * channels, 1, init_scale=0.0)  # starts as N(0, I)
        self.posterior = nn.Sequential(
            Cell(2 * w, w, cfg.activation), ScaledConv2d(w, 2 * channels, 1, init_scale=0.0)
        )  # starts as the prior
        self.project = ScaledConv2d(channels, w, 1, init_scale=0.1)
        self.out_cell = Cell(w, w, cfg.activation)

    def forward(self, h: torch.Tensor, noise: torch.Tensor, features: torch.Tensor | None = None):
        """State, this group's noise (N, c, r, r) and, for the posterior, the encoder's features -> (new state, z,
        KL (N,), log p(z) - log q(z) (N,), eps mean and std of the posterior, eps of z)."""
        if self.up is not None:
            h = self.up(F.interpolate(h, scale_factor=self.scale, mode="nearest"))
        h = self.prior_cell(h)
        prior_mean, prior_log_scale = self.prior(h).chunk(2, 1)
        prior_log_scale = _soft_clamp(prior_log_scale)
        if features is None:  # a draw from the prior: z = mean + scale * eps
            z = prior_mean + torch.exp(prior_log_scale) * noise
            zero = noise.new_zeros(noise.shape[0])
            eps_mean, eps_std, kl, log_ratio = torch.zeros_like(noise), torch.ones_like(noise), zero, zero
        else:  # q = N(mean_p + shift, (scale_p * exp(change))^2), a draw z = mean_q + scale_q * noise
            shift, change = self.posterior(torch.cat([h, features], 1)).chunk(2, 1)
            change = _soft_clamp(change)
            eps_mean, eps_std = shift * torch.exp(-prior_log_scale), torch.exp(change)  # q in the prior's units
            z = prior_mean + torch.exp(prior_log_scale) * (eps_mean + eps_std * noise)
            kl = (0.5 * (eps_mean.pow(2) + eps_std.pow(2) - 1.0) - change).flatten(1).sum(1)
            eps_drawn = eps_mean + eps_std * noise
            log_ratio = (0.5 * noise.pow(2) - 0.5 * eps_drawn.pow(2) + change).flatten(1).sum(1)  # log p - log q
        h = self.out_cell(h + self.project(z))
        eps = (z - prior_mean) * torch.exp(-prior_log_scale)
        return h, kl, log_ratio, eps_mean, eps_std, eps


class HierarchicalDecoder(nn.Module):
    """Top-down: latents (N, latent_dim), the groups' prior-standardised noise, (and labels) -> the likelihood's
    parameters (N, output_channels, H, W) in one pass (``forward``, the sampling network); with the encoder's
    features, the posterior pass (``posterior``)."""

    def __init__(self, cfg, out_channels: int, pixel_context: nn.Module | None = None):
        super().__init__()
        self.pixel_context = pixel_context  # None: decoded in one pass; else each pixel also given those before it
        resolutions = latent_resolutions(cfg)
        self.resolutions, self.channels = resolutions, latent_channels(cfg)
        coarsest = resolutions[0]
        self.top = nn.Parameter(torch.zeros(1, width(cfg, coarsest), coarsest, coarsest))
        self.label_embedding = nn.Embedding(cfg.num_classes, width(cfg, coarsest)) if cfg.num_classes else None
        previous = [coarsest, *resolutions[:-1]]
        self.groups = nn.ModuleList(
            TopDownGroup(cfg, p, r, self.channels) for p, r in zip(previous, resolutions, strict=True)
        )
        tail, resolution = [], resolutions[-1]
        while resolution < cfg.image_size:
            tail += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(width(cfg, resolution), width(cfg, 2 * resolution), 1),
            ]
            resolution *= 2
            tail += _cells(cfg, width(cfg, resolution))
        tail += [make_activation(cfg.activation), nn.Conv2d(width(cfg, cfg.image_size), out_channels, 1)]
        self.tail = nn.Sequential(*tail)

    def reset_parameters(self):
        nn.init.zeros_(self.top)

    def split(self, latents: torch.Tensor) -> list[torch.Tensor]:
        """(N, latent_dim) -> each group's (N, c, r, r), coarse to fine."""
        sizes = [self.channels * r * r for r in self.resolutions]
        parts = latents.split(sizes, dim=1)
        return [p.reshape(-1, self.channels, r, r) for p, r in zip(parts, self.resolutions, strict=True)]

    def run(self, latents: torch.Tensor, class_labels=None, features: dict | None = None):
        """The top-down pass -> (output, GroupResult); `latents` are the prior's eps, or with `features` the
        posterior's standard noise."""
        h = self.top.expand(latents.shape[0], -1, -1, -1)
        if self.label_embedding is not None:
            h = h + embed_classes(self.label_embedding.weight, class_labels)[:, :, None, None]
        results = []
        for group, noise in zip(self.groups, self.split(latents), strict=True):
            h, *result = group(h, noise, None if features is None else features[noise.shape[-1]])
            results.append(result)
        kl, log_ratio, eps_mean, eps_std, eps = zip(*results, strict=True)
        flat = [torch.cat([t.flatten(1) for t in parts], 1) for parts in (eps_mean, eps_std, eps)]
        result = GroupResult(torch.stack(kl, 1), sum(log_ratio), *flat)
        return self.tail(h), result

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(latents, class_labels)[0]

    def posterior(self, features: dict, noise: torch.Tensor, class_labels=None):
        """The posterior pass: z_g ~ q(z_g | z_<g, x) with standard `noise` (N, latent_dim) (zeros: the mean path)."""
        return self.run(noise, class_labels, features)
