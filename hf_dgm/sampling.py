"""Sampling without transformers or diffusers: the fast path behind ``hf-dgm sample``, and the one place images are
drawn within a memory budget (``generate_images``: the CLI and the Space call it).

It reads ``config.json`` with the config class's defaults (``families.load_config``), validates it with the same
functions as the config classes, builds the family's plain torch sampling network (the EMA generator for GANs when
present, the decoder for VAEs), loads only its weights from ``model.safetensors`` and samples as the pipelines do: same
seed, same pixels, wherever one chunk holds the request. Where the budget splits it, the networks see smaller batches,
whose float rounding may move a few values by one level (a 256 px residual GAN, 64 images in chunks of 6: 269 of
12.8 M values, by 1).
"""

from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from . import modeling_utils
from .families import Family, family_of, load_config
from .image_processing import to_uint8
from .modeling_utils import (
    activation_elements,
    check_class_labels,
    check_footprint,
    check_latents,
    check_weight_shapes,
    count_parameters,
    eval_mode,
    meta_state_shapes,
    read_weight_shapes,
)


def load_sampling_network(model_dir) -> tuple[SimpleNamespace, Family, torch.nn.Module]:
    """The config, the family and the network that turns latents into images, with its weights loaded strictly.
    Its size (the budgets of ``modeling_utils``) and the file's tensor names and shapes are checked on the meta
    device, before anything is allocated."""
    from safetensors import safe_open

    family, config = load_config(model_dir)
    cfg = SimpleNamespace(**config)
    try:
        with torch.device("meta"):
            meta_net, prefix = family.networks.sampling_network(cfg)
    except AttributeError as err:
        raise ValueError(f"config.json in {str(model_dir)!r} lacks a field: {err}") from None
    weights = Path(model_dir) / "model.safetensors"
    expected = meta_state_shapes(meta_net)
    activations = activation_elements(meta_net, cfg, modeling_utils.MAX_ACTIVATIONS)
    check_footprint(count_parameters(expected), activations, repr(str(model_dir)))
    found = {k[len(prefix) :]: v for k, v in read_weight_shapes(weights).items() if k.startswith(prefix)}
    check_weight_shapes(expected, found, repr(str(weights)))
    net, _ = family.networks.sampling_network(cfg)
    with safe_open(weights, framework="pt") as f:
        net.load_state_dict({name: f.get_tensor(prefix + name) for name in expected}, strict=True)
    return cfg, family, net.eval()


def images_per_chunk(cfg, max_activations: int | None = None, num_images: int = 1) -> int:
    """How many images one forward pass of the sampling network may draw so that the activations of the whole chunk
    stay within `max_activations` elements (default MAX_ACTIVATIONS, ``HF_DGM_MAX_ACTIVATIONS``). Counted on the
    meta device: the cheap upper bound of ``activation_elements`` where it fits all `num_images` in one chunk, the
    exact count otherwise (a loose bound would split requests that fit); a model whose single image exceeds the
    budget is refused."""
    budget = modeling_utils.MAX_ACTIVATIONS if max_activations is None else max_activations
    with torch.device("meta"):
        meta_net, _ = family_of(cfg.model_type).networks.sampling_network(cfg)
    per_image = activation_elements(meta_net, cfg, budget // max(num_images, 1))
    check_footprint(0, per_image, "This model", max_activations=budget)
    return budget // per_image


@contextmanager
def decoding_progress(cfg, num_passes: int = 1, enabled: bool = True):
    """A progress bar of the rows decoded where a model draws its images pixel by pixel (a VAE with a pixel context:
    minutes on a CPU at 64 px), `num_passes` batches of ``cfg.image_size`` rows; yields the callback the decode loop
    calls after each row, or None (and no bar) for a model that decodes in one pass or where not `enabled`. The
    trainer's sample grids and ``hf-dgm sample`` show it."""
    if not (enabled and getattr(cfg, "pixel_context", 0)):
        yield None
        return
    from tqdm.auto import tqdm

    with tqdm(total=num_passes * cfg.image_size, desc="decoding pixels", unit="row", leave=False) as bar:
        yield bar.update


@torch.no_grad()
def generate_images(
    cfg,
    net: torch.nn.Module,
    latents: torch.Tensor,
    class_labels=None,
    generator: torch.Generator | None = None,
    max_activations: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """uint8 images (N, H, W, C) from latents (N, latent_dim), as the pipelines draw them, in chunks sized so that one
    chunk's activations stay within `max_activations` (see ``images_per_chunk``): memory per request is bounded
    whatever N is. `cfg` is a config (the model's ``config`` or ``load_sampling_network``'s), `net` its sampling network
    (``model.sampling_network``), on any device; `class_labels` an int or one int per image for conditional models,
    or class weights (N, num_classes) that mix the classes (``modeling_utils.embed_classes``);
    `generator` draws a VAE's pixels where it decodes pixel by pixel (none: seeded with 0, as the pipelines do);
    `progress`: a progress bar where it does (``decoding_progress``)."""
    check_latents(cfg, latents)
    num_images = latents.shape[0]
    parameter = next(net.parameters(), latents)  # where the network lives, and its dtype
    device, dtype = parameter.device, parameter.dtype
    labels = check_class_labels(cfg, class_labels, num_images, device=device, mixing=True)
    chunk = images_per_chunk(cfg, max_activations, num_images)
    if generator is None:  # one stream for all chunks: the images do not depend on the chunk size
        generator = torch.Generator().manual_seed(0)
    out = np.empty((num_images, cfg.image_size, cfg.image_size, cfg.num_channels), dtype=np.uint8)
    with eval_mode(net), decoding_progress(cfg, -(-num_images // chunk), progress) as rows_done:
        for start in range(0, num_images, chunk):
            stop = min(start + chunk, num_images)
            batch = latents[start:stop].to(device=device, dtype=dtype)
            batch_labels = labels[start:stop] if labels is not None else None
            networks = family_of(cfg.model_type).networks
            out[start:stop] = to_uint8(
                networks.images_from_latents(cfg, net, batch, batch_labels, generator, rows_done)
            )
    return out


def sample_images(
    cfg: SimpleNamespace,
    family: Family,
    net: torch.nn.Module,
    num_images: int,
    seed: int = 0,
    class_labels=None,
    temperature: float = 1.0,
    max_activations: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """uint8 images (N, H, W, C), drawn as the pipelines draw them (all latents from a torch.Generator seeded with
    `seed`), decoded by ``generate_images`` within the memory budget (`progress`: as there)."""
    generator = torch.Generator().manual_seed(seed)
    latents = family.networks.prior_latents(cfg, net, num_images, generator, temperature=temperature)
    return generate_images(cfg, net, latents, class_labels, generator, max_activations, progress)
