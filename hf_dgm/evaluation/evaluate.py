"""`hf-dgm evaluate MODEL`: one protocol over any feature spaces (features.py) and real images sized to the request
(real_data.py). See docs/evaluation.md.

* Samples: N images from the model with `torch.Generator().manual_seed(seed)`, quantised to uint8 like a saved PNG.
* For each feature space (``inception``, a classifier folder): FID, KID (with its std over subsets), FID / floor
  and precision/recall (k = 3) of the samples against the reference images, and the same of N other real images
  (the real-data floor). Classifiers add the class histogram and the classifier Inception Score, and for a
  conditional model of the same classes the accuracy on samples of each requested class next to the classifier's
  held-out accuracy on real images. A space may use the first n <= N samples (`inception_num_samples`); counts are
  in the metrics' names, except on MNIST's test set at the request's count (the protocol text states them).
* Memorization (first space; not on MNIST), and for VAEs the likelihood (likelihood.py).
* `reconstructions` (VAEs): the VAE's reconstructions of the floor's real images stand in for the samples, against
  the same reference: the sample metrics a prior that drew exactly where the encoder puts images would reach, the
  decoder's ceiling (reconstruction FID). No memorization there: a reconstruction is of a real image.
* Names: "<space> FID", "<space> KID"; precision/recall are bare ("precision (k=3)") in the first space listed and
  named by their space in the others ("classifier-feature precision (k=3, ...)").
"""

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..data import MNIST_ID, is_mnist
from ..families import family_of, family_of_folder
from ..file_utils import write_json_atomic
from ..records import dataset_record, is_recorded_dataset, model_reference
from . import metrics
from .common import generate_uint8, load_model, reconstruct_uint8, significant
from .features import INCEPTION, load_feature_space

MEMORIZATION_QUANTILE = 0.01


def default_dataset(record: dict) -> str:
    """The dataset a model was trained on (its training_args.json), where it can be read from here: a Hub id, or local
    data at the recorded path with the recorded content hash (hf_dgm.records); else ylecun/mnist for MNIST models
    and models without a record. Local data found nowhere must be passed with --dataset."""
    recorded = record.get("dataset")
    if not recorded:
        return MNIST_ID
    if is_recorded_dataset(record, recorded) or not (record.get("dataset_sha256") or Path(recorded).is_absolute()):
        return recorded
    if is_mnist(recorded):
        return MNIST_ID
    sha = f" (sha256 {record['dataset_sha256']})" if record.get("dataset_sha256") else ""
    raise ValueError(f"the model was trained on the local dataset {recorded!r}{sha}, not found here: pass --dataset.")


def feature_names(features, dataset: str, classifier_path=None, inception: bool = False) -> list[str]:
    """The requested spaces, in order. `features`: "auto" (MNIST: its classifier; any other dataset: Inception and
    the zoo classifier trained on it, if any), "classifier" (the dataset's), or names and folders (a list or
    comma-separated). `classifier_path` replaces the dataset's classifier; `inception` adds Inception."""
    from .features import dataset_classifier

    requested = [f.strip() for f in features.split(",")] if isinstance(features, str) else [str(f) for f in features]
    if not requested or "" in requested:
        raise ValueError(f"--features {features!r} names no feature space: expected e.g. inception,emoji-classifier.")
    own = str(classifier_path) if classifier_path else dataset_classifier(dataset)
    names = []
    for name in requested:
        if name in ("auto", "classifier") and own is None and (name == "classifier" or is_mnist(dataset)):
            raise ValueError(
                f"no classifier is trained on {dataset!r}: pass --features inception or a classifier folder."
            )
        if name == "auto":
            names += [own] if is_mnist(dataset) else [INCEPTION, *([own] if own else [])]
        else:
            names.append(own if name == "classifier" else name)
    names += [INCEPTION] if inception else []
    return list(dict.fromkeys(names))


def load_spaces(names: list[str], device) -> list:
    spaces = [load_feature_space(name, device) for name in names]
    classifiers = [s.name for s in spaces if s.classifier is not None]
    if len(classifiers) > 1:
        raise ValueError(
            f"--features names {len(classifiers)} classifiers ({', '.join(classifiers)}): one per evaluation."
        )
    return spaces


def real_sets(model, model_dir, dataset, split, holdout_fraction, num_samples, full):
    from .real_data import halves_sets, mnist_sets

    if is_mnist(dataset) and split in (None, "test"):
        return mnist_sets(model.config, model_dir, dataset, num_samples, full)
    return halves_sets(model.config, model_dir, dataset, split or "train", holdout_fraction, num_samples, full)


