"""The real images `hf-dgm evaluate` compares samples with, sized to the request.

* MNIST (the literature's protocol): the reference is the 10 000 test images; the real-data floor is the last N
  training images against them. Conditional models get balanced labels 0, 1, ..., 9, 0, ...
* Any other dataset: the split at the model's resolution and channels (a dataset of another resolution or channel
  count is refused unless the model was trained on it: then it is converted as the trainer converted it), less the
  part held out from training (``holdout_fraction``, read from the model's training_args.json). Its images in a
  seeded random order form two halves, A and B (h = n // 2 each); N <= h samples are compared with B's first N,
  the floor is A's first N against the same. A conditional model gets the labels of B's first N images.
* Memorization (not on MNIST): samples against a pool of training images, the floor A's first N against another.
  Full protocol: all real images (the floor: against half B). Sized (fewer samples than the protocol's default):
  the pool is B's first N, for samples and floor alike, so only 2N real images are featurized.
* The VAE likelihood: on the held-out images (MNIST: the test set), all of them in the full protocol, the first N
  when sized; where none were held out, on the training images (all, or B's first N when sized).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..records import dataset_record, is_recorded_dataset

MAX_DEFAULT_SAMPLES = 10_000
HALVES_SEED = 0


@dataclass
class RealSets:
    """`images` holds every real image the request needs (uint8); the rest index into it."""

    images: torch.Tensor
    reference: torch.Tensor
    floor: torch.Tensor
    labels: torch.Tensor | None  # the labels samples are drawn for (None: balanced, or unconditional)
    floor_labels: torch.Tensor | None  # the floor images' labels (None: unconditional), for their reconstructions
    memorization: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # (pool, floor queries, floor pool)
    likelihood: object  # the ImageTensorDataset the VAE likelihood is measured on
    likelihood_held_out: bool  # whether those images were held out from training
    num_samples: int
    num_real: int
    words: str  # the protocol's description of the real images
    full: bool
    kind: str = "halves"  # or "mnist-test": the test set is the reference, the likelihood is on binarized digits


def training_record(model_dir) -> dict:
    path = Path(model_dir) / "training_args.json"
    return json.loads(path.read_text()) if path.is_file() else {}


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


def _check_count(num: int, available: int, what: str) -> None:
    if num > available:
        raise ValueError(f"num_samples={num} exceeds {available}, {what}.")


def mnist_sets(cfg, model_dir, dataset: str, num_samples: int | None, full: bool) -> RealSets:
    from ..data import load_image_tensors

    record = training_record(model_dir)
    check_dataset_matches(cfg, dataset, "test", "image", is_recorded_dataset(record, dataset))
    load = dict(resolution=cfg.image_size, num_channels=cfg.num_channels)
    test = load_image_tensors(dataset, "test", **load)
    train = load_image_tensors(dataset, "train", label_column="label" if cfg.num_classes else None, **load)
    num = num_samples or MAX_DEFAULT_SAMPLES
    _check_count(num, min(len(test), len(train)), "the real images available for the samples and the floor")
    images = torch.cat([test.images, train.images[-num:]])
    return RealSets(
        images=images,
        reference=torch.arange(len(test)),
        floor=torch.arange(len(test), len(images)),
        labels=None,
        floor_labels=train.labels[-num:] if cfg.num_classes else None,
        memorization=None,
        likelihood=test,
        likelihood_held_out=True,
        num_samples=num,
        num_real=len(test),
        words=f"the {len(test)} MNIST test images; real-data floor: the last {num} training images vs the test images",
        full=full or num >= MAX_DEFAULT_SAMPLES,
        kind="mnist-test",
    )


def real_images(cfg, model_dir, dataset, split, image_column, label_column, holdout_fraction):
    """(the real images the model is compared with, the held-out ones or None, the holdout fraction used). Columns,
    holdout: as given, else as the model's training record says where it was trained on this dataset and split; there,
    as it trained, the split's first `max_samples` images only where its record has them (the held-out fraction is
    then one of those: of the whole split, it would hold out images the model trained on)."""
    from ..data import holdout_indices, load_image_tensors

    record = training_record(model_dir)
    trained_on_it = is_recorded_dataset(record, dataset) and record.get("split", "train") == split
    image_column = image_column or (record.get("image_column", "image") if trained_on_it else "image")
    label_column = label_column or (record.get("label_column", "label") if trained_on_it else "label")
    check_dataset_matches(cfg, dataset, split, image_column, trained_on_it)
    if holdout_fraction is None:
        holdout_fraction = record.get("holdout_fraction", 0.0) if trained_on_it else 0.0
    labels = label_column if cfg.num_classes else None
    max_samples = record.get("max_samples") if trained_on_it else None
    images = load_image_tensors(dataset, split, image_column, labels, cfg.image_size, cfg.num_channels, max_samples)
    if not holdout_fraction:
        return images, None, 0.0
    kept, held_out = holdout_indices(len(images), holdout_fraction)
    return images.select(kept), images.select(held_out), holdout_fraction


def halves_sets(cfg, model_dir, dataset, split, holdout_fraction, num_samples, full, columns=(None, None)) -> RealSets:
    real, held_out, holdout_fraction = real_images(cfg, model_dir, dataset, split, *columns, holdout_fraction)
    half = len(real) // 2
    num = num_samples or min(half, MAX_DEFAULT_SAMPLES)
    _check_count(num, half, f"half of the {len(real)} real images: the floor compares two disjoint halves")
    full = full or num >= min(half, MAX_DEFAULT_SAMPLES)
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(HALVES_SEED))
    a, b = order[:num], order[half : half + num]
    held = f", less {len(held_out)} held out (fraction {holdout_fraction}, seeded)" if held_out is not None else ""
    if full:  # every real image: the memorization pool is all of them, the floor's all of half B
        images, reference, floor = real.images, b, a
        memorization = (torch.arange(len(real)), a, order[half:])
        likelihood = held_out if held_out is not None else real
    else:  # B's first N then A's first N
        images, reference, floor = real.images[torch.cat([b, a])], torch.arange(num), torch.arange(num, 2 * num)
        memorization = (reference, floor, reference)
        likelihood = held_out.select(torch.arange(min(num, len(held_out)))) if held_out is not None else real.select(b)
    words = (
        f"{num} of the {len(real)} real images of {dataset_record(dataset)['dataset']!r} ({split}{held}) at {cfg.image_size}x{cfg.image_size}; "
        f"real-data floor: {num} other real images vs the same {num}"
    )
    labels, floor_labels = (real.labels[b], real.labels[a]) if cfg.num_classes else (None, None)
    return RealSets(images, reference, floor, labels, floor_labels, memorization, likelihood, held_out is not None, num,
                    len(real), words, full)  # fmt: skip
