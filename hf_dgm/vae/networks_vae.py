"""Plain-PyTorch VAE encoders/decoders, the decoder likelihoods and the validation of the hyper-parameters.

This file imports only torch (and the shared ``modeling_utils``), so ``hf-dgm sample`` can build a decoder and load
its weights without importing transformers. ``configuration_vae.py`` calls :func:`validate_vae_config`, so the fast
path and the Hugging Face classes check the same rules.

Architectures (``ARCHITECTURES``; add one there, with its config fields and their validation):

* ``mlp``: the seed article's networks. Encoder C*H*W -> 128 -> 64 -> (mean, log-variance); decoder
  z -> 64 -> 128 -> C*H*W, leaky ReLU. Widths are ``hidden_dims`` (the decoder mirrors them).
* ``conv``: stride-2 convolutions (``base_channels``, doubling each stage) -> a ``hidden_dim`` layer -> (mean,
  log-variance); the decoder mirrors it with stride-2 transposed convolutions.
* ``resnet``: the same stages and widths built from residual blocks (two 3x3 convolutions with pre-activation, a
  1x1 shortcut where the width changes; no normalisation, so the likelihood of an image does not depend on its
  batch): average pooling down in the encoder, nearest-neighbour upsampling in the decoder. For colour images.

Likelihoods (``LIKELIHOODS``; add one there, with its functions): ``bernoulli``, ``gaussian`` (fixed or learned
variance), ``discretized_logistic`` and ``logistic_mixture`` (exact probabilities of 8-bit images, PixelCNN++). The
decoder returns raw outputs ("logits"), as many channels as the likelihood needs; images are the likelihood's mean
(``sigmoid(logits)`` for the Bernoulli and Gaussian ones).

A decoder with a pixel context (``pixel_context`` = k > 0, the logistic mixture only; PixelVAE, Gulrajani et al., 2017)
also sees the image's earlier pixels in raster order: a k x k convolution masked to the pixels above and to the left,
then per-pixel 1x1 layers that adjust the decoder's output and pull each component towards a prediction from the
nearest earlier pixels (``PixelContext``). The likelihood of an image is then computed in one pass given the image
itself (``likelihood_output``); decoding is sequential, pixel by pixel, each pixel drawn from its mixture given the
decoded ones before it (``decode``).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling_utils import (
    check_choice,
    check_common_fields,
    check_dims,
    check_positive_int,
    check_temperature,
    conv_schedule,
    embed_classes,
    make_activation,
    one_intra_op_thread,
    sample_latents,
)
from .latent_prior import build_latent_prior, validate_latent_prior
from .networks_hvae import HierarchicalDecoder, HierarchicalEncoder, group_temperatures, validate_hierarchical

GAUSSIAN_VARIANCES = ("learned", "fixed")


def _num_couplings(channels: int) -> int:
    """Coefficients of the mixture's dependence of each sub-pixel on the earlier channels of its pixel."""
    return channels * (channels - 1) // 2


def pixel_context_size(cfg) -> int:
    """The pixel context's window k (0: none). Configs saved before the field existed have none."""
    return getattr(cfg, "pixel_context", 0)


def output_channels(cfg) -> int:
    """Channels of the decoder's output, as the likelihood (``LIKELIHOODS``) needs them."""
    return LIKELIHOODS[cfg.likelihood].output_channels(cfg)


def decoder_mean(cfg, output: torch.Tensor) -> torch.Tensor:
    """Decoder output -> images in [0, 1]: the likelihood's mean (``LIKELIHOODS``)."""
    return LIKELIHOODS[cfg.likelihood].mean(cfg, output)


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
        self.output_shape = (output_channels(cfg), cfg.image_size, cfg.image_size)
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if cfg.num_classes else 0)
        layers = []
        for width in reversed(cfg.hidden_dims):  # article: z -> 64 -> 128
            layers += [nn.Linear(in_dim, width), make_activation(cfg.activation)]
            in_dim = width
        layers += [nn.Linear(in_dim, math.prod(self.output_shape))]
        self.net = nn.Sequential(*layers)
        self.pixel_context = build_pixel_context(cfg)

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, embed_classes(self.label_embedding.weight, class_labels)], dim=1)
        return self.net(latents).view(-1, *self.output_shape)  # (N, C or 2C, H, W) decoder output


# ----------------------------------------------------------------------------------------------------------------------
# Convolutional VAE
# ----------------------------------------------------------------------------------------------------------------------


