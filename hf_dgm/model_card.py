"""Model cards rendered from `model_cards/hf_dgm_model_card.md` with huggingface_hub's `ModelCard`."""

import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path

from .data import MNIST_ID, is_mnist
from .families import family_of, read_config
from .file_utils import atomic_write, count_parameters, read_weight_shapes

TEMPLATE = "hf_dgm_model_card.md"
HUB_DATASET_ID = re.compile(r"[\w-][\w.-]*(/[\w-][\w.-]*)?")  # "mnist", "ylecun/mnist"; anything else is a path
SNIPPET_BATCH_SIZE = 16  # the batch the card's usage snippets draw


def template_path() -> Path:
    """The card template: inside the installed package (the wheel maps the top-level ``model_cards/`` to
    ``hf_dgm/model_cards/``), else in the source checkout's ``model_cards/``."""
    package = Path(__file__).resolve().parent
    for folder in (package / "model_cards", package.parent / "model_cards"):
        if (folder / TEMPLATE).is_file():
            return folder / TEMPLATE
    raise FileNotFoundError(f"The model card template {TEMPLATE} is missing from {package}: reinstall hf-dgm.")


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


SOURCE_REPOSITORY = "https://github.com/hf-dgm/hf-dgm"  # pyproject's [project.urls] Repository (tests/test_docs.py)


@dataclass(frozen=True)
class CardDataset:
    """A dataset as a card names it. A local folder is shown by its folder name only: the machine's path stays out."""

    name: str  # the model-index's dataset name: "MNIST", "emoji", "huggan/pokemon"
    label: str  # the training table's: "ylecun/mnist (local copy)", "emoji (a local dataset)", "huggan/pokemon"
    hub_id: str | None  # for `datasets:` metadata and the model-index's dataset type; None for a local folder
    is_mnist: bool
    license: tuple[str, str] | None = None  # a known local dataset's (license id, sentence on the weights)

    @property
    def tag(self) -> str:
        return self.name.split("/")[-1].lower()


NOTO_EMOJI = "https://github.com/googlefonts/noto-emoji"
# Local datasets a card recognises by their content hash (hf_dgm.records): what they are and their license
KNOWN_DATASETS = {
    # scripts/build_emoji_dataset.py at 64 px (docs/emoji_dataset.md); the hash of its one parquet file
    "d9b3a15f81d577d5d7c2889c583bd5cfb67a8d60fd8aebad43a140f0201db7a2": CardDataset(
        "emoji",
        "emoji (3,596 Noto Color Emoji images, 64x64, built by scripts/build_emoji_dataset.py)",
        None,
        False,
        (
            "apache-2.0",
            f"These weights were trained on images of the Noto Emoji artwork ({NOTO_EMOJI}, Apache-2.0) and are "
            "released under Apache-2.0.",
        ),
    ),
}


def card_dataset(dataset: str | None, sha256: str | None = None) -> CardDataset:
    """`dataset` as a record names it (hf_dgm.records: a Hub id, a local dataset's name with its content hash
    `sha256`, or an older record's path); None: the default of `hf-dgm train` and `hf-dgm evaluate`. A local
    dataset named ``mnist`` is taken for a copy of the Hub's MNIST (same schema)."""
    dataset = dataset or MNIST_ID
    local = bool(sha256) or Path(dataset).expanduser().exists() or not HUB_DATASET_ID.fullmatch(dataset)
    folder = Path(dataset).expanduser().resolve().name if local else None  # the name only: "." works too
    if is_mnist(dataset):
        return CardDataset("MNIST", f"{MNIST_ID} (local copy)" if local else MNIST_ID, MNIST_ID, True)
    if sha256 in KNOWN_DATASETS:
        return KNOWN_DATASETS[sha256]
    if local:
        hashed = f", sha256 {sha256}" if sha256 else ""
        return CardDataset(folder, f"{folder} (a local dataset{hashed})", None, False)
    return CardDataset(dataset, dataset, dataset, False)


# what the card's training table lists of training_args.json, where set; the GAN regularisers only where used
TRAINING_ROWS = (
    "dataset", "split", "image_size", "num_channels", "holdout_fraction", "num_train_images", "num_held_out_images",
    "steps", "batch_size", "loss", "lr_g", "lr_d", "lr", "beta", "ema_decay", "iwae_samples", "hardware",
    "training_time_s", "seed", "num_processes",
)  # fmt: skip
REGULARISERS = ("r1_gamma", "label_smoothing", "feature_matching", "historical_averaging", "diffaugment")
# the texts of eval_results.json that say how its metrics were measured, in the order the card joins them
PROTOCOLS = ("protocol", "likelihood_protocol", "memorization_protocol")