class Names:
    """The metrics' names of one space (the module docstring)."""

    def __init__(self, label: str, counts: tuple[int, int] | None, primary: bool, fakes: str = "samples"):
        self.label, self.counts, self.pr, self.fakes = label, counts, "" if primary else f"{label} ", fakes

    def __call__(self, metric: str, floor: bool = False) -> str:
        spaced = metric in ("precision (k=3)", "recall (k=3)")
        base = f"{self.pr}{metric}" if spaced else f"{self.label} {metric}"
        if self.counts is None:
            return f"{base} real-data floor" if floor else base
        n, m = self.counts
        inner = f"real-data floor, {n} vs {m} real" if floor else f"{n} {self.fakes} vs {m} real"
        return f"{base[:-1]}, {inner})" if spaced else f"{base} ({inner})"


def fakes_word(reconstructions: bool) -> str:
    """What the compared images are, in the metrics' names and the protocol's words."""
    return "reconstructions" if reconstructions else "samples"


def distance_metrics(name: Names, real, fake, floor, seed: int) -> list[dict]:
    """FID (and the ratio to its floor), KID and precision/recall of the samples and of the floor images."""
    fid, fid_floor = metrics.frechet_distance(real, fake), metrics.frechet_distance(real, floor)
    rows = [
        {"name": name("FID"), "type": "fid", "value": significant(fid)},
        {"name": name("FID", floor=True), "type": "fid", "value": significant(fid_floor)},
        {"name": name("FID / floor"), "type": "fid_ratio", "value": significant(fid / max(fid_floor, 1e-12))},
    ]
    for is_floor, other in ((False, fake), (True, floor)):
        kid, kid_std = metrics.kernel_distance(real, other, seed=seed)
        rows += [{"name": name("KID", is_floor), "type": "kid", "value": significant(kid), "std": significant(kid_std)}]
    for is_floor, other in ((False, fake), (True, floor)):
        precision, recall = metrics.precision_recall(real, other, k=3)
        rows += [
            {"name": name("precision (k=3)", is_floor), "type": "precision", "value": significant(precision)},
            {"name": name("recall (k=3)", is_floor), "type": "recall", "value": significant(recall)},
        ]
    return rows


def class_names(cfg) -> list[str] | None:
    """The names of a config's classes, or None where it has no names of its own (transformers' LABEL_i)."""
    labels = getattr(cfg, "id2label", None) or {}
    names = [labels.get(i) for i in range(cfg.num_classes)]
    return None if None in names or all(n.startswith("LABEL_") for n in names) else names


def class_results(space, fake_logits, requested, model_cfg) -> tuple[list[dict], dict]:
    """A classifier's Inception Score and class histogram of the samples; for a conditional model of the same
    classes its accuracy on them (overall and per requested class) next to its held-out accuracy on real images."""
    score, score_std = metrics.inception_score(fake_logits)
    rows = [{"name": "classifier Inception Score", "type": "inception_score", "value": significant(score),
             "std": significant(score_std)}]  # fmt: skip
    extra = {"class_histogram": [significant(h) for h in metrics.class_histogram(fake_logits)]}
    clf = space.classifier.config
    if requested is None:
        return rows, extra
    names, model_names = class_names(clf), class_names(model_cfg)
    if clf.num_classes != model_cfg.num_classes or (names and model_names and names != model_names):
        extra["conditional_accuracy_note"] = (
            f"not measured: {space.name}'s {clf.num_classes} classes ({', '.join(names or [])}) are not the model's "
            f"{model_cfg.num_classes} ({', '.join(model_names or [])})"
        )
        return rows, extra
    acc, per_class = metrics.conditional_accuracy(fake_logits, requested)
    held = space.record.get("held_out_accuracy", space.record.get("test_accuracy"))
    rows.append({"name": "conditional accuracy", "type": "accuracy", "value": significant(acc)})
    if held is not None:
        rows.append(
            {"name": f"{space.name} held-out accuracy (real images)", "type": "accuracy", "value": significant(held)}
        )
    counts = torch.bincount(requested.cpu(), minlength=clf.num_classes).tolist()
    extra |= {
        "class_names": names or model_names or [str(c) for c in range(clf.num_classes)],
        "conditional_accuracy_per_class": [significant(a) if c else None for a, c in zip(per_class, counts)],
        "requested_per_class": counts,
        "classifier_held_out_accuracy_per_class": space.record.get("held_out_accuracy_per_class"),
    }
    return rows, extra


