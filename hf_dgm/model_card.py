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


def render_model_card(model_dir, repo_id: str | None = None, note: str = ""):
    """The card of a model folder; `repo_id` names it (default: hf-dgm/<folder name>), `note` is shown under the
    description (e.g. where the weights came from)."""
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = read_config(model_dir)
    family = family_of(config.get("model_type"), f"{str(model_dir / 'config.json')!r}")
    train = _read_json(model_dir / "training_args.json")
    evals = _read_json(model_dir / "eval_results.json")
    repo_id = repo_id or f"hf-dgm/{model_dir.resolve().name}"
    model_name = repo_id.split("/")[-1]
    conditional = bool(config.get("num_classes"))
    dataset = (train or {}).get("dataset")
    datasets = ["ylecun/mnist"] if dataset in (None, "ylecun/mnist") or "mnist" in str(dataset) else []
    tags = [
        "hf-dgm",
        family.name,
        "mnist" if datasets else "image-generation",
        "class-conditional-image-generation" if conditional else "unconditional-image-generation",
    ]
    eval_results = None
    if evals:
        from huggingface_hub import EvalResult

        task = "class-conditional-image-generation" if conditional else "unconditional-image-generation"
        eval_results = [
            EvalResult(
                task_type=task,
                dataset_type=datasets[0] if datasets else dataset,
                dataset_name="MNIST",
                dataset_split="test",
                metric_type=m["type"],
                metric_name=m["name"],
                metric_value=m["value"],
            )
            for m in evals.get("metrics", [])
        ]
    card_data = ModelCardData(
        license="cc-by-sa-3.0",
        library_name="hf-dgm",
        tags=tags,
        datasets=datasets or None,
        pipeline_tag="unconditional-image-generation",
        model_name=model_name,
        eval_results=eval_results,
    )
    eval_rows, protocol = [], ""
    if evals:
        protocol = " ".join(p for p in (evals.get("protocol"), evals.get("likelihood_protocol")) if p)
        eval_rows = [(m["name"], m["value"]) for m in evals.get("metrics", [])]
    training_rows = []
    if train:
        keys = (
            "dataset",
            "split",
            "steps",
            "batch_size",
            "loss",
            "lr_g",
            "lr_d",
            "lr",
            "beta",
            "ema_decay",
            "iwae_samples",
            "hardware",
            "training_time_s",
            "seed",
            "num_processes",
        )
        training_rows = [(k, train[k]) for k in keys if train.get(k) not in (None, "")]
        # the GAN regularisers ("Improved Techniques", R1), where a run used them
        tricks = ("r1_gamma", "label_smoothing", "feature_matching", "historical_averaging", "diffaugment")
        training_rows += [(k, train[k]) for k in tricks if train.get(k)]
        if train.get("d_steps", 1) != 1:
            training_rows.append(("d_steps", train["d_steps"]))
        if datasets and dataset not in (None, "ylecun/mnist"):  # a local copy (same schema) of the Hub dataset
            training_rows = [
                ("dataset", "ylecun/mnist (local copy)") if k == "dataset" else (k, v) for k, v in training_rows
            ]
        if train.get("training_time_note"):
            training_rows.append(("training time note", train["training_time_note"]))
    extra = [(k, config[k]) for k in family.card_fields if config.get(k)]
    try:
        num_parameters = f"{count_parameters(read_weight_shapes(model_dir / 'model.safetensors')):,}"
        num_parameters += " (all tensors, EMA copy included)"
    except (OSError, FileNotFoundError):
        num_parameters = "unknown (weights not readable)"
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_name=model_name,
        description=(
            f"A {'class-conditional ' if conditional else ''}"
            f"{family.long_name} trained with "
            "[hf-dgm](https://huggingface.co/hf-dgm)."
        ),
        note=note,
        has_grid=(model_dir / "samples.png").is_file(),
        family=family.title,
        architecture=config.get("architecture"),
        num_parameters=num_parameters,
        image_size=config.get("image_size"),
        num_channels=config.get("num_channels"),
        latent_dim=config.get("latent_dim"),
        conditioning=f"{config['num_classes']} classes" if conditional else "none (unconditional)",
        extra_rows=extra,
        model_class=f"{family.name.upper()}Model",
        pipeline_class=f"{family.name.upper()}Pipeline",
        component=family.name,
        repo_id=repo_id,
        label_arg=", class_labels=list(range(10)) + [0] * 6" if conditional else "",
        eval_rows=eval_rows,
        eval_protocol=protocol,
        training_rows=training_rows,
        dataset_desc="handwritten digits (MNIST)" if datasets else "images like its training set",
        citations="\n".join(family.citations),
    )


def write_model_card(model_dir, repo_id: str | None = None, note: str = "") -> Path:
    return atomic_write(Path(model_dir) / "README.md", render_model_card(model_dir, repo_id, note).save)
