"""What the evaluation modules share: loading a model, drawing its samples (or a VAE's reconstructions) as uint8, a
disk cache for real images' features, and rounding for reports."""

import hashlib
import json
from pathlib import Path

import torch

from ..families import family_of, family_of_folder
from ..file_utils import atomic_write


def significant(x: float, digits: int = 6) -> float:
    """Round to significant digits (FIDs range from 1e-3 to 1e2)."""
    return float(f"{x:.{digits}g}")


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def tensor_hash(tensor: torch.Tensor) -> str:
    """A content hash of a tensor (its shape, dtype and bytes): the key of features computed from it."""
    digest = hashlib.sha256(f"{tuple(tensor.shape)} {tensor.dtype}".encode())
    digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def cache_path(key_parts: list) -> Path:
    """Where `cached` keeps the tensors of `key_parts`."""
    from ..data import cache_dir

    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:24]
    return cache_dir().parent / "reference_stats" / f"{key}.safetensors"


def cached(key_parts: list, compute) -> dict:
    """`compute()` -> dict of tensors, cached on disk (safetensors) under a hash of `key_parts`."""
    from safetensors.torch import load_file, save_file

    path = cache_path(key_parts)
    if path.is_file():
        return load_file(path)
    tensors = {k: v.contiguous() for k, v in compute().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    return tensors


def load_model(path):
    return family_of_folder(path).model_class.from_pretrained(path).eval()


@torch.no_grad()
def generate_uint8(
    model,
    num_samples: int,
    seed: int,
    labels: torch.Tensor | None = None,
    batch_size: int = 500,
    temperature: float = 1.0,
):
    """Samples as uint8 (N, C, H, W) drawn through the family's pipeline with `torch.Generator().manual_seed(seed)`
    (a VAE's at the prior `temperature`), and the labels they were drawn for: `labels` (N,), or for a conditional
    model by default 0, 1, ..., 0, 1, ... (None for an unconditional model)."""
    family = family_of(model.config.model_type)
    pipeline = family.pipeline_class(**{family.name: model})
    generator = torch.Generator().manual_seed(seed)
    num_classes = model.config.num_classes
    if labels is None and num_classes:
        labels = torch.arange(num_samples) % num_classes
    spread = {"temperature": temperature} if temperature != 1.0 else {}  # a GAN's pipeline takes none
    out = []
    for i in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - i)
        y = labels[i : i + n] if labels is not None and num_classes else None
        images = pipeline(batch_size=n, generator=generator, class_labels=y, output_type="pt", **spread).images
        out.append((images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu())
    return torch.cat(out), (labels if num_classes else None)


@torch.no_grad()
def reconstruct_uint8(model, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 500):
    """A VAE's reconstructions of uint8 `images` (N, C, H, W) as uint8, as its pipeline's ``reconstruct`` makes them
    (the posterior mean decoded), each image under its label from `labels` where the model is conditional."""
    pipeline = family_of(model.config.model_type).pipeline_class(vae=model)
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].float().div(255).to(model.device)
        y = labels[i : i + batch_size].tolist() if labels is not None else None
        decoded = pipeline.reconstruct(x, class_labels=y, output_type="pt").images
        out.append((decoded.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu())
    return torch.cat(out)
