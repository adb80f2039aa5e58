"""The one place that maps image tensors to uint8 arrays, PIL images and PNG grids (PIL only: importing
``diffusers.utils`` or torchvision for a grid costs seconds)."""

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .file_utils import atomic_write

OUTPUT_TYPES = ("pil", "np", "pt")


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


# the formats an image file may be written in, by suffix (lossless WebP: a grid is for looking at pixels)
IMAGE_FORMATS = {".png": ("PNG", {}), ".jpg": ("JPEG", {"quality": 95}), ".jpeg": ("JPEG", {"quality": 95}),
                 ".webp": ("WEBP", {"lossless": True})}  # fmt: skip


def check_image_path(path) -> Path:
    """A file name whose suffix names a format we write; not a folder. Raises ValueError saying what to pass."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder: give a file name, e.g. {str(path / 'grid.png')!r}.")
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise ValueError(
            f"{str(path)!r}: the suffix names no image format written here; expected one of {sorted(IMAGE_FORMATS)}."
        )
    return path


def save_image_atomic(image: Image.Image, path) -> Path:
    """Write an image in the format its suffix names, through a temporary file and a rename (an interrupted write
    never leaves a broken file)."""
    image_format, options = IMAGE_FORMATS[check_image_path(path).suffix.lower()]
    return atomic_write(path, lambda tmp: image.save(tmp, format=image_format, **options))


def on_white(image: Image.Image) -> Image.Image:
    """A picture of any mode as 8-bit pixels on white paper: 16- and 32-bit integer pixels scaled to 8 bits, and an
    image with transparency (an alpha channel, a palette's or a colour key's) composited onto white, as RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8))
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent = paper
        image = Image.alpha_composite(background, rgba).convert("RGB")
    return image


def mnist_preprocess(image, max_side: int = 2048) -> np.ndarray:
    """A drawn or photographed digit -> (28, 28) uint8 like MNIST: white ink on black, cropped to the ink's bounding
    box, scaled to fit 20x20 (aspect kept), centred by centre of mass in a 28x28 frame (LeCun et al.'s recipe).

    Accepts a PIL image or an array (H, W[, C]) of any mode (RGBA / palette / 16-bit are converted; transparent
    pixels count as background). Huge images are first downscaled to `max_side`. Raises ValueError for a blank
    image (no ink).
    """
    if isinstance(image, np.ndarray):
        array = image
        if array.dtype == np.uint16 or array.max(initial=0) > 255:
            array = (array / 257.0).clip(0, 255)
        image = Image.fromarray(array.astype(np.uint8))
    if not isinstance(image, Image.Image):
        raise ValueError(f"expected an image, got {type(image).__name__}")
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    grey = np.asarray(on_white(image).convert("L"), dtype=np.float64)
    if grey.mean() > 127:  # dark ink on light paper -> invert to MNIST's white on black
        grey = 255.0 - grey
    grey[grey < 30] = 0.0  # paper noise
    ys, xs = np.nonzero(grey)
    if len(ys) == 0:
        raise ValueError("the image is blank: draw or upload a digit")
    crop = grey[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((nw, nh), Image.Resampling.LANCZOS), np.float64)
    total = small.sum()
    cy, cx = (np.arange(nh) @ small.sum(1)) / total, (np.arange(nw) @ small.sum(0)) / total
    top, left = int(round(14 - cy)), int(round(14 - cx))
    top, left = min(max(top, 0), 28 - nh), min(max(left, 0), 28 - nw)
    frame = np.zeros((28, 28), np.float64)
    frame[top : top + nh, left : left + nw] = small
    return frame.clip(0, 255).round().astype(np.uint8)


def save_gif(frames: list, path, duration_ms: int = 120) -> None:
    """Animated GIF that plays forth and back (atomic write)."""
    loop = frames + frames[-2:0:-1]
    atomic_write(
        path,
        lambda tmp: loop[0].save(
            tmp, format="GIF", save_all=True, append_images=loop[1:], duration=duration_ms, loop=0
        ),
    )
