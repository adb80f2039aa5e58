"""VAE likelihoods: on dynamically binarized MNIST, the protocol of Burda et al. (2015), and in bits per dimension
on 8-bit images (`likelihood_8bit`).

The test images are binarized once with a fixed seed (x_bin ~ Bernoulli(x / 255)). For each image,

    log p(x) >= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x),

with k = 5000 by default; NLL = -that bound, in nats, averaged over the test images. The k samples are drawn in
chunks (memory), images in batches; progress is saved after every batch to a state file so an interrupted run
resumes where it stopped. With k = 1 the bound is the ELBO.
"""

import ctypes
import ctypes.util
import json
import math
import os
from functools import lru_cache
from pathlib import Path

import torch

from ..file_utils import write_json_atomic


def binarize_once(images_uint8: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The fixed binarization of a test set: float {0, 1} tensor (N, C, H, W)."""
    return torch.bernoulli(images_uint8.float() / 255.0, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def log_importance_weights(vae, x: torch.Tensor, num_samples: int, generator, labels=None) -> torch.Tensor:
    """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for `num_samples` z_i per image: (num_samples, B)
    (``VAEModel.log_importance_weights``); the memory the call freed is handed back (`release_freed_memory`)."""
    log_w = vae.log_importance_weights(x, num_samples, generator, labels)
    release_freed_memory()
    return log_w


@lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (macOS, Windows, musl)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory() -> None:
    """Return the heap memory freed since the last call to the OS (glibc; a no-op elsewhere). The k=5000 bound makes
    thousands of decoder calls per batch of images, and glibc kept what each call freed: `hf-dgm evaluate
    zoo/vae-mnist` grew by about 1.3 MB per call, past 21 GB, where it stays flat at 0.5 GB with this after each
    call (docs/evaluation.md)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@torch.no_grad()
def kl_per_group(vae, x: torch.Tensor, labels=None, batch_size: int = 100, seed: int = 0) -> torch.Tensor:
    """KL(q || p) in nats of each latent group, per image: (N, groups), one posterior draw per image (seeded). A VAE
    with a single latent has one group; a hierarchical one reports each group's KL given the groups drawn before it
    (``VAEOutput.kl_per_group``)."""
    vae.eval()
    generator, parts = torch.Generator().manual_seed(seed), []
    for i in range(0, x.shape[0], batch_size):
        y = labels[i : i + batch_size].to(vae.device) if labels is not None else None
        out = vae(x[i : i + batch_size].to(vae.device), generator=generator, class_labels=y)
        kl = out.kl_per_group if out.kl_per_group is not None else out.latent_dist.kl()[:, None]
        parts.append(kl.double().cpu())
    return torch.cat(parts)


def latent_kl_metrics(vae, x: torch.Tensor, labels=None, seed: int = 0) -> list[dict]:
    """What the latent carries: the mean KL in bits of each latent group (coarse to fine) and of all together."""
    bits = kl_per_group(vae, x, labels, seed=seed).mean(0) / math.log(2)
    cfg, which = vae.config, f"{x.shape[0]} images"
    if bits.numel() == 1:
        return [{"name": f"KL of the latent ({which}) bits", "type": "kl_bits", "value": round(bits.item(), 1)}]
    from ..vae.networks_hvae import latent_channels, latent_resolutions

    channels = latent_channels(cfg)
    metrics = [
        {"name": f"KL of latent group {g} ({r}x{r}x{channels}; {which}) bits", "type": "kl_bits", "value": round(b, 1)}
        for g, (r, b) in enumerate(zip(latent_resolutions(cfg), bits.tolist(), strict=True))
    ]
    total = {
        "name": f"KL of the latent, all groups ({which}) bits",
        "type": "kl_bits",
        "value": round(bits.sum().item(), 1),
    }
    return [*metrics, total]


@torch.no_grad()
def iwae_log_likelihood(
    vae,
    x_binary: torch.Tensor,
    k: int = 5000,
    labels: torch.Tensor | None = None,
    batch_size: int = 100,
    chunk: int = 500,
    seed: int = 0,
    state_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Per-image importance-weighted bound log p(x) (nats), shape (N,). Resumable through `state_path`.

    One call decodes `batch_size` images x `chunk` importance samples, fewer where that many would exceed the
    activation budget (``sampling.images_per_chunk``, ``HF_DGM_MAX_ACTIVATIONS``): the hierarchical vae-mnist at
    100 x 500 grew past 21 GB."""
    from ..sampling import images_per_chunk

    vae.eval()
    n = x_binary.shape[0]
    per_call = images_per_chunk(vae.config, num_images=batch_size * min(chunk, k))
    batch_size = min(batch_size, per_call, n)  # fewer images than a batch: more importance samples per call
    chunk = max(1, min(chunk, k, per_call // batch_size))
    key = {"k": k, "n": n, "seed": seed, "chunk": chunk, "batch_size": batch_size}
    done = torch.full((n,), float("nan"), dtype=torch.float64)
    if state_path is not None and Path(state_path).is_file():
        state = json.loads(Path(state_path).read_text())
        if state["key"] == key:
            values = torch.tensor(state["values"], dtype=torch.float64)
            done[: len(values)] = values
    from tqdm.auto import tqdm

    start = int((~torch.isnan(done)).sum())
    for i in tqdm(range(start, n, batch_size), disable=not progress, desc=f"IWAE k={k}"):
        x = x_binary[i : i + batch_size].to(vae.device)
        y = labels[i : i + batch_size].to(vae.device) if labels is not None else None
        gen = torch.Generator().manual_seed(seed * 1_000_003 + i)  # per batch: resuming gives the same numbers
        parts = [log_importance_weights(vae, x, min(chunk, k - j), gen, y).double().cpu() for j in range(0, k, chunk)]
        log_w = torch.cat(parts)  # (k, B)
        done[i : i + x.shape[0]] = torch.logsumexp(log_w, 0) - math.log(k)
        if state_path is not None:  # its folder is created if missing
            write_json_atomic(state_path, {"key": key, "values": done[: i + x.shape[0]].tolist()})
    return done


IWAE_CHUNK = 100  # importance samples decoded per call (8-bit images)
IWAE_MAX_DECODER_OUTPUTS = 2**26  # decoder output values per call (64x64 RGB, one logistic: 27 images x 100 samples)


def test_image_indices(total: int, n: int, random: bool) -> torch.Tensor:
    """The test images of the NLL: the first `n` of `total`, or with `random` a random `n` (one fixed draw, seed 0,
    kept in test-set order): MNIST's first test images are easier than its last, so only a random subset estimates
    the whole test set's NLL."""
    if not random:
        return torch.arange(n)
    return torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n].sort().values


def binary_likelihood(model, test, iwae_k: int, n: int, random: bool, seed: int, state_path, progress) -> dict:
    """The ELBO and the IWAE bound (nats) on `n` MNIST test images (`test_image_indices`), binarized once (Burda et
    al.)."""
    picked = test_image_indices(len(test.images), n, random)
    x = binarize_once(test.images[picked], seed=0)
    labels = test.labels[picked] if model.config.num_classes else None
    elbo = iwae_log_likelihood(model, x, k=1, labels=labels, seed=seed + 1, progress=False)
    bound = iwae_log_likelihood(model, x, k=iwae_k, labels=labels, seed=seed, state_path=state_path, progress=progress)
    with torch.no_grad():
        recon = []
        for i in range(0, n, 500):
            y = labels[i : i + 500].to(model.device) if labels is not None else None
            xb = x[i : i + 500].to(model.device)
            z = model.encode(xb, class_labels=y).latent_dist.mode()
            recon.append((model.decode(z, class_labels=y).sample - xb).pow(2).flatten(1).sum(1).cpu())
        recon = torch.cat(recon).mean().item()
    note = ""
    if model.config.likelihood != "bernoulli":
        note = f" ({model.config.likelihood} likelihood on binary data: not comparable with the Bernoulli literature)"
    images = f"{n} {'random ' if random and n < len(test.images) else ''}test images"
    reduced = "" if (iwae_k == 5000 and n == len(test.images)) else f" REDUCED PROTOCOL: k={iwae_k}, {images}"
    counts = f"k={iwae_k}, {images}" + (", REDUCED" if reduced else "")  # in the metric's name: cards show it
    cond = " conditional on the label, log p(x|y)" if labels is not None else ""
    which = " (a random draw of the test set, seed 0)" if random and n < len(test.images) else ""
    proto = (
        f"dynamically binarized MNIST test set (binarized once, seed 0), {n} images{which}, k={iwae_k}{cond}{note}"
        f"{reduced}"
    )
    return {
        "likelihood_protocol": proto,
        "likelihood_metrics": [
            {"name": f"NLL (IWAE bound, {counts}) nats", "type": "nll", "value": round(-bound.mean().item(), 3)},
            {
                "name": f"negative ELBO ({images}) nats",
                "type": "neg_elbo",
                "value": round(-elbo.mean().item(), 3),
            },
            {"name": "reconstruction squared error (per image)", "type": "mse", "value": float(f"{recon:.6g}")},
            *latent_kl_metrics(model, x, labels, seed=seed + 2),
        ],
    }


def likelihood_8bit(model, images, held_out: bool, k: int, seed: int, state_path, progress: bool) -> dict:
    """The IWAE bound and the ELBO in bits per dimension on 8-bit images (VAEs with an 8-bit likelihood only):
    -log p(x) / (C * H * W * ln 2), comparable with lossless codecs."""
    import logging

    from ..vae.networks_vae import EIGHT_BIT_LIKELIHOODS, output_channels, pixel_context_size

    cfg = model.config
    if cfg.likelihood not in EIGHT_BIT_LIKELIHOODS:
        logging.getLogger(__name__).warning(
            "No NLL: the %s likelihood is not a probability of 8-bit images.", cfg.likelihood
        )
        return {"likelihood_protocol": f"no NLL: the {cfg.likelihood} likelihood is not a probability of 8-bit images"}
    x = images.images.float() / 255.0
    labels = images.labels if cfg.num_classes else None
    dims = cfg.num_channels * cfg.image_size**2 * math.log(2)
    chunk = min(k, IWAE_CHUNK)  # decoded at once: batch * chunk images, within IWAE_MAX_DECODER_OUTPUTS
    batch = max(1, min(100, IWAE_MAX_DECODER_OUTPUTS // (chunk * output_channels(cfg) * cfg.image_size**2)))
    bound = iwae_log_likelihood(
        model, x, k=k, labels=labels, batch_size=batch, chunk=chunk, seed=seed, state_path=state_path, progress=progress
    )
    elbo = iwae_log_likelihood(model, x, k=1, labels=labels, seed=seed + 1, progress=False)
    which = f"{len(x)} held-out images" if held_out else f"{len(x)} training images (none held out)"
    size = pixel_context_size(cfg)
    context = f" with a {size}x{size} pixel context (each pixel given the earlier ones)" if size else ""
    return {
        "likelihood_protocol": (
            f"{cfg.likelihood.replace('_', ' ')}{context} NLL on {which}, 8-bit levels, importance-weighted bound with "
            f"k={k}; bits/dim = nats / ({cfg.num_channels}*{cfg.image_size}*{cfg.image_size}*ln 2)"
        ),
        "likelihood_metrics": [
            {
                "name": f"NLL (IWAE bound, k={k}, {which}) bits/dim",
                "type": "bits_per_dim",
                "value": round(-bound.mean().item() / dims, 4),
            },
            {
                "name": f"negative ELBO ({which}) bits/dim",
                "type": "bits_per_dim",
                "value": round(-elbo.mean().item() / dims, 4),
            },
            *latent_kl_metrics(model, x, labels, seed=seed + 2),
        ],
    }