def real_groups(sets, num: int, primary: bool) -> list[torch.Tensor]:
    """The real images one space needs (indices): the reference (its first `num` where num < N), the first `num`
    floor images, and for the first space the memorization's."""
    reference = sets.reference if num == sets.num_samples else sets.reference[:num]
    return [reference, sets.floor[:num], *(sets.memorization or () if primary else ())]


def real_features(space, sets, groups: list[torch.Tensor], progress: bool):
    """Features (and logits) of the real images the index `groups` name, computed once (cached) and indexed."""
    needed = torch.unique(torch.cat(groups))
    label = f"{space.name} features: {len(needed)} real images" if progress else None
    feats, logits = space.cached(sets.images[needed], label)
    where = torch.full((len(sets.images),), -1, dtype=torch.long)
    where[needed] = torch.arange(len(needed))
    return lambda idx: (feats[where[idx]], logits[where[idx]] if logits is not None else None)


def space_results(
    space, num: int, sets, fake, requested, cfg, primary: bool, seed: int, progress: bool, reconstructions=False
) -> dict:
    """One space's metrics: the first `num` samples (or a VAE's `reconstructions`) against the reference (its first
    `num` where num < N) and the first `num` floor images; memorization too for the first space."""
    fakes = fakes_word(reconstructions)
    reference, floor, *_ = groups = real_groups(sets, num, primary)
    use_memorization = primary and sets.memorization is not None
    real = real_features(space, sets, groups, progress)
    start = time.time()
    fake_f, fake_logits = space(fake[:num], f"{space.name} features: {num} {fakes}" if progress else None)
    seconds = (time.time() - start) / num * 1000
    # MNIST's test set at the request's count names no counts; reconstructions always say what they are
    mnist_full = sets.kind == "mnist-test" and num == sets.num_samples and not reconstructions
    names = Names(space.label, None if mnist_full else (num, len(reference)), primary, fakes)
    out = {"metrics": distance_metrics(names, real(reference)[0], fake_f, real(floor)[0], seed), "extra": {}}
    out["timing"] = {space.name: significant(seconds, 3)}
    if fake_logits is not None:
        rows, out["extra"] = class_results(space, fake_logits, requested[:num] if requested is not None else None, cfg)
        out["metrics"] += rows
    if use_memorization:
        rows, out["memorization_protocol"] = memorization(real, sets, fake_f, num, space.name)
        out["metrics"] += rows
    return out


def memorization(real, sets, fake_features, num: int, space_name: str) -> tuple[list[dict], str]:
    """The memorized share of the samples and of the floor (real_data.py), and the protocol's words."""
    pool, floor_queries, floor_pool = sets.memorization
    share, threshold = metrics.memorized_share(real(pool)[0], fake_features, MEMORIZATION_QUANTILE)
    floor_share, _ = metrics.memorized_share(real(floor_pool)[0], real(floor_queries)[0], MEMORIZATION_QUANTILE)
    rows = [
        {"name": f"memorized share ({num} samples vs {len(pool)} real)", "type": "memorization",
         "value": significant(share)},
        {"name": f"memorized share (real-data floor, {len(floor_queries)} vs {len(floor_pool)} real)",
         "type": "memorization", "value": significant(floor_share)},
    ]  # fmt: skip
    sized = (
        ""
        if sets.full
        else f" (sized to the request: {len(pool)} of the {sets.num_real} real images; --full-protocol for all)"
    )
    words = (
        f"memorized: a sample whose nearest real image ({space_name} features, Euclidean) is closer than "
        f"{threshold:.4g}, the {MEMORIZATION_QUANTILE:.0%} quantile of the real images' leave-one-out nearest-neighbour "
        f"distances (a sampler of new images scores about {MEMORIZATION_QUANTILE:.0%}){sized}; floor: "
        f"{len(floor_queries)} real images of one half against the other half's {len(floor_pool)}."
    )
    return rows, words


def space_counts(spaces, num: int, inception_num_samples: int | None) -> list[int]:
    if inception_num_samples is not None and inception_num_samples > num:
        raise ValueError(f"inception_num_samples={inception_num_samples} exceeds num_samples={num}.")
    return [inception_num_samples or num if s.name == INCEPTION else num for s in spaces]


