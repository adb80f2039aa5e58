"""Sampling without transformers or diffusers: the fast path behind ``hf-dgm sample``.

It reads ``config.json``, validates it with the same functions as the config classes, builds the family's plain torch
sampling network (the EMA generator for GANs when present, the decoder for VAEs), loads only its weights from
``model.safetensors`` and samples exactly as the pipelines do: same seed, same pixels.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from .families import Family, family_of, read_config
from .image_processing import to_uint8
from .modeling_utils import (
    MAX_ACTIVATIONS,
    activation_elements,
    check_class_labels,
    check_footprint,
    check_weight_shapes,
    count_parameters,
    meta_state_shapes,
    read_weight_shapes,
)


def load_sampling_network(model_dir) -> tuple[SimpleNamespace, Family, torch.nn.Module]:
    """The config, the family and the network that turns latents into images, with its weights loaded strictly.
    Its size (the budgets of ``modeling_utils``) and the file's tensor names and shapes are checked on the meta
    device, before anything is allocated."""
    from safetensors import safe_open

    raw = read_config(model_dir)
    family = family_of(raw.get("model_type"), f"{str(Path(model_dir) / 'config.json')!r}")
    cfg = SimpleNamespace(**raw)
    try:
        with torch.device("meta"):
            meta_net, prefix = family.networks.sampling_network(cfg)
    except AttributeError as err:
        raise ValueError(f"config.json in {str(model_dir)!r} lacks a field: {err}") from None
    weights = Path(model_dir) / "model.safetensors"
    expected = meta_state_shapes(meta_net)
    activations = activation_elements(meta_net, cfg, MAX_ACTIVATIONS)
    check_footprint(count_parameters(expected), activations, repr(str(model_dir)))
    found = {k[len(prefix) :]: v for k, v in read_weight_shapes(weights).items() if k.startswith(prefix)}
    check_weight_shapes(expected, found, repr(str(weights)))
    net, _ = family.networks.sampling_network(cfg)
    with safe_open(weights, framework="pt") as f:
        net.load_state_dict({name: f.get_tensor(prefix + name) for name in expected}, strict=True)
    return cfg, family, net.eval()


SAMPLE_BATCH_SIZE = 256  # images decoded at a time: memory stays bounded whatever --num-images is


@torch.no_grad()
def sample_images(
    cfg: SimpleNamespace,
    family: Family,
    net: torch.nn.Module,
    num_images: int,
    seed: int = 0,
    class_labels=None,
    temperature: float = 1.0,
) -> np.ndarray:
    """uint8 images (N, H, W, C), drawn as the pipelines draw them (all latents from a torch.Generator seeded with
    `seed`), decoded SAMPLE_BATCH_SIZE at a time."""
    generator = torch.Generator().manual_seed(seed)
    labels = check_class_labels(cfg, class_labels, num_images)
    latents = family.networks.prior_latents(cfg, num_images, generator, temperature=temperature)
    out = np.empty((num_images, cfg.image_size, cfg.image_size, cfg.num_channels), dtype=np.uint8)
    for start in range(0, num_images, SAMPLE_BATCH_SIZE):
        stop = min(start + SAMPLE_BATCH_SIZE, num_images)
        batch_labels = labels[start:stop] if labels is not None else None
        images = family.networks.images_from_latents(cfg, net, latents[start:stop], batch_labels, generator)
        out[start:stop] = to_uint8(images)
    return out
