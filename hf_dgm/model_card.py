"""Model cards rendered from `model_cards/hf_dgm_model_card.md` with huggingface_hub's `ModelCard`."""

import json
from pathlib import Path

CITATIONS = {
    "gan": [
        "@inproceedings{goodfellow2014gan, title={Generative Adversarial Nets}, author={Goodfellow, Ian and others}, "
        "booktitle={NeurIPS}, year={2014}}",
        "@article{radford2015dcgan, title={Unsupervised Representation Learning with Deep Convolutional Generative "
        "Adversarial Networks}, author={Radford, Alec and Metz, Luke and Chintala, Soumith}, journal={arXiv:1511.06434}, "
        "year={2015}}",
        "@inproceedings{salimans2016improved, title={Improved Techniques for Training GANs}, author={Salimans, Tim and "
        "others}, booktitle={NeurIPS}, year={2016}}",
    ],
    "vae": [
        "@inproceedings{kingma2014vae, title={Auto-Encoding Variational Bayes}, author={Kingma, Diederik P. and "
        "Welling, Max}, booktitle={ICLR}, year={2014}}",
        "@inproceedings{burda2016iwae, title={Importance Weighted Autoencoders}, author={Burda, Yuri and Grosse, Roger "
        "and Salakhutdinov, Ruslan}, booktitle={ICLR}, year={2016}}",
    ],
}


def template_path() -> Path:
    return Path(__file__).resolve().parent.parent / "model_cards" / "hf_dgm_model_card.md"


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def render_model_card(model_dir, repo_id: str | None = None):
    from huggingface_hub import ModelCard, ModelCardData

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    family = "gan" if config["model_type"] == "hf_dgm_gan" else "vae"
    train = _read_json(model_dir / "training_args.json")
    evals = _read_json(model_dir / "eval_results.json")
    repo_id = repo_id or f"hf-dgm/{model_dir.resolve().name}"
    conditional = bool(config.get("num_classes"))
    dataset = (train or {}).get("dataset")
    datasets = ["ylecun/mnist"] if dataset in (None, "ylecun/mnist") or "mnist" in str(dataset) else []
    tags = [
        "hf-dgm",
        family,
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
        model_name=model_dir.resolve().name,
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
        tricks = ("r1_gamma", "label_smoothing", "feature_matching", "historical_averaging")
        training_rows += [(k, train[k]) for k in tricks if train.get(k)]
        if train.get("d_steps", 1) != 1:
            training_rows.append(("d_steps", train["d_steps"]))
        if datasets and dataset not in (None, "ylecun/mnist"):  # a local copy (same schema) of the Hub dataset
            training_rows = [
                ("dataset", "ylecun/mnist (local copy)") if k == "dataset" else (k, v) for k, v in training_rows
            ]
        if train.get("training_time_note"):
            training_rows.append(("training time note", train["training_time_note"]))
    extra = []
    if family == "gan":
        for k in ("spectral_norm", "minibatch_std", "minibatch_discrimination_kernels", "use_ema"):
            if config.get(k):
                extra.append((k, config[k]))
    else:
        extra.append(("likelihood", config.get("likelihood")))
    try:
        from safetensors import safe_open

        with safe_open(model_dir / "model.safetensors", "pt") as f:
            num_parameters = sum(_prod(f.get_slice(k).get_shape()) for k in f.keys())
        num_parameters = f"{num_parameters:,} (all tensors, EMA copy included)"
    except Exception:
        num_parameters = "unknown (weights not readable)"
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_name=model_dir.resolve().name,
        description=(
            f"A {'class-conditional ' if conditional else ''}"
            f"{'GAN' if family == 'gan' else 'variational autoencoder'} trained with "
            "[hf-dgm](https://huggingface.co/hf-dgm)."
        ),
        has_grid=(model_dir / "samples.png").is_file(),
        family="GAN" if family == "gan" else "VAE",
        architecture=config.get("architecture"),
        num_parameters=num_parameters,
        image_size=config.get("image_size"),
        num_channels=config.get("num_channels"),
        latent_dim=config.get("latent_dim"),
        conditioning=f"{config['num_classes']} classes" if conditional else "none (unconditional)",
        extra_rows=extra,
        model_class="GANModel" if family == "gan" else "VAEModel",
        pipeline_class="GANPipeline" if family == "gan" else "VAEPipeline",
        component="gan" if family == "gan" else "vae",
        repo_id=repo_id,
        label_arg=", class_labels=list(range(10)) + [0] * 6" if conditional else "",
        eval_rows=eval_rows,
        eval_protocol=protocol,
        training_rows=training_rows,
        dataset_desc="handwritten digits (MNIST)" if datasets else "images like its training set",
        citations="\n".join(CITATIONS[family]),
    )


def _prod(shape):
    out = 1
    for s in shape:
        out *= s
    return out


def write_model_card(model_dir, repo_id: str | None = None) -> Path:
    card = render_model_card(model_dir, repo_id)
    path = Path(model_dir) / "README.md"
    card.save(path)
    return path
