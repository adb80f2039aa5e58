"""Sampling without transformers or diffusers: the fast path behind ``hf-dgm sample``.

It reads ``config.json``, validates it with the same functions as the config classes, builds the plain torch
network (the EMA generator for GANs when present, the decoder for VAEs), loads only its weights from
``model.safetensors`` and samples exactly as ``GANPipeline`` / ``VAEPipeline`` do: same seed, same pixels.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import torch

MODEL_TYPES = ("hf_dgm_gan", "hf_dgm_vae")


def read_config(model_dir) -> SimpleNamespace:
    path = Path(model_dir) / "config.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"No config.json in {str(model_dir)!r}: not a model folder.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from None
    model_type = raw.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{str(path)!r} has model_type={model_type!r}: expected one of {MODEL_TYPES}.")
    if raw.get("format_version", 1) != 1:
        raise ValueError(f"format_version={raw.get('format_version')!r} is not supported: expected 1.")
    return SimpleNamespace(**raw)


def load_sampling_network(model_dir) -> tuple[SimpleNamespace, torch.nn.Module]:
    """Build the network that turns latents into images and load its weights (strictly)."""
    from safetensors import SafetensorError, safe_open

    cfg = read_config(model_dir)
    try:
        if cfg.model_type == "hf_dgm_gan":
            from .gan.networks_gan import build_generator

            net = build_generator(cfg)
            prefix = "generator_ema." if cfg.use_ema else "generator."
        else:
            from .vae.networks_vae import build_decoder

            net = build_decoder(cfg)
            prefix = "decoder."
    except AttributeError as err:
        raise ValueError(f"config.json in {str(model_dir)!r} lacks a field: {err}") from None
    weights = Path(model_dir) / "model.safetensors"
    try:
        with safe_open(weights, framework="pt") as f:
            state = {k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    except FileNotFoundError:
        raise FileNotFoundError(f"No model.safetensors in {str(model_dir)!r}.") from None
    except SafetensorError as err:
        raise OSError(f"{str(weights)!r} can't be read: truncated or corrupt ({err}).") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"The weights in {str(weights)!r} don't match its config: {err}") from None
    return cfg, net.eval()


@torch.no_grad()
def sample_images(
    cfg: SimpleNamespace,
    net: torch.nn.Module,
    num_images: int,
    seed: int = 0,
    class_labels=None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1], drawn as the pipelines draw them (torch.Generator seeded with `seed`)."""
    from .image_processing import to_unit_range

    generator = torch.Generator().manual_seed(seed)
    if cfg.model_type == "hf_dgm_gan":
        from .gan.networks_gan import check_class_labels, sample_latents

        latents = sample_latents(cfg, num_images, generator)
        labels = check_class_labels(cfg, class_labels, num_images)
        return to_unit_range(net(latents, labels), (-1.0, 1.0))
    from .vae.networks_vae import check_class_labels, logits_to_images, sample_latents

    latents = sample_latents(cfg, num_images, generator, temperature=temperature)
    labels = check_class_labels(cfg, class_labels, num_images)
    return logits_to_images(net(latents, labels))
