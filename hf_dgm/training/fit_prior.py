"""``hf-dgm fit-prior``: a trained VAE with a prior fitted to its training images' latents (``vae.latent_prior``).

The images are the ones the model trained on, as its training record says: the held-out fraction stays out, so the
NLL that ``hf-dgm evaluate`` reports on it is still measured on images neither the networks nor the prior saw. Each
image gives `draws` posterior draws (for a hierarchical VAE, the prior-standardised noise of every group along a
drawn path), binarized as in training for a Bernoulli likelihood. The new model folder holds the model, its record
(with the fit's settings under ``latent_prior``), a grid of 64 samples and a card; the source folder is not changed.
"""

import logging
from pathlib import Path

import torch

from ..file_utils import write_json_atomic
from ..image_processing import make_grid, save_image_atomic, to_uint8
from ..modeling_utils import check_positive_int
from ..records import dataset_record
from ..vae.latent_prior import (
    AutoregressivePrior,
    FittedPrior,
    check_autoregressive_settings,
    check_prior_settings,
    standard_normal_log_prob,
)
from ..vae.networks_hvae import latent_channels, latent_resolutions
from ..vae.networks_vae import LIKELIHOODS

logger = logging.getLogger(__name__)
GRID_IMAGES = 64


@torch.no_grad()
def posterior_draws(model, images: torch.Tensor, draws: int, generator: torch.Generator, batch_size: int = 128):
    """`draws` latents per image (draws * N, latent_dim) from q(z | x), images uint8 (N, C, H, W); Bernoulli models see
    each image binarized with `generator`."""
    binary = LIKELIHOODS[model.config.likelihood].binary
    parts = []
    for _ in range(draws):
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].float() / 255.0
            if binary:
                x = torch.bernoulli(x, generator=generator)
            x = x.to(model.device, model.dtype)
            noise = torch.randn(x.shape[0], model.config.latent_dim, generator=generator).to(x)
            if model.is_hierarchical:
                parts.append(model.posterior_pass(x, None, noise, pixel_context=False)[1].eps.double().cpu())
            else:
                posterior = model.encode(x).latent_dist
                parts.append((posterior.mean + posterior.std * noise).double().cpu())
    return torch.cat(parts)


# each kind's defaults: (components, rank or width, iterations: EM's or the training steps)
KIND_DEFAULTS = {"mixture": (20, 64, 100), "autoregressive": (5, 64, 3000)}


def check_fit_settings(kind: str, components, rank, width, iterations, cfg) -> tuple[int, int, int]:
    """The settings of a `kind` fit, its defaults filled in -> (components, rank or width, iterations); one line
    for a setting of the other kind or an invalid one."""
    if kind not in KIND_DEFAULTS:
        raise ValueError(f"kind={kind!r} is invalid: expected one of {', '.join(KIND_DEFAULTS)}.")
    other = ("width", width) if kind == "mixture" else ("rank", rank)
    if other[1] is not None:
        raise ValueError(f"{other[0]}={other[1]} does not apply to kind={kind!r}: leave it out.")
    default_components, default_size, default_iterations = KIND_DEFAULTS[kind]
    components = default_components if components is None else components
    size = rank if kind == "mixture" else width
    size = default_size if size is None else size
    iterations = default_iterations if iterations is None else iterations
    check_positive_int("iterations", iterations)
    if kind == "mixture":
        check_prior_settings(components, size, cfg.latent_dim, cfg.num_classes, names=("components", "rank"))
    else:
        check_autoregressive_settings(
            components, size, cfg.architecture, cfg.num_classes, names=("components", "width")
        )
    return components, size, iterations


@torch.no_grad()
def mean_log_density_gain(prior, latents: torch.Tensor, batch_size: int = 500) -> float:
    """The prior's mean log density of `latents` over N(0, I)'s, in nats."""
    gains = [prior.log_prob(z) - standard_normal_log_prob(z) for z in latents.split(batch_size)]
    return torch.cat(gains).mean().item()


def fit_prior(
    model_dir,
    output_dir,
    kind: str = "mixture",
    components: int | None = None,
    rank: int | None = None,
    width: int | None = None,
    dataset: str | None = None,
    draws: int = 2,
    iterations: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Fit a prior to the posterior draws of `model_dir`'s training images and write the model with it to
    `output_dir`. `kind` "mixture" (``FittedPrior``: `components` Gaussians in a `rank`-dimensional subspace, EM for
    `iterations`) or "autoregressive" (``AutoregressivePrior``, hierarchical VAEs: `components` Gaussians per position,
    convolutions of `width`, trained for `iterations` steps); None: ``KIND_DEFAULTS``. Returns the fit's record."""
    from ..evaluation.evaluate import default_dataset
    from ..evaluation.real_data import real_images, training_record
    from ..vae.modeling_vae import VAEModel
    from ..zoo import resolve_model

    check_positive_int("draws", draws)
    model_dir, output_dir = resolve_model(model_dir), Path(output_dir)
    if output_dir.resolve() == Path(model_dir).resolve():
        raise ValueError(f"output_dir={str(output_dir)!r} is the model's own folder: expected a new folder.")
    model = VAEModel.from_pretrained(model_dir).eval()
    cfg = model.config
    components, size, iterations = check_fit_settings(kind, components, rank, width, iterations, cfg)
    record = training_record(model_dir)
    dataset = dataset or default_dataset(record)
    split = record.get("split", "train")
    images = real_images(cfg, model_dir, dataset, split, None, None, None)[0].images
    if kind == "mixture" and len(images) * draws <= components:
        raise ValueError(f"{len(images)} images x {draws} draws can't fit {components} components: expected more.")
    generator = torch.Generator().manual_seed(seed)
    logger.info(
        "Fitting a prior to %d posterior draws of %d training images of %r.", draws * len(images), len(images), dataset
    )
    latents = posterior_draws(model, images, draws, generator)
    if kind == "mixture":
        prior = FittedPrior(cfg.latent_dim, components, size).fit(latents, generator, iterations)
    else:
        with torch.random.fork_rng():  # the networks' initial weights, seeded without touching the caller's RNG
            torch.manual_seed(seed)
            prior = AutoregressivePrior(latent_resolutions(cfg), latent_channels(cfg), components, size)
        prior.fit(latents, generator, iterations, progress=progress)
    gain = mean_log_density_gain(prior, latents)
    fitted = model.with_latent_prior(prior)
    fit_record = {
        "kind": kind,
        "components": components,
        "rank" if kind == "mixture" else "width": size,
        "draws": draws,
        "iterations": iterations,
        "seed": seed,
        **dataset_record(dataset),  # local data by its name and content hash: no path of this machine
        "num_images": len(images),  # of the record's split, less its held-out fraction
        "mean_log_density_gain_nats": round(gain, 2),  # over N(0, I), on the draws it was fitted to
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    fitted.save_pretrained(output_dir)
    write_json_atomic(output_dir / "training_args.json", {**record, "latent_prior": fit_record})
    grid = fitted.generate(GRID_IMAGES, generator=torch.Generator().manual_seed(0)).sample
    save_image_atomic(make_grid(to_uint8(grid)), output_dir / "samples.png")  # make_grid: a square grid
    (output_dir / "eval_results.json").unlink(missing_ok=True)  # measured without this prior: not carried over
    from ..model_card import write_model_card

    write_model_card(output_dir)
    return fit_record