def render_model_card(model_dir, repo_id: str | None = None, note: str = ""):
    """The card of a model folder; `repo_id` names it (default: hf-dgm/<folder name>), `note` is shown under the
    description (e.g. where the weights came from), followed by the run's --card-note."""
    from huggingface_hub import ModelCard

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    family = family_of(config.get("model_type"), f"{str(model_dir / 'config.json')!r}")
    train = _read_json(model_dir / "training_args.json")
    evals = _read_json(model_dir / "eval_results.json") or {}
    repo_id = repo_id or f"hf-dgm/{model_dir.resolve().name}"
    model_name = repo_id.split("/")[-1]
    conditional = bool(config.get("num_classes"))
    dataset = card_dataset((train or {}).get("dataset"), (train or {}).get("dataset_sha256"))
    return ModelCard.from_template(
        _card_data(family, model_name, conditional, dataset, evals),
        template_path=str(template_path()),
        model_name=model_name,
        description=f"A {'class-conditional ' if conditional else ''}{family.long_name} trained with "
        f"[hf-dgm]({SOURCE_REPOSITORY}).",
        note=" ".join(
            n for n in (note, _checkpoint_note(train), (train or {}).get("card_note"), _latent_prior_note(train)) if n
        ),
        has_grid=(model_dir / "samples.png").is_file(),
        grid_caption=_grid_caption(model_dir / "samples.png", config["image_size"]),
        family=family.title,
        architecture=config.get("architecture"),
        num_parameters=_parameter_count(model_dir),
        image_size=config.get("image_size"),
        num_channels=config.get("num_channels"),
        latent_dim=config.get("latent_dim"),
        conditioning=_conditioning(config),
        class_names=_class_names(config),
        extra_rows=[(k, config[k]) for k in family.card_fields if config.get(k)],
        model_class=f"{family.name.upper()}Model",
        pipeline_class=f"{family.name.upper()}Pipeline",
        component=family.name,
        repo_id=repo_id,
        source_repository=SOURCE_REPOSITORY,
        batch_size=SNIPPET_BATCH_SIZE,
        label_arg=_label_arg(config.get("num_classes")),
        eval_rows=[(m["name"], _metric_value(m)) for m in evals.get("metrics", [])],
        eval_protocol=" ".join(evals[k] for k in PROTOCOLS if evals.get(k)),
        training_rows=_training_rows(train, dataset),
        dataset_desc="handwritten digits (MNIST)" if dataset.is_mnist else f"images like those of {dataset.name}",
        weights_license=_weights_license(dataset)[1],
        citations="\n".join(family.citations),
    )


def _conditioning(config: dict) -> str:
    if config.get("num_classes"):
        clusters = config.get("cluster_classes")
        within = (
            f"; self-conditioned on {len(clusters)} clusters of its training images within them" if clusters else ""
        )
        return f"{config['num_classes']} classes{within}"
    if config.get("cluster_frequencies"):
        return (
            f"none to its users; self-conditioned on {len(config['cluster_frequencies'])} clusters of its training "
            "images (read from the latent)"
        )
    return "none (unconditional)"


def _checkpoint_note(train: dict | None) -> str:
    """Where the weights of a model packaged from a checkpoint come from (training.publishing.package_checkpoint)."""
    if not (train or {}).get("run_steps"):
        return ""
    steps, run_steps, planned = train["steps"], train["run_steps"], train.get("max_steps") or 0
    run = f"stopped after {run_steps} of its {planned} steps" if planned > run_steps else f"of {run_steps} steps"
    return f"These are the weights of step {steps}, a checkpoint of a run {run}."


def _latent_prior_note(train: dict | None) -> str:
    """How a VAE's fitted prior was made (training.fit_prior): its samples and NLL use it, not N(0, I)."""
    fit = (train or {}).get("latent_prior")
    if not fit:
        return ""
    if fit.get("kind", "mixture") == "mixture":
        form = (
            f"a mixture of {fit['components']} Gaussians along their {fit['rank']} principal directions, a Gaussian "
            "with one variance per latent value in the rest"
        )
    else:
        form = (
            "autoregressive: each resolution's noise drawn after the coarser ones, in four interleaved subgrids, each "
            f"position a mixture of {fit['components']} Gaussians; {fit['iterations']} training steps"
        )
    return (
        f"Samples are drawn from a prior fitted after training to {fit['draws']} posterior draws of each of the "
        f"{fit['num_images']} training images (hf-dgm fit-prior: {form}); the NLL bounds use it too."
    )