class _Encoder(nn.Module):
    """Shared by the convolutional encoders: their convolutions (`net`, `features` outputs), then, with the label
    embedding of a conditional model, a ``hidden_dim`` layer and the posterior's mean and log-variance."""

    def __init__(self, cfg, net: nn.Module, features: int):
        super().__init__()
        self.net = net
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        flat = features + (cfg.class_embed_dim if cfg.num_classes else 0)
        self.hidden = nn.Sequential(nn.Linear(flat, cfg.hidden_dim), make_activation(cfg.activation))
        self.mean = nn.Linear(cfg.hidden_dim, cfg.latent_dim)
        self.logvar = nn.Linear(cfg.hidden_dim, cfg.latent_dim)

    def forward(self, images: torch.Tensor, class_labels: torch.Tensor | None = None):
        h = self.net(images).flatten(1)  # (N, features)
        if self.label_embedding is not None:
            h = torch.cat([h, self.label_embedding(class_labels)], dim=1)
        h = self.hidden(h)  # (N, hidden_dim)
        return self.mean(h), self.logvar(h)  # (N, z), (N, z)


class ConvEncoder(_Encoder):
    def __init__(self, cfg):
        initial_size, stages = conv_schedule(cfg.image_size)
        channels, layers, in_ch = cfg.base_channels, [], cfg.num_channels
        for _ in range(stages):  # each stage halves the size and doubles the channels
            layers += [nn.Conv2d(in_ch, channels, 4, 2, 1), make_activation(cfg.activation)]
            in_ch, channels = channels, channels * 2
        super().__init__(cfg, nn.Sequential(*layers), in_ch * initial_size**2)


class _Decoder(nn.Module):
    """Shared by the convolutional decoders: the latent (with the label embedding of a conditional model) through a
    ``hidden_dim`` layer to a map of `initial_shape`, then their convolutions (`build_net`, built after the linear
    layers, in the order weights are initialised)."""

    activate_initial_map = True  # an activation after the linear layers (a pre-activation block has its own)

    def __init__(self, cfg, initial_shape: tuple[int, int, int]):
        super().__init__()
        self.label_embedding = nn.Embedding(cfg.num_classes, cfg.class_embed_dim) if cfg.num_classes else None
        in_dim = cfg.latent_dim + (cfg.class_embed_dim if cfg.num_classes else 0)
        self.initial_shape = initial_shape
        layers = [nn.Linear(in_dim, cfg.hidden_dim), make_activation(cfg.activation)]
        layers += [nn.Linear(cfg.hidden_dim, math.prod(initial_shape))]
        self.fc = nn.Sequential(*layers, *([make_activation(cfg.activation)] if self.activate_initial_map else []))
        self.net = self.build_net(cfg)
        self.pixel_context = build_pixel_context(cfg)

    def build_net(self, cfg) -> nn.Module:
        raise NotImplementedError

    def forward(self, latents: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            latents = torch.cat([latents, embed_classes(self.label_embedding.weight, class_labels)], dim=1)
        h = self.fc(latents).view(-1, *self.initial_shape)  # (N, initial_shape)
        return self.net(h)  # (N, C or 2C, H, W) decoder output


class ConvDecoder(_Decoder):
    def __init__(self, cfg):
        initial_size, stages = conv_schedule(cfg.image_size)
        super().__init__(cfg, (cfg.base_channels * 2 ** (stages - 1), initial_size, initial_size))

    def build_net(self, cfg) -> nn.Module:
        channels, layers = self.initial_shape[0], []
        for _ in range(conv_schedule(cfg.image_size)[1] - 1):
            layers += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1), make_activation(cfg.activation)]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, output_channels(cfg), 4, 2, 1)]
        return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------------------------------------
# Residual VAE
# ----------------------------------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """x -> shortcut(x) + conv3x3(act(conv3x3(act(x)))); the shortcut is a 1x1 convolution where widths differ."""

    def __init__(self, in_channels: int, out_channels: int, activation: str):
        super().__init__()
        self.branch = nn.Sequential(
            make_activation(activation),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            make_activation(activation),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.branch(x)


def _stage_widths(cfg) -> tuple[int, list[int]]:
    """(size after the last stage, channels of each stage from the full resolution down): base, 2 base, 4 base..."""
    initial_size, stages = conv_schedule(cfg.image_size)
    return initial_size, [cfg.base_channels * 2**i for i in range(stages)]


class ResidualEncoder(_Encoder):
    def __init__(self, cfg):
        initial_size, widths = _stage_widths(cfg)
        layers, in_ch = [nn.Conv2d(cfg.num_channels, widths[0], 3, 1, 1)], widths[0]
        for width in widths:  # each stage: a residual block at its size, then halve the size
            layers += [ResidualBlock(in_ch, width, cfg.activation), nn.AvgPool2d(2)]
            in_ch = width
        layers += [make_activation(cfg.activation)]
        super().__init__(cfg, nn.Sequential(*layers), in_ch * initial_size**2)


class ResidualDecoder(_Decoder):
    activate_initial_map = False

    def __init__(self, cfg):
        initial_size, widths = _stage_widths(cfg)
        super().__init__(cfg, (widths[-1], initial_size, initial_size))

    def build_net(self, cfg) -> nn.Module:
        layers, in_ch = [], self.initial_shape[0]
        for width in reversed(_stage_widths(cfg)[1]):  # mirror of the encoder: double the size, then a residual block
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), ResidualBlock(in_ch, width, cfg.activation)]
            in_ch = width
        layers += [make_activation(cfg.activation), nn.Conv2d(in_ch, output_channels(cfg), 3, 1, 1)]
        return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------------------------------------
