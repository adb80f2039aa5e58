"""Colour images end to end: tiny residual models at 32 and 64 px trained on a slice of the emoji data,
saved, loaded, sampled, evaluated with Inception features and carded; and the bad inputs around them."""

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
from conftest import MNIST, requires_inception_weights, tiny_gan_kwargs, train_tiny

from hf_dgm import GANConfig, GANModel
from hf_dgm.records import dataset_sha256


def train(family: str, out, dataset: str, **overrides):
    kwargs = dict(dataset=dataset, max_samples=None, batch_size=8, max_steps=2, sample_every=2, checkpoint_every=2)
    return train_tiny(family, out, **{**kwargs, **overrides})


COLOUR_RUNS = {
    "gan-32": ("gan", dict(image_size=32, num_channels=3, architecture="resnet", conditional=True, spectral_norm=True,
                           loss="hinge", diffaugment="color,translation,cutout", generator_channels=8,
                           discriminator_channels=8, latent_dim=16)),
    "vae-64": ("vae", dict(image_size=64, num_channels=3, architecture="resnet", likelihood="logistic_mixture",
                           num_mixtures=2, pixel_context=3, pixel_context_channels=4, base_channels=4, hidden_dim=16,
                           latent_dim=8, holdout_fraction=0.25)),
}  # fmt: skip


@requires_inception_weights
@pytest.mark.parametrize("run", COLOUR_RUNS)
def test_colour_model_trains_saves_samples_evaluates_and_cards(tmp_path, emoji_slice, run):
    from hf_dgm.evaluation.evaluate import evaluate, write_results
    from hf_dgm.families import family_of_folder
    from hf_dgm.model_card import render_model_card
    from hf_dgm.sampling import load_sampling_network, sample_images

    family, flags = COLOUR_RUNS[run]
    size = flags["image_size"]
    trained = train(family, tmp_path, emoji_slice, **flags)
    record = json.loads((tmp_path / "training_args.json").read_text())
    loaded = family_of_folder(tmp_path).model_class.from_pretrained(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in trained.state_dict().items())
    if family == "gan":  # conditional on the emoji group: the names travel with the model
        assert loaded.config.num_classes == 9 and loaded.config.id2label[8] == "Flags"
        assert record["num_train_images"] == 36 and record["num_held_out_images"] == 0
    else:
        assert record["num_train_images"] == 27 and record["num_held_out_images"] == 9

    cfg, fam, net = load_sampling_network(tmp_path)  # the fast path of `hf-dgm sample`
    labels = [0, 8, 3, 1] if family == "gan" else None
    fast = sample_images(cfg, fam, net, 4, seed=5, class_labels=labels)
    pipe = fam.pipeline_class(**{fam.name: loaded})
    images = pipe(batch_size=4, generator=torch.Generator().manual_seed(5), class_labels=labels, output_type="np")
    assert fast.shape == (4, size, size, 3)
    assert torch.equal(torch.from_numpy(fast), torch.from_numpy((images.images * 255).round().astype("uint8")))

    # the record names the data by its folder's name and hash, so data outside the working directory is passed again
    results = evaluate(tmp_path, dataset=emoji_slice, num_samples=8, iwae_k=4, progress=False, full_protocol=True)
    metrics = {m["name"]: m for m in results["metrics"]}
    num_real = 36 if family == "gan" else 27
    assert results["num_real_images"] == num_real  # the dataset named portably: its folder name and content hash
    assert results["dataset"] == os.path.basename(emoji_slice) and results["dataset_sha256"] == dataset_sha256(
        emoji_slice
    )
    kid = metrics["Inception KID (8 samples vs 8 real)"]
    floor = metrics["Inception KID (real-data floor, 8 vs 8 real)"]
    assert kid["std"] > 0 and kid["value"] > floor["value"]  # two steps of training are far from real emoji
    assert (
        metrics["Inception FID (8 samples vs 8 real)"]["value"]
        > metrics["Inception FID (real-data floor, 8 vs 8 real)"]["value"]
    )
    assert 0 <= metrics[f"memorized share (8 samples vs {num_real} real)"]["value"] <= 1
    assert "1% quantile" in results["memorization_protocol"]
    assert results["sampling_s_per_1000_images"] > 0 and results["features_s_per_1000_images"]["inception"] > 0
    if family == "vae":
        nll = metrics["NLL (IWAE bound, k=4, 9 held-out images) bits/dim"]["value"]
        assert 0 < nll <= metrics["negative ELBO (9 held-out images) bits/dim"]["value"] + 0.01
        assert "logistic mixture with a 3x3 pixel context" in results["likelihood_protocol"]
        assert "NLL on 9 held-out images" in results["likelihood_protocol"]
    write_results(tmp_path, results)
    card = str(render_model_card(tmp_path, repo_id="someone/emoji-model"))
    assert "Inception KID (8 samples vs 8 real)" in card and "emoji_slice" in card