def _card_data(family, model_name: str, conditional: bool, dataset: CardDataset, evals: dict):
    """The card's YAML metadata: license, tags, datasets and the model-index of eval_results.json (measured on the
    dataset and split it names; files without them come from the MNIST zoo: ylecun/mnist, test)."""
    from huggingface_hub import EvalResult, ModelCardData

    task = "class-conditional-image-generation" if conditional else "unconditional-image-generation"
    evaluated = card_dataset(evals.get("dataset"), evals.get("dataset_sha256"))
    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type=evaluated.hub_id or evaluated.name,
            dataset_name=evaluated.name,
            dataset_split=evals.get("split", "test"),
            metric_type=m["type"],
            metric_name=m["name"],
            metric_value=m["value"],
        )
        for m in evals.get("metrics", [])
    ]
    return ModelCardData(
        license=_weights_license(dataset)[0],
        library_name="hf-dgm",
        tags=["hf-dgm", family.name, dataset.tag, task],
        datasets=[dataset.hub_id] if dataset.hub_id else None,
        # the Hub has no class-conditional image generation task: such a model gets none rather than a wrong one
        pipeline_tag=None if conditional else task,
        model_name=model_name,
        eval_results=eval_results or None,
    )


def _weights_license(dataset: CardDataset) -> tuple[str, str]:
    """The weights' license: the card's `license` id and its sentence. They follow their training set's terms."""
    if dataset.is_mnist:
        return "cc-by-sa-3.0", "These weights were trained on MNIST and are released under CC BY-SA 3.0."
    if dataset.license:
        return dataset.license
    return "other", f"These weights were trained on {dataset.label}: the terms of that dataset's license apply to them."


def _label_arg(num_classes: int | None) -> str:
    """The usage snippets' `class_labels` argument: the model's classes in turn."""
    return f", class_labels=[i % {num_classes} for i in range({SNIPPET_BATCH_SIZE})]" if num_classes else ""


def _metric_value(metric: dict) -> str:
    return f"{metric['value']} ± {metric['std']}" if metric.get("std") is not None else str(metric["value"])


def _class_names(config: dict) -> str | None:
    """The "Classes" line of a conditional model whose config names its classes (id2label, saved by the trainer)."""
    names = config.get("id2label") or {}
    if not config.get("num_classes") or len(names) != config["num_classes"]:
        return None
    return ", ".join(f"{i}: {names[i]}" for i in sorted(names, key=int))


def _grid_caption(grid_path: Path, image_size: int) -> str | None:
    """What samples.png shows: its tiles' count (where it has make_grid's layout) and size, at native resolution."""
    if not grid_path.is_file():
        return None
    from PIL import Image

    from .image_processing import make_grid

    padding = inspect.signature(make_grid).parameters["padding"].default
    with Image.open(grid_path) as grid:
        width, height = grid.size
    step = image_size + padding
    tiles = f"{image_size}x{image_size} px, shown at their native resolution"
    if (width - padding) % step or (height - padding) % step:
        return f"Samples at {tiles}."
    return f"{(height - padding) // step}x{(width - padding) // step} samples at {tiles}."


def _training_rows(train: dict | None, dataset: CardDataset) -> list[tuple]:
    if not train:
        return []
    rows = [(k, train[k]) for k in TRAINING_ROWS if train.get(k) not in (None, "")]
    rows += [(k, train[k]) for k in REGULARISERS if train.get(k)]
    if train.get("d_steps", 1) != 1:
        rows.append(("d_steps", train["d_steps"]))
    rows = [("dataset", dataset.label) if k == "dataset" else (k, v) for k, v in rows]  # no machine paths
    return rows


def _parameter_count(model_dir: Path) -> str:
    try:
        return f"{count_parameters(read_weight_shapes(model_dir / 'model.safetensors')):,} (all tensors, EMA copy included)"
    except (OSError, FileNotFoundError):
        return "unknown (weights not readable)"


def write_model_card(model_dir, repo_id: str | None = None, note: str = "") -> Path:
    return atomic_write(Path(model_dir) / "README.md", render_model_card(model_dir, repo_id, note).save)