# Pixel context: each pixel's likelihood also given the earlier pixels (PixelVAE)
# ----------------------------------------------------------------------------------------------------------------------


def _causal_mask(kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """(k, k) mask of the window's pixels before its centre in raster order: the rows above and, in the centre row,
    the pixels to the left."""
    mask = torch.ones(kernel_size, kernel_size, dtype=like.dtype, device=like.device)
    centre = kernel_size // 2
    mask[centre, centre:] = 0
    mask[centre + 1 :] = 0
    return mask


def _neighbour_predictions(left, above, above_left, above_right) -> torch.Tensor:
    """The colours a pixel is predicted from, stacked in dim 1: its four nearest earlier pixels and the gradient
    predictor left + above - above-left (clamped to [-1, 1]), which continues a linear ramp (as lossless codecs do)."""
    return torch.stack([left, above, above_left, above_right, (left + above - above_left).clamp(-1.0, 1.0)], 1)


NUM_PREDICTIONS = 5  # _neighbour_predictions


class PixelContext(nn.Module):
    """Each pixel's mixture given the earlier pixels of x (in [-1, 1]): a k x k causal window through a masked
    convolution, with the decoder's output, through per-pixel 1x1 layers that (a) add to the decoder's output and
    (b) blend each component's location towards a prediction from the nearest earlier pixels (a softmax-weighted
    choice among ``_neighbour_predictions``, by a gate in [0, 1]). At gate 1 a component's colour is that
    prediction exactly wherever the pixel's earlier channels match theirs (the coupling acts on the differences), so
    flat regions, copies and linear ramps cost little. The last layer starts at zero (gate 0), so a pixel context
    added to a trained decoder starts as that decoder."""

    def __init__(self, cfg):
        super().__init__()
        width, self.num_outputs = cfg.pixel_context_channels, output_channels(cfg)
        self.kernel_size = pixel_context_size(cfg)
        self.num_channels, self.num_mixtures = cfg.num_channels, cfg.num_mixtures
        self.context = nn.Conv2d(cfg.num_channels, width, self.kernel_size, padding=self.kernel_size // 2)
        blend = cfg.num_mixtures * (NUM_PREDICTIONS + 1)  # per component: a weight per prediction, a gate
        self.mix = nn.Sequential(
            make_activation(cfg.activation),
            nn.Conv2d(width + self.num_outputs, width, 1),
            make_activation(cfg.activation),
            nn.Conv2d(width, self.num_outputs + blend, 1),
        )

    def reset_last_layer(self) -> None:
        nn.init.zeros_(self.mix[-1].weight)
        nn.init.zeros_(self.mix[-1].bias)

    def _masked_weight(self) -> torch.Tensor:
        return self.context.weight * _causal_mask(self.kernel_size, self.context.weight)

    def _likelihood_parameters(
        self, output: torch.Tensor, context: torch.Tensor, predictions: torch.Tensor
    ) -> torch.Tensor:
        """Decoder output (N, O, h, w), window features (N, width, h, w) and ``_neighbour_predictions``
        (N, NUM_PREDICTIONS, C, h, w) -> the mixture's parameters (N, O, h, w)."""
        k, c, o = self.num_mixtures, self.num_channels, self.num_outputs
        mixed = self.mix(torch.cat([context, output], 1))
        parameters = output + mixed[:, :o]
        n, _, height, width = parameters.shape
        weights = torch.softmax(mixed[:, o : o + k * NUM_PREDICTIONS].view(n, k, NUM_PREDICTIONS, 1, height, width), 2)
        gate = mixed[:, o + k * NUM_PREDICTIONS :].clamp(0.0, 1.0).view(n, k, 1, height, width)
        _, locations, _, couplings = mixture_parameters(parameters, c, k)
        predicted = (weights * predictions.unsqueeze(1)).sum(2)  # (N, K, C, h, w)
        # the location that the coupling to the pixel's earlier channels turns into `predicted` where they match it
        uncoupled = coupled_locations(predicted, -couplings, predicted)
        per_component = parameters[:, k:].view(n, k, -1, height, width)
        blended = torch.cat([locations + gate * (uncoupled - locations), per_component[:, :, c:]], 2)
        return torch.cat([parameters[:, :k], blended.flatten(1, 2)], 1)

    def forward(self, output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Decoder output (N, O, H, W) and images (N, C, H, W) in [0, 1] -> each pixel's likelihood parameters given
        the pixels before it (teacher forcing: one pass for the whole image)."""
        x = images * 2.0 - 1.0
        height, width = x.shape[-2:]
        context = F.conv2d(x, self._masked_weight(), self.context.bias, padding=self.kernel_size // 2)
        padded = F.pad(x, (1, 1, 1, 0))  # zeros, as the convolution pads: a row on top, a column each side
        predictions = _neighbour_predictions(
            padded[:, :, 1:, :width], padded[:, :, :height, 1 : width + 1], padded[:, :, :height, :width],
            padded[:, :, :height, 2:],
        )  # fmt: skip
        return self._likelihood_parameters(output, context, predictions)

    @torch.no_grad()
    def decode(self, output: torch.Tensor, generator: torch.Generator | None = None, progress=None):
        """Each pixel's parameters given the pixels decoded before it (raster order), and a draw from its mixture
        (``sample_logistic_mixture``) -> (images (N, C, H, W) in [0, 1] on the 8-bit levels, parameters
        (N, O, H, W)). A pixel depends on its causal window only (the rows above, k // 2 columns each side, and the
        pixels to its left), so the pixels are decoded in wavefronts: pixel (row, col) at step col + (k // 2 + 1) *
        row, when every pixel of its window is done, all pixels of a step at once. That draws the same image as
        pixel by pixel, in W + (k // 2 + 1)(H - 1) sequential steps instead of H * W (190 instead of 4096 at 64 px,
        k = 3). The uniforms behind the draws come from `generator`, all at once, image by image (so a batch split
        in two draws the same images), or, without one, from a generator seeded with 0: the same latents then
        always give the same image. (Each pixel's mean instead would rarely leave the background: copying the
        pixel to the left is the likeliest colour almost everywhere.) `progress`, where given, is called with 1
        as each row is finished (a progress bar's ``update``). On the CPU the loop runs on one thread
        (``one_intra_op_thread``)."""
        n, channels, (height, width) = output.shape[0], self.num_channels, output.shape[-2:]
        k, pad = self.kernel_size, self.kernel_size // 2
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        noise = torch.rand((n, 1 + channels, height, width), generator=generator, device=generator.device)
        noise = noise.to(device=output.device, dtype=output.dtype)
        weight = self._masked_weight()[:, :, : pad + 1]  # the rows below the centre are masked
        # the decoded pixels in [-1, 1], zero-padded as the convolution pads: pad rows on top, pad columns each side
        canvas = output.new_zeros(n, channels, height + pad, width + 2 * pad)
        parameters = torch.empty_like(output)
        slope, device = pad + 1, output.device
        window_rows = torch.arange(pad + 1, device=device)[:, None]  # the window's offsets on the canvas
        window_cols = torch.arange(k, device=device)[None, :]
        with one_intra_op_thread(device):
            for step in range(width + slope * (height - 1)):
                rows = torch.arange(
                    max(0, (step - width + slope) // slope), min(height, step // slope + 1), device=device
                )
                cols = step - slope * rows  # the wavefront: every pixel of this step, (m,)
                window = canvas[:, :, (rows[:, None, None] + window_rows), (cols[:, None, None] + window_cols)]
                context = torch.einsum("ncmhw,ochw->nom", window, weight) + self.context.bias[:, None]
                r, c = rows + pad, cols + pad  # the pixels' places on the canvas
                predictions = _neighbour_predictions(
                    canvas[:, :, r, c - 1],
                    canvas[:, :, r - 1, c],
                    canvas[:, :, r - 1, c - 1],
                    canvas[:, :, r - 1, c + 1],
                )  # (N, NUM_PREDICTIONS, C, m)
                pixels = self._likelihood_parameters(
                    output[:, :, rows, cols][:, :, None], context[:, :, None], predictions[..., None, :]
                )  # (N, O, 1, m)
                parameters[:, :, rows, cols] = pixels[:, :, 0]
                drawn = sample_logistic_mixture(
                    pixels, channels, self.num_mixtures, noise[:, :, rows, cols][:, :, None]
                )
                canvas[:, :, r, c] = drawn[:, :, 0]
                if progress is not None and cols[0] == width - 1:  # the first row of the wavefront is finished
                    progress(1)
        return torch.round((canvas[:, :, pad:, pad : pad + width] + 1.0) * 127.5) / 255.0, parameters


def build_pixel_context(cfg) -> PixelContext | None:
    return PixelContext(cfg) if pixel_context_size(cfg) else None


def likelihood_output(decoder: nn.Module, latents: torch.Tensor, class_labels, images: torch.Tensor) -> torch.Tensor:
    """The likelihood's parameters for ``images`` (N, C, H, W) in [0, 1] given their latents: the decoder's output,
    each pixel's also given the earlier pixels of ``images`` where the decoder has a pixel context."""
    output = decoder(latents, class_labels)
    return output if decoder.pixel_context is None else decoder.pixel_context(output, images)


def decode(cfg, decoder: nn.Module, latents: torch.Tensor, class_labels=None, generator=None, progress=None):
    """Latents -> (images (N, C, H, W) in [0, 1], the likelihood's parameters): the likelihood's mean, or with a
    pixel context a draw, pixel by pixel (``PixelContext.decode``, whose uniforms come from `generator` and which
    calls `progress` after each row; ``hf_dgm.sampling.decoding_progress`` makes a progress bar of it)."""
    output = decoder(latents, class_labels)
    if decoder.pixel_context is None:
        return decoder_mean(cfg, output), output
    return decoder.pixel_context.decode(output, generator, progress)


def _validate_pixel_context(cfg) -> None:
    size = pixel_context_size(cfg)
    is_int = isinstance(size, int) and not isinstance(size, bool)
    if not (is_int and (size == 0 or (size >= 3 and size % 2 == 1))):
        raise ValueError(f"pixel_context={size!r} is invalid: expected 0 (none) or an odd window size >= 3.")
    if size == 0:
        return
    if not LIKELIHOODS[cfg.likelihood].pixel_context:
        supported = " or ".join(repr(name) for name, entry in LIKELIHOODS.items() if entry.pixel_context)
        raise ValueError(f"pixel_context={size} needs likelihood={supported}, not {cfg.likelihood!r}.")
    check_positive_int("pixel_context_channels", cfg.pixel_context_channels)


def _validate_mlp(cfg) -> None:
    check_dims("hidden_dims", cfg.hidden_dims)


def _validate_conv(cfg) -> None:
    conv_schedule(cfg.image_size)
    check_positive_int("base_channels", cfg.base_channels)
    check_positive_int("hidden_dim", cfg.hidden_dim)


@dataclass(frozen=True)
class VAEArchitecture:
    encoder: Callable[..., nn.Module]
    decoder: Callable[..., nn.Module]
    validate: Callable[..., None]  # checks the architecture's own config fields
    fields: tuple[str, ...] = ()  # the config fields it reads that not every architecture reads


def _hierarchical_decoder(cfg) -> nn.Module:
    return HierarchicalDecoder(cfg, output_channels(cfg), build_pixel_context(cfg))


ARCHITECTURES = {
    "mlp": VAEArchitecture(MLPEncoder, MLPDecoder, _validate_mlp, fields=("hidden_dims",)),
    "conv": VAEArchitecture(ConvEncoder, ConvDecoder, _validate_conv, fields=("base_channels", "hidden_dim")),
    "resnet": VAEArchitecture(ResidualEncoder, ResidualDecoder, _validate_conv, fields=("base_channels", "hidden_dim")),
    "hierarchical": VAEArchitecture(
        HierarchicalEncoder,
        _hierarchical_decoder,
        validate_hierarchical,
        fields=("base_channels", "latent_groups", "cells_per_resolution"),
    ),
}


def validate_vae_config(cfg) -> None:
    """Check every architecture field of a VAE config (an object with attributes, e.g. ``VAEConfig``)."""
    check_choice("architecture", cfg.architecture, ARCHITECTURES)
    check_choice("likelihood", cfg.likelihood, LIKELIHOODS)
    for likelihood in LIKELIHOODS.values():  # every field of the config is valid, whichever likelihood is chosen
        likelihood.validate(cfg)
    _validate_pixel_context(cfg)
    validate_latent_prior(cfg)
    check_common_fields(cfg)
    ARCHITECTURES[cfg.architecture].validate(cfg)


def build_encoder(cfg) -> nn.Module:
    validate_vae_config(cfg)
    return ARCHITECTURES[cfg.architecture].encoder(cfg)


def build_decoder(cfg) -> nn.Module:
    """The architecture's decoder, with the fitted prior its latents are drawn from (``latent_prior``; None: N(0, I))
    as its ``latent_prior``."""
    validate_vae_config(cfg)
    decoder = ARCHITECTURES[cfg.architecture].decoder(cfg)
    decoder.latent_prior = build_latent_prior(cfg)
    return decoder


# ----------------------------------------------------------------------------------------------------------------------
# The fast sampling path (hf-dgm sample): the network that turns latents into images, and how
# ----------------------------------------------------------------------------------------------------------------------


def sampling_network(cfg) -> tuple[nn.Module, str]:
    """The decoder `hf-dgm sample` runs and the prefix of its weights."""
    return build_decoder(cfg), "decoder."


def latent_temperature(cfg, temperature) -> float | torch.Tensor:
    """The scale of prior latents: a temperature (a positive number), or for the hierarchical architecture a list of
    one per latent group (coarse to fine; ``networks_hvae.group_temperatures``), as a (latent_dim,) tensor."""
    if isinstance(temperature, (list, tuple)):
        if cfg.architecture != "hierarchical":
            raise ValueError(
                f"temperature={list(temperature)!r}: one per latent group needs architecture='hierarchical'; this "
                f"{cfg.architecture!r} VAE takes one positive number."
            )
        return group_temperatures(cfg, temperature)
    check_prior_temperature(temperature)
    return temperature


def check_prior_temperature(temperature) -> None:
    """One temperature for every VAE: a positive number (one per latent group: ``latent_temperature``)."""
    check_temperature(temperature)


def prior_latents(cfg, net: nn.Module, num_images: int, generator, temperature: float | list[float] = 1.0):
    """Latents (num_images, latent_dim) drawn as VAEPipeline draws them from the decoder `net`'s prior: z ~
    N(0, temperature^2 I) (per group for a list: ``latent_temperature``), or from its fitted prior
    (``latent_prior.FittedPrior.sample``, each draw's deviation from its component's mean scaled so)."""
    scale = latent_temperature(cfg, temperature)
    if net.latent_prior is not None:
        return net.latent_prior.sample(num_images, generator, scale)
    return sample_latents(cfg, num_images, generator) * scale


def images_from_latents(
    cfg, net: nn.Module, latents: torch.Tensor, class_labels=None, generator=None, progress=None
) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1], as VAEPipeline decodes them (``decode``; `progress` as there)."""
    return decode(cfg, net, latents, class_labels, generator, progress)[0]


# ----------------------------------------------------------------------------------------------------------------------
# Likelihoods: -log p(x | z) summed over pixels, one value per image (nats)
# ----------------------------------------------------------------------------------------------------------------------


def reconstruction_nll(cfg, logits: torch.Tensor, images: torch.Tensor, log_scale: torch.Tensor | None = None):
    """Negative log-likelihood of ``images`` (in [0, 1]) under the decoder output ``logits``, in nats summed over
    pixels; shape (N,). ``log_scale``: the model's learned per-channel log-scales, where its likelihood has them."""
    return LIKELIHOODS[cfg.likelihood].nll(cfg, logits, images, log_scale)


def bernoulli_nll(cfg, logits: torch.Tensor, images: torch.Tensor, log_scale=None) -> torch.Tensor:
    """Binary cross-entropy with logits, exact for binary data; for grey levels it is a cross-entropy, not a
    likelihood, so report it as NLL only on binarized data."""
    return F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)


def gaussian_nll(cfg, logits: torch.Tensor, images: torch.Tensor, log_scale=None) -> torch.Tensor:
    """N(x; sigmoid(logits), sigma^2) with sigma = exp(log_scale) (learned, one per channel) or
    ``gaussian_fixed_std``."""
    mean = torch.sigmoid(logits)
    if cfg.gaussian_variance == "learned":
        log_sigma = log_scale.view(1, -1, 1, 1)
    else:
        log_sigma = torch.full((), math.log(cfg.gaussian_fixed_std), dtype=logits.dtype, device=logits.device)
    nll = 0.5 * ((images - mean) * torch.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1)


def _validate_gaussian(cfg) -> None:
    check_choice("gaussian_variance", cfg.gaussian_variance, GAUSSIAN_VARIANCES)
    std = cfg.gaussian_fixed_std
    if not isinstance(std, (int, float)) or isinstance(std, bool) or not (std > 0 and math.isfinite(std)):
        raise ValueError(f"gaussian_fixed_std={std!r} is invalid: expected a positive finite number.")


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) per sub-pixel of levels x in [-1, 1] (k / 255 mapped to 2k / 255 - 1) under logistics of the given
    locations and log-scales (same units), integrated over each level's bin; the edge levels take the tails."""
    log_scale = log_scale.clamp(min=-7.0)
    inv_scale = torch.exp(-log_scale)
    plus = inv_scale * (x - mean + 1.0 / 255.0)  # bins of half-width 1/255
    minus = inv_scale * (x - mean - 1.0 / 255.0)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest level takes the left tail
    log_one_minus_cdf_minus = -F.softplus(minus)  # log(1 - sigmoid(minus)): the highest level takes the right tail
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_scale * (x - mean)
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid)  # where the bin's mass underflows: density x bin width
    log_bin = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid - math.log(127.5))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_bin))


