"""The one place that maps image tensors to uint8 arrays, PIL images and PNG grids (PIL only: importing
``diffusers.utils`` or torchvision for a grid costs seconds)."""

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

OUTPUT_TYPES = ("pil", "np", "pt")


def to_unit_range(images, value_range: tuple[float, float]):
    """Map a tensor from ``value_range`` ((-1, 1) for GANs, (0, 1) for VAEs) to [0, 1], clamped."""
    lo, hi = value_range
    if (lo, hi) != (0.0, 1.0):
        images = (images - lo) / (hi - lo)
    return images.clamp(0.0, 1.0)


def to_uint8(images) -> np.ndarray:
    """Tensor (N, C, H, W) in [0, 1] -> uint8 array (N, H, W, C), rounding to nearest."""
    return (images.detach().float().cpu() * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def numpy_to_pil(images: np.ndarray) -> list[Image.Image]:
    """uint8 (N, H, W, C) or float [0, 1] array -> list of PIL images ("L" for one channel, "RGB" for three)."""
    if images.dtype != np.uint8:
        images = (np.clip(images, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if images.shape[-1] == 1:
        return [Image.fromarray(img[..., 0], mode="L") for img in images]
    return [Image.fromarray(img, mode="RGB") for img in images]


def postprocess(images, output_type: str = "pil"):
    """Tensor (N, C, H, W) in [0, 1] -> the pipeline's `output_type`: "pt" (the tensor, on CPU), "np" (float32
    array (N, H, W, C) in [0, 1]) or "pil" (list of PIL images)."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type={output_type!r} is not supported: expected one of {OUTPUT_TYPES}.")
    if output_type == "pt":
        return images.detach().cpu()
    if output_type == "np":
        return images.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    return numpy_to_pil(to_uint8(images))


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> Image.Image:
    """uint8 array (N, H, W, C) -> one PIL image with the N images on a grid of `nrow` columns
    (default: ceil(sqrt(N)))."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"make_grid expects a uint8 array (N, H, W, C), got {images.dtype} {images.shape}.")
    n, h, w, c = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    grid = np.full((padding + ncol * (h + padding), padding + nrow * (w + padding), c), pad_value, dtype=np.uint8)
    for i in range(n):
        row, col = divmod(i, nrow)
        y, x = padding + row * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i]
    return Image.fromarray(grid[..., 0] if c == 1 else grid, mode="L" if c == 1 else "RGB")


def save_png_atomic(image: Image.Image, path) -> None:
    """Write a PNG through a temporary file and a rename, so an interrupted write never leaves a broken file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)