def plan(spaces, counts, sets, likelihood: str | None, device) -> str:
    """What the request will compute, and the Inception features' share of the time on a CPU."""
    lines, seconds = [f"hf-dgm evaluate: {sets.num_samples} samples ({'full' if sets.full else 'sized'} protocol)"], 0.0
    for space, num in zip(spaces, counts):
        needed = torch.unique(torch.cat(real_groups(sets, num, space is spaces[0])))
        todo = 0 if space.is_cached(sets.images[needed]) else len(needed)
        seconds += (todo + num) * space.s_per_image_cpu / max(1, torch.get_num_threads())
        lines.append(
            f"  {space.name}: {num} samples, {len(needed)} real images ({'cached' if not todo else 'to compute'})"
        )
    if likelihood:
        lines.append(f"  likelihood: {likelihood} (k decodes per image: --iwae-k or --skip-likelihood for less)")
    if device.type == "cpu" and seconds > 60:
        lines.append(f"  Inception features: about {seconds / 60:.0f} min on {torch.get_num_threads()} CPU thread(s)")
    if not sets.full:
        lines.append("  (real-image work sized to the request; --full-protocol for the whole protocol)")
    return "\n".join(lines)


def evaluate(
    model_path,
    dataset: str | None = None,
    features="auto",
    split: str | None = None,
    holdout_fraction: float | None = None,
    classifier_path=None,
    num_samples: int | None = None,
    seed: int = 0,
    iwae_k: int | None = None,
    num_test_images: int | None = None,
    random_test_images: bool = False,
    skip_likelihood: bool = False,
    iwae_state_path=None,
    progress: bool = True,
    inception: bool = False,
    inception_num_samples: int | None = None,
    device: str = "auto",
    full_protocol: bool = False,
    temperature: float = 1.0,
    reconstructions: bool = False,
) -> dict:
    """Evaluate a model folder, zoo name or Hub id against `dataset` (default: the one it was trained on, from its
    training_args.json, else ylecun/mnist) in the feature spaces `features` (see `feature_names`). Real-image work
    is sized to `num_samples` when it is below the protocol's default, unless `full_protocol` (real_data.py).
    `device`: "auto" (CUDA when available, else the CPU), "cpu", "cuda", ... Latents and the IWAE noise are drawn on
    the CPU with fixed seeds whatever the device (CPU runs are the bit-reproducible ones). `temperature`: a VAE's
    samples are drawn at this prior temperature (the pipeline's). `reconstructions`: a VAE's reconstructions of real
    images instead of its samples (the module docstring), without the likelihood."""
    from ..zoo import resolve_model
    from .real_data import training_record

    start = time.time()
    model_dir = resolve_model(model_path)
    check_sampling_temperature(model_dir, temperature)
    if reconstructions:
        check_reconstructions(model_dir, temperature)
    dataset = dataset or default_dataset(training_record(model_dir))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    spaces = load_spaces(feature_names(features, dataset, classifier_path, inception), device)
    model = load_model(model_dir).to(device)
    sets = real_sets(model, model_dir, dataset, split, holdout_fraction, num_samples, full_protocol)
    if reconstructions:  # each is of a real image: no memorization check
        sets = replace(sets, memorization=None)
    counts = space_counts(spaces, sets.num_samples, inception_num_samples)
    likelihood = None
    if family_of(model.config.model_type).has_likelihood and not (skip_likelihood or reconstructions):
        likelihood = likelihood_request(model, sets, iwae_k, num_test_images, random_test_images)
    if progress:
        print(plan(spaces, counts, sets, likelihood and likelihood[2], device), file=sys.stderr, flush=True)
    reference = model_reference(model_path)
    results = {"model": reference, "model_type": model.config.model_type, "seed": seed, "device": str(device)}
    results |= sample_and_measure(
        model, spaces, counts, sets, dataset, split, seed, temperature, progress, reconstructions
    )
    if likelihood:
        results |= measure_likelihood(model, sets, *likelihood[:2], random_test_images, seed, iwae_state_path, progress)
    results["metrics"] += results.pop("likelihood_metrics", [])
    results["time_s"] = significant(time.time() - start)
    return results


def check_sampling_temperature(model_dir, temperature: float) -> None:
    """Before anything is loaded: the model's family takes this prior temperature (``check_prior_temperature``)."""
    family_of_folder(model_dir).networks.check_prior_temperature(temperature)


def check_reconstructions(model_dir, temperature: float) -> None:
    """Before anything is loaded: reconstructions are a VAE's, and no prior temperature applies to them."""
    family = family_of_folder(model_dir)
    if not family.has_encoder:
        raise ValueError(f"--reconstructions: {Path(model_dir).name} is a {family.name.upper()}: expected a VAE, whose "
                         "encoder gives the reconstructions.")  # fmt: skip
    if temperature != 1.0:
        raise ValueError(f"--temperature {temperature!r} applies to samples, not to --reconstructions.")


