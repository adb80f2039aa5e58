"""Differentiable augmentation (DiffAugment; Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same random transformations are applied to real and generated images before every pass through D,
in both the D and the G step, and gradients flow through them to G. D then cannot memorise a small training set,
and G is not pushed to produce augmented images. Works with every GAN loss and with R1 (computed on the augmented
reals, as in StyleGAN2-ADA).

Policies (``--diffaugment color,translation,cutout``, the paper's choice for small datasets), on images in [-1, 1]:

* ``color``: brightness +U(-0.5, 0.5), saturation x U(0, 2) around the pixel's channel mean, contrast
  x U(0.5, 1.5) around the image mean;
* ``translation``: an integer shift of up to 1/8 of the size in each direction, zero padding;
* ``cutout``: a square of half the size, at a uniform position, set to zero.

Random numbers come from the trainer's seeded noise generator, so a resumed run draws the same augmentations.
"""

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """ "color,translation" -> ("color", "translation"); "" -> () (off). Raises ValueError for an unknown part."""
    policy = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in policy if part not in POLICIES]
    if unknown:
        raise ValueError(f"--diffaugment {text!r}: unknown {unknown}; expected a comma-separated subset of {POLICIES}.")
    return policy


def _uniform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)  # (N, 1, 1, 1)


def color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    x = x + (_uniform(x, generator) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, generator) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, (n, 1, 1), generator=generator, device=x.device)
    dx = torch.randint(-shift_w, shift_w + 1, (n, 1, 1), generator=generator, device=x.device)
    batch, rows, cols = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    rows = torch.clamp(rows + dy + 1, 0, h + 1)  # +1: the zero padding
    cols = torch.clamp(cols + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # (N, H+2, W+2, C)
    return padded[batch, rows, cols].permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), generator=generator, device=x.device)
    left = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), generator=generator, device=x.device)
    batch, rows, cols = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(size_h, device=x.device),
        torch.arange(size_w, device=x.device),
        indexing="ij",
    )
    rows = torch.clamp(rows + top - size_h // 2, 0, h - 1)
    cols = torch.clamp(cols + left - size_w // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[batch, rows, cols] = 0
    return x * mask.unsqueeze(1)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] -> the same shape, transformed per ``policy`` (differentiably)."""
    for name in policy:
        x = TRANSFORMS[name](x, generator)
    return x