def test_memorized_share_counts_copies_and_not_new_draws():
    from hf_dgm.evaluation.metrics import memorized_share

    g = torch.Generator().manual_seed(0)
    train_features = torch.randn(2000, 8, generator=g)
    share, threshold = memorized_share(train_features, train_features[:100] + 1e-4)
    assert share == 1.0 and threshold > 0
    fresh, _ = memorized_share(train_features, torch.randn(2000, 8, generator=g))
    assert fresh < 0.03  # a sampler of new points lands that close about 1 % of the time


def test_holdout_is_seeded_disjoint_and_complete():
    from hf_dgm.data import holdout_indices

    kept, held = holdout_indices(100, 0.1)
    assert len(held) == 10 and len(kept) == 90 and set(kept.tolist()) | set(held.tolist()) == set(range(100))
    assert torch.equal(held, holdout_indices(100, 0.1)[1]) and held.tolist() != list(range(10))
    with pytest.raises(ValueError, match=r"holdout fraction 1.0 is invalid: expected a number in \[0, 1\)"):
        holdout_indices(100, 1.0)


def test_model_and_dataset_of_other_resolution_or_channels_are_refused(tmp_path):
    from hf_dgm.evaluation.evaluate import evaluate

    GANModel(GANConfig(**tiny_gan_kwargs(image_size=32, num_channels=3))).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"makes 32x32 images with 3 channel\(s\) but dataset .* holds 28x28 L images"):
        evaluate(tmp_path, dataset=MNIST, num_samples=4, progress=False)
    with pytest.raises(ValueError, match="holds 28x28 L images"):  # in any feature space
        evaluate(tmp_path, dataset=MNIST, features="classifier", num_samples=4, progress=False)
    proc = subprocess.run(
        [sys.executable, "-m", "hf_dgm.cli", "evaluate", str(tmp_path), "--dataset", MNIST, "--no-write"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "holds 28x28 L images" in proc.stderr


def test_mixed_sizes_and_modes_are_converted_and_each_conversion_logged_once(tmp_path, caplog):
    from PIL import Image

    from hf_dgm.data import load_image_tensors

    folder = tmp_path / "mixed" / "train" / "a"
    folder.mkdir(parents=True)
    images = [("RGB", 64), ("L", 48), ("RGBA", 64), ("P", 48), ("RGB", 32), ("RGBA", 40)]
    for i, (mode, size) in enumerate(images):
        Image.new(mode, (size, size)).save(folder / f"{i}.png")
    with caplog.at_level(logging.WARNING, logger="hf_dgm.data"):
        data = load_image_tensors(str(tmp_path / "mixed"), "train", "image", None, 32, 3, use_cache=False)
    assert data.images.shape == (6, 3, 32, 32) and data.images.dtype == torch.uint8
    messages = [r.getMessage() for r in caplog.records]
    assert sum("converted colour mode to RGB" in m for m in messages) == 1
    for size in (64, 48, 40):
        assert sum(f"resized {size}x{size} images to 32x32" in m for m in messages) == 1
    assert not any("resized 32x32" in m for m in messages)


def test_residual_gan_defaults_to_spectral_norm_and_the_hinge_loss(tmp_path):
    from hf_dgm.training.gan import GANTrainingArguments

    assert GANConfig(architecture="resnet").spectral_norm is True and GANConfig().spectral_norm is False
    assert GANConfig(architecture="resnet", spectral_norm=False).spectral_norm is False  # an explicit choice stays
    GANModel(GANConfig(**tiny_gan_kwargs(architecture="resnet", image_size=32))).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["spectral_norm"] is True  # saved resolved
    for architecture, explicit, expected in (("resnet", None, "hinge"), ("dcgan", None, "non_saturating"),
                                             ("resnet", "least_squares", "least_squares")):  # fmt: skip
        args = GANTrainingArguments(output_dir=str(tmp_path / "run"), architecture=architecture, loss=explicit)
        args.validate()
        assert args.loss == expected


def test_the_runs_card_note_reaches_the_card(tmp_path):
    from hf_dgm.model_card import render_model_card

    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path)
    (tmp_path / "training_args.json").write_text(json.dumps({"dataset": MNIST, "card_note": "Trained at 32 px: why."}))
    assert "Trained at 32 px: why." in str(render_model_card(tmp_path, note="Weights from a checkpoint."))


def test_a_checkpoint_saved_without_class_names_resumes_and_ends_with_them(tmp_path, emoji_slice):
    """Runs started before the class names were saved (config.id2label) resume: the names are data, not model."""
    flags = dict(COLOUR_RUNS["gan-32"][1], max_steps=4, checkpoint_every=2)
    train("gan", tmp_path, emoji_slice, **{**flags, "max_steps": 2})
    config_path = tmp_path / "checkpoints" / "checkpoint-00000002" / "model" / "config.json"
    config = json.loads(config_path.read_text())
    del config["id2label"], config["label2id"]
    config_path.write_text(json.dumps(config))
    resumed = train("gan", tmp_path, emoji_slice, resume_from="latest", **flags)
    assert resumed.config.id2label[0] == "Smileys & Emotion"