def discretized_logistic_nll(output: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """-log P(x) in nats per image, shape (N,), for images (N, C, H, W) holding levels k / 255 and a decoder output
    (N, 2C, H, W) of locations (in [-1, 1] units) and log-scales: the probability of each 8-bit level under a logistic
    per sub-pixel, integrated over the level's bin (Salimans et al., 2017, PixelCNN++; a single logistic, no mixture).
    Exact for 8-bit images, so NLL / (C*H*W*ln 2) is in bits per dimension, comparable with lossless codecs."""
    channels = images.shape[1]
    log_prob = discretized_logistic_log_prob(images * 2.0 - 1.0, output[:, :channels], output[:, channels:])
    return -log_prob.flatten(1).sum(1)


def mixture_parameters(output: torch.Tensor, channels: int, num_mixtures: int):
    """Decoder output (N, K * (1 + 2C + C(C-1)/2), H, W) -> the mixture's logits (N, K, H, W), locations and
    log-scales (N, K, C, H, W) and couplings (N, K, C(C-1)/2, H, W) in (-1, 1)."""
    n, _, height, width = output.shape
    per_component = output[:, num_mixtures:].view(n, num_mixtures, -1, height, width)
    locations, log_scales = per_component[:, :, :channels], per_component[:, :, channels : 2 * channels]
    return output[:, :num_mixtures], locations, log_scales, torch.tanh(per_component[:, :, 2 * channels :])


def coupled_locations(locations: torch.Tensor, couplings: torch.Tensor, values: torch.Tensor | None = None):
    """Each channel's location plus its couplings times the earlier channels of the same pixel (PixelCNN++): the
    observed `values` (N, 1, C, H, W) in [-1, 1], or, where None, those channels' own expected values (the mean)."""
    coupled, index = [], 0
    for channel in range(locations.shape[2]):
        location = locations[:, :, channel]
        for earlier in range(channel):
            location = location + couplings[:, :, index] * (
                coupled[earlier] if values is None else values[:, :, earlier]
            )
            index += 1
        coupled.append(location)
    return torch.stack(coupled, 2)


def logistic_mixture_nll(output: torch.Tensor, images: torch.Tensor, num_mixtures: int) -> torch.Tensor:
    """-log P(x) in nats per image, shape (N,), under a mixture of `num_mixtures` discretized logistics per pixel
    whose colour channels depend linearly on the earlier ones (Salimans et al., 2017, PixelCNN++, without the
    autoregression over pixels): images (N, C, H, W) of levels k / 255."""
    x = (images * 2.0 - 1.0).unsqueeze(1)  # (N, 1, C, H, W)
    logits, locations, log_scales, couplings = mixture_parameters(output, images.shape[1], num_mixtures)
    log_prob = discretized_logistic_log_prob(x, coupled_locations(locations, couplings, x), log_scales).sum(2)
    return -torch.logsumexp(log_prob + torch.log_softmax(logits, 1), 1).flatten(1).sum(1)


def sample_logistic_mixture(output: torch.Tensor, channels: int, num_mixtures: int, noise: torch.Tensor):
    """A draw from the mixture of each pixel, by inversion of uniforms ``noise`` (N, 1 + C, H, W) in (0, 1): the
    first picks the component, the others each channel's logistic, whose location is coupled to the channel values
    drawn before it; clamped to [-1, 1] and rounded to the 8-bit levels -> (N, C, H, W) in [-1, 1]."""
    logits, locations, log_scales, couplings = mixture_parameters(output, channels, num_mixtures)
    cumulative = torch.softmax(logits, 1).cumsum(1)  # (N, K, H, W)
    component = (noise[:, :1] > cumulative).sum(1, keepdim=True).clamp(max=num_mixtures - 1)  # (N, 1, H, W)

    def chosen(values):  # (N, K, D, H, W) -> the chosen component's (N, D, H, W)
        index = component.unsqueeze(2).expand(-1, 1, values.shape[2], -1, -1)
        return values.gather(1, index).squeeze(1)

    location, log_scale, coupling = chosen(locations), chosen(log_scales).clamp(min=-7.0), chosen(couplings)
    uniform = noise[:, 1:].clamp(1e-5, 1.0 - 1e-5)
    drawn, index = [], 0
    for channel in range(channels):
        mean = location[:, channel]
        for earlier in range(channel):
            mean = mean + coupling[:, index] * drawn[earlier]
            index += 1
        logistic = torch.log(uniform[:, channel]) - torch.log1p(-uniform[:, channel])
        value = (mean + torch.exp(log_scale[:, channel]) * logistic).clamp(-1.0, 1.0)
        drawn.append(torch.round((value + 1.0) * 127.5) / 127.5 - 1.0)
    return torch.stack(drawn, 1)


def bits_per_dim(nll_nats: torch.Tensor, cfg) -> torch.Tensor:
    """An NLL in nats per image -> bits per dimension (sub-pixel): NLL / (C * H * W * ln 2)."""
    return nll_nats / (cfg.num_channels * cfg.image_size**2 * math.log(2))


def logistic_mixture_mean(cfg, output: torch.Tensor) -> torch.Tensor:
    """The mixture's mean colour per pixel, mapped from [-1, 1] to [0, 1]."""
    logits, locations, _, couplings = mixture_parameters(output, cfg.num_channels, cfg.num_mixtures)
    mean = (torch.softmax(logits, 1).unsqueeze(2) * coupled_locations(locations, couplings)).sum(1)
    return ((mean + 1.0) / 2.0).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------------
# The likelihood registry: a new likelihood is its functions above and one entry here (plus its config fields and
# their docs in configuration_vae.py); the model, the trainer and the evaluation read everything else from its entry
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Likelihood:
    output_channels: Callable[..., int]  # cfg -> channels of the decoder's output
    mean: Callable[..., torch.Tensor]  # (cfg, output) -> images (N, C, H, W) in [0, 1]
    nll: Callable[..., torch.Tensor]  # (cfg, output, images, log_scale) -> -log p(x | z) in nats, shape (N,)
    validate: Callable[..., None] = lambda cfg: None  # checks its own config fields
    fields: tuple[str, ...] = ()  # the config fields only it reads
    learned_log_scale: Callable[..., bool] = lambda cfg: False  # cfg -> the model holds a log-scale per channel
    binary: bool = False  # a probability of binary images: trained on dynamically binarized data by default
    eight_bit: bool = False  # an exact probability of 8-bit images: its NLL is reported in bits per dimension
    pixel_context: bool = False  # a pixel context (PixelContext) may refine it


def _sigmoid_mean(cfg, output: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(output)


def _validate_mixture(cfg) -> None:
    check_positive_int("num_mixtures", cfg.num_mixtures)


LIKELIHOODS = {
    "bernoulli": Likelihood(lambda cfg: cfg.num_channels, _sigmoid_mean, bernoulli_nll, binary=True),
    "gaussian": Likelihood(
        lambda cfg: cfg.num_channels, _sigmoid_mean, gaussian_nll, _validate_gaussian,
        fields=("gaussian_variance", "gaussian_fixed_std"),
        learned_log_scale=lambda cfg: cfg.gaussian_variance == "learned",
    ),
    "discretized_logistic": Likelihood(
        lambda cfg: 2 * cfg.num_channels,  # a location and a log-scale per sub-pixel
        lambda cfg, output: ((output[:, : cfg.num_channels] + 1.0) / 2.0).clamp(0.0, 1.0),  # the locations
        lambda cfg, output, images, log_scale=None: discretized_logistic_nll(output, images),
        eight_bit=True,
    ),
    "logistic_mixture": Likelihood(
        # per component: a logit, C locations, C log-scales and the couplings of each channel to the earlier ones
        lambda cfg: cfg.num_mixtures * (1 + 2 * cfg.num_channels + _num_couplings(cfg.num_channels)),
        logistic_mixture_mean,
        lambda cfg, output, images, log_scale=None: logistic_mixture_nll(output, images, cfg.num_mixtures),
        _validate_mixture,
        fields=("num_mixtures", "pixel_context", "pixel_context_channels"),
        eight_bit=True,
        pixel_context=True,
    ),
}  # fmt: skip
EIGHT_BIT_LIKELIHOODS = tuple(name for name, entry in LIKELIHOODS.items() if entry.eight_bit)
