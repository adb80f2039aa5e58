"""Model cards rendered from `model_cards/hf_dgm_model_card.md` with huggingface_hub's `ModelCard`."""

import json
from pathlib import Path

from .families import family_of, read_config
from .file_utils import atomic_write
from .modeling_utils import count_parameters, read_weight_shapes

TEMPLATE = "hf_dgm_model_card.md"


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


# what the card's training table lists of training_args.json, where set; the GAN regularisers only where used
TRAINING_ROWS = (
    "dataset", "split", "steps", "batch_size", "loss", "lr_g", "lr_d", "lr", "beta", "ema_decay", "iwae_samples",
    "hardware", "training_time_s", "seed", "num_processes",
)  # fmt: skip
REGULARISERS = ("r1_gamma", "label_smoothing", "feature_matching", "historical_averaging", "diffaugment")


def render_model_card(model_dir, repo_id: str | None = None, note: str = ""):
    """The card of a model folder; `repo_id` names it (default: hf-dgm/<folder name>), `note` is shown under the
    description (e.g. where the weights came from)."""
    from huggingface_hub import ModelCard

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    family = family_of(config.get("model_type"), f"{str(model_dir / 'config.json')!r}")
    train = _read_json(model_dir / "training_args.json")
    evals = _read_json(model_dir / "eval_results.json")
    repo_id = repo_id or f"hf-dgm/{model_dir.resolve().name}"
    model_name = repo_id.split("/")[-1]
    conditional = bool(config.get("num_classes"))
    is_mnist = _trained_on_mnist(train)
    return ModelCard.from_template(
        _card_data(family, model_name, conditional, is_mnist, (train or {}).get("dataset"), evals),
        template_path=str(template_path()),
        model_name=model_name,
        description=f"A {'class-conditional ' if conditional else ''}{family.long_name} trained with "
        "[hf-dgm](https://huggingface.co/hf-dgm).",
        note=note,
        has_grid=(model_dir / "samples.png").is_file(),
        family=family.title,
        architecture=config.get("architecture"),
        num_parameters=_parameter_count(model_dir),
        image_size=config.get("image_size"),
        num_channels=config.get("num_channels"),
        latent_dim=config.get("latent_dim"),
        conditioning=f"{config['num_classes']} classes" if conditional else "none (unconditional)",
        extra_rows=[(k, config[k]) for k in family.card_fields if config.get(k)],
        model_class=f"{family.name.upper()}Model",
        pipeline_class=f"{family.name.upper()}Pipeline",
        component=family.name,
        repo_id=repo_id,
        label_arg=", class_labels=list(range(10)) + [0] * 6" if conditional else "",
        eval_rows=[(m["name"], m["value"]) for m in (evals or {}).get("metrics", [])],
        eval_protocol=" ".join(
            p for p in ((evals or {}).get("protocol"), (evals or {}).get("likelihood_protocol")) if p
        ),
        training_rows=_training_rows(train, is_mnist),
        dataset_desc="handwritten digits (MNIST)" if is_mnist else "images like its training set",
        citations="\n".join(family.citations),
    )


def _trained_on_mnist(train: dict | None) -> bool:
    dataset = (train or {}).get("dataset")
    return dataset in (None, "ylecun/mnist") or "mnist" in str(dataset)


def _card_data(family, model_name: str, conditional: bool, is_mnist: bool, dataset, evals: dict | None):
    """The card's YAML metadata: license, tags, datasets and the model-index of eval_results.json."""
    from huggingface_hub import EvalResult, ModelCardData

    task = "class-conditional-image-generation" if conditional else "unconditional-image-generation"
    eval_results = [
        EvalResult(
            task_type=task,
            dataset_type="ylecun/mnist" if is_mnist else dataset,
            dataset_name="MNIST",
            dataset_split="test",
            metric_type=m["type"],
            metric_name=m["name"],
            metric_value=m["value"],
        )
        for m in (evals or {}).get("metrics", [])
    ]
    return ModelCardData(
        license="cc-by-sa-3.0",
        library_name="hf-dgm",
        tags=["hf-dgm", family.name, "mnist" if is_mnist else "image-generation", task],
        datasets=["ylecun/mnist"] if is_mnist else None,
        pipeline_tag="unconditional-image-generation",
        model_name=model_name,
        eval_results=eval_results or None,
    )


def _training_rows(train: dict | None, is_mnist: bool) -> list[tuple]:
    if not train:
        return []
    rows = [(k, train[k]) for k in TRAINING_ROWS if train.get(k) not in (None, "")]
    rows += [(k, train[k]) for k in REGULARISERS if train.get(k)]
    if train.get("d_steps", 1) != 1:
        rows.append(("d_steps", train["d_steps"]))
    if is_mnist and train.get("dataset") not in (None, "ylecun/mnist"):  # a local copy (same schema) of the Hub's
        rows = [("dataset", "ylecun/mnist (local copy)") if k == "dataset" else (k, v) for k, v in rows]
    if train.get("training_time_note"):
        rows.append(("training time note", train["training_time_note"]))
    return rows


def _parameter_count(model_dir: Path) -> str:
    try:
        return f"{count_parameters(read_weight_shapes(model_dir / 'model.safetensors')):,} (all tensors, EMA copy included)"
    except (OSError, FileNotFoundError):
        return "unknown (weights not readable)"


def write_model_card(model_dir, repo_id: str | None = None, note: str = "") -> Path:
    return atomic_write(Path(model_dir) / "README.md", render_model_card(model_dir, repo_id, note).save)