def sample_and_measure(
    model, spaces, counts, sets, dataset, split, seed: int, temperature: float, progress: bool, reconstructions=False
) -> dict:
    """Draw the samples (or a VAE's reconstructions of the floor's images) once and measure them in every space (the
    module docstring)."""
    start = time.time()
    if reconstructions:
        fake, requested = reconstruct_uint8(model, sets.images[sets.floor], sets.floor_labels), sets.floor_labels
        words = "(each image encoded, its posterior mean decoded) of the floor's images"
    else:
        fake, requested = generate_uint8(model, sets.num_samples, seed, labels=sets.labels, temperature=temperature)
        k = model.config.num_classes
        cond = (
            ""
            if not k
            else "; balanced labels"
            if sets.kind == "mnist-test"
            else f"; labels of the compared real images ({k} classes)"
        )
        at = f"; prior temperature {temperature}" if temperature != 1.0 else ""
        words = f"(torch.Generator seed {seed}{cond}{at})"
    sampling = (time.time() - start) / sets.num_samples * 1000
    rows, extra, timing, memorization_words = [], {}, {}, None
    for i, (space, num) in enumerate(zip(spaces, counts)):
        out = space_results(space, num, sets, fake, requested, model.config, i == 0, seed, progress, reconstructions)
        rows += out["metrics"]
        extra |= out["extra"]
        timing |= out["timing"]
        memorization_words = memorization_words or out.get("memorization_protocol")
    fakes = fakes_word(reconstructions)
    spaces_words = "; ".join(
        space.description + (f" on the first {num} {fakes} vs {num} real" if num < sets.num_samples else "")
        for space, num in zip(spaces, counts)
    )
    results = {
        **dataset_record(dataset),  # a Hub id as given, local data by its name and content hash
        "split": "test" if sets.kind == "mnist-test" else split or "train",
        "num_samples": sets.num_samples,
        "num_reference_images": len(sets.reference),
        "num_real_images": sets.num_real,
        "feature_extractor": spaces[0].description,
        "feature_spaces": [{"name": s.name, "num_samples": n} for s, n in zip(spaces, counts)],
        "protocol": f"{sets.num_samples} {fakes} {words} vs {sets.words}. Features: {spaces_words}.",
        "sampling_s_per_1000_images": significant(sampling, 3),
        "features_s_per_1000_images": timing,
        "metrics": rows,
    }
    return results | ({"memorization_protocol": memorization_words} if memorization_words else {}) | extra


def likelihood_request(
    model, sets, iwae_k: int | None, num_test_images: int | None, random_test_images: bool = False
) -> tuple[int, int, str]:
    """(k, images, words) of the VAE likelihood: MNIST's binarized test set (the first `num_test_images`, or
    a random draw of them) or the 8-bit held-out images."""
    if sets.kind == "mnist-test":
        k = iwae_k or 5000
        n = num_test_images or (len(sets.likelihood) if sets.full else min(sets.num_samples, len(sets.likelihood)))
        if n > len(sets.likelihood):
            raise ValueError(f"num_test_images={n} exceeds the {len(sets.likelihood)} test images.")
        if random_test_images and not num_test_images:
            raise ValueError("random_test_images draws num_test_images of the test images: pass num_test_images.")
        which = "random " if random_test_images else ""
        return k, n, f"IWAE bound, k={k}, on {n} {which}binarized test images"
    if num_test_images or random_test_images:
        raise ValueError(
            "num_test_images and random_test_images choose MNIST test images; this dataset's NLL is measured on its "
            f"{len(sets.likelihood)} held-out images: leave them out."
        )
    k, n = iwae_k or 100, len(sets.likelihood)
    return k, n, f"IWAE bound, k={k}, on {n} {'held-out' if sets.likelihood_held_out else 'training'} images"


def measure_likelihood(model, sets, k: int, n: int, random: bool, seed: int, state_path, progress: bool) -> dict:
    from .likelihood import binary_likelihood, likelihood_8bit

    if sets.kind == "mnist-test":
        return binary_likelihood(model, sets.likelihood, k, n, random, seed, state_path, progress)
    return likelihood_8bit(model, sets.likelihood, sets.likelihood_held_out, k, seed, state_path, progress)


def write_results(model_dir, results: dict) -> Path:
    return write_json_atomic(Path(model_dir) / "eval_results.json", results)
