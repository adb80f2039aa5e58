"""Self-conditioned GANs (`hf-dgm train gan --self-condition K`): clusters of unlabelled images condition the
networks, while the model stays unconditional to its users."""

import logging

import pytest
import torch
from conftest import MNIST, assert_resumes_exactly, tiny_train_kwargs, train_tiny

from hf_dgm import GANConfig, GANModel, GANPipeline
from hf_dgm.gan.networks_gan import network_labels
from hf_dgm.training.clustering import allot_clusters, cluster_images, cluster_within_classes, kmeans
from hf_dgm.training.gan import GANTrainingArguments, train_gan

TINY = dict(generator_channels=4, discriminator_channels=4, latent_dim=8)


def test_kmeans_separates_three_kinds_of_image_the_same_way_every_time():
    dark, grey, bright = (torch.full((n, 1, 8, 8), v, dtype=torch.uint8) for n, v in ((5, 10), (3, 120), (2, 250)))
    images = torch.cat([dark, grey, bright])
    images[::2, 0, 0, 0] += 3  # not all equal within a kind
    clusters, frequencies = cluster_images(images, 3)
    assert [len(set(clusters[a:b].tolist())) for a, b in ((0, 5), (5, 8), (8, 10))] == [1, 1, 1]
    assert len(set(clusters.tolist())) == 3 and sorted(frequencies) == pytest.approx([0.2, 0.3, 0.5])
    assert torch.equal(clusters, cluster_images(images, 3)[0])
    with pytest.raises(ValueError, match="cannot find 11 clusters in 10 images"):
        kmeans(images.flatten(1).float(), 11)


def test_the_latent_picks_the_cluster_at_the_training_frequencies():
    config = GANConfig(**TINY, cluster_frequencies=[0.7, 0.2, 0.1])
    z = torch.randn(200_000, 8, generator=torch.Generator().manual_seed(0))
    clusters = network_labels(config, z)
    assert torch.bincount(clusters).double().div(len(z)).tolist() == pytest.approx([0.7, 0.2, 0.1], abs=0.005)
    assert torch.equal(clusters[:5], network_labels(config, z[:5]))  # a function of each latent alone
    assert network_labels(GANConfig(**TINY), z) is None
    with pytest.raises(ValueError, match="cluster_frequencies=\\[0.5, 0.6\\] is invalid"):
        GANConfig(cluster_frequencies=[0.5, 0.6])
    with pytest.raises(ValueError, match="cluster_classes=None is invalid: expected the class of each of the 2"):
        GANConfig(cluster_frequencies=[0.5, 0.5], num_classes=2)
    with pytest.raises(ValueError, match="every class with at least one cluster"):
        GANConfig(cluster_frequencies=[0.5, 0.5], cluster_classes=[1, 1], num_classes=2)
    with pytest.raises(ValueError, match="cluster_classes on an unconditional model"):
        GANConfig(cluster_frequencies=[0.5, 0.5], cluster_classes=[0, 1])


def test_a_conditional_models_latent_picks_a_cluster_of_the_requested_class():
    config = GANConfig(**TINY, num_classes=3, cluster_frequencies=[0.1, 0.3, 0.2, 0.4], cluster_classes=[0, 1, 2, 1])
    z = torch.randn(200_000, 8, generator=torch.Generator().manual_seed(0))
    for label, (clusters, shares) in enumerate((([0], [1.0]), ([1, 3], [3 / 7, 4 / 7]), ([2], [1.0]))):
        picked = network_labels(config, z, torch.full((len(z),), label))
        assert torch.bincount(picked, minlength=4)[clusters].double().div(len(z)).tolist() == pytest.approx(
            shares, abs=0.005
        )
    ones = network_labels(config, z[:4], torch.ones(4, dtype=torch.long))
    mix = torch.tensor([[0.25, 0.75, 0.0]]).expand(4, 3)  # a morph a quarter of the way from class 1 to class 0
    weights = network_labels(config, z[:4], mix)
    assert weights.shape == (4, 4) and torch.allclose(weights.sum(1), torch.ones(4))
    assert torch.equal(weights[:, 0], torch.full((4,), 0.25))
    assert torch.equal(weights[torch.arange(4), ones], torch.full((4,), 0.75))


def test_clusters_are_shared_among_the_classes_in_proportion_and_found_within_each():
    assert allot_clusters([165, 2123, 150, 133, 213, 83, 250, 219, 260], 50) == [2, 30, 2, 2, 3, 1, 3, 3, 4]
    assert allot_clusters([10, 10, 10, 1000], 5) == [1, 1, 1, 2]  # every class at least one
    assert allot_clusters([1, 1, 100], 10) == [1, 1, 8]
    with pytest.raises(ValueError, match="cannot share 2 clusters among 3 classes of 102 images"):
        allot_clusters([1, 1, 100], 2)
    dark, bright = torch.full((4, 1, 8, 8), 10, dtype=torch.uint8), torch.full((4, 1, 8, 8), 250, dtype=torch.uint8)
    images = torch.cat([dark, bright, dark[:2]])
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 1, 1])  # class 1: four dark and two bright images
    clusters, frequencies, owners = cluster_within_classes(images, labels, 2, 3)  # class 0 one cluster, class 1 two
    assert owners == [0, 1, 1] and frequencies[0] == pytest.approx(0.4)
    assert sorted(frequencies[1:]) == pytest.approx([0.2, 0.4])
    assert torch.equal(clusters[labels == 0], torch.zeros(4, dtype=torch.long))
    dark, bright = clusters[[1, 3, 8, 9]], clusters[[5, 7]]
    assert len(set(dark.tolist())) == len(set(bright.tolist())) == 1 and dark[0] != bright[0]


def test_a_self_conditioned_gan_trains_resumes_exactly_and_samples_as_an_unconditional_one(tmp_path):
    model = assert_resumes_exactly("gan", tmp_path, 3, self_condition=4, **TINY)
    config = model.config
    assert config.num_classes is None and len(config.cluster_frequencies) == 4 and min(config.cluster_frequencies) > 0
    assert model.generator.label_embedding.num_embeddings == 4  # the clusters are the networks' classes
    loaded = GANModel.from_pretrained(tmp_path / "full")
    pipe = GANPipeline(gan=loaded)
    one = pipe(batch_size=6, generator=torch.Generator().manual_seed(1), output_type="pt").images
    two = pipe(batch_size=6, generator=torch.Generator().manual_seed(1), output_type="pt").images
    assert one.shape == (6, 1, 28, 28) and torch.equal(one, two)
    from hf_dgm.sampling import load_sampling_network, sample_images

    fast = sample_images(*load_sampling_network(tmp_path / "full"), 6, seed=1)  # `hf-dgm sample`, no transformers
    assert torch.equal(torch.from_numpy(fast).permute(0, 3, 1, 2), (one * 255).round().to(torch.uint8))
    from hf_dgm.model_card import render_model_card

    assert "self-conditioned on 4 clusters of its training images" in str(render_model_card(tmp_path / "full"))
    with pytest.raises(ValueError, match="this model is unconditional"):
        loaded.generate(2, class_labels=[0, 1])
    with pytest.raises(ValueError, match="its D judges a real image under the cluster"):
        loaded.discriminate(torch.zeros(2, 1, 28, 28))


def test_a_later_stage_finds_the_same_clusters_and_refuses_other_images(tmp_path):
    first = train_tiny("gan", tmp_path / "first", max_steps=2, self_condition=3, **TINY)
    later = train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path / "later", init_from=str(tmp_path / "first"))))
    assert later.config.cluster_frequencies == first.config.cluster_frequencies
    other = tiny_train_kwargs(tmp_path / "other", init_from=str(tmp_path / "first"), max_samples=200)
    with pytest.raises(ValueError, match="trained on other images: its clusters' frequencies differ"):
        train_gan(GANTrainingArguments(**other))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--self-condition", "1"], "--self-condition 1 is invalid: expected a number of clusters K >= 2 (0: off)."),
        (["--self-condition", "3", "--streaming"], "it cannot be used with --streaming."),
    ],
)
def test_bad_self_conditioning_flags_get_one_line_before_any_data(tmp_path, run_cli, flags, message):
    out = tmp_path / "run"
    proc = run_cli(
        "train", "gan", "--dataset", tmp_path / "nowhere", "--output-dir", out, "--report-to", "none", *flags
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr and not out.exists()


def test_a_conditional_gan_self_conditioned_within_its_classes_trains_resumes_exactly_and_samples_by_class(tmp_path):
    model = assert_resumes_exactly("gan", tmp_path, 3, conditional=True, self_condition=20, **TINY)
    config = model.config
    assert config.num_classes == 10 and len(config.cluster_classes) == 20 == len(config.cluster_frequencies)
    assert set(config.cluster_classes) == set(range(10)) and model.generator.label_embedding.num_embeddings == 20
    loaded = GANModel.from_pretrained(tmp_path / "full")
    pipe = GANPipeline(gan=loaded)
    images = pipe(batch_size=4, class_labels=[3, 3, 7, 7], generator=torch.Generator().manual_seed(1), output_type="pt")
    from hf_dgm.sampling import load_sampling_network, sample_images

    fast = sample_images(*load_sampling_network(tmp_path / "full"), 4, seed=1, class_labels=[3, 3, 7, 7])
    assert torch.equal(torch.from_numpy(fast).permute(0, 3, 1, 2), (images.images * 255).round().to(torch.uint8))
    from hf_dgm.model_card import render_model_card

    card = str(render_model_card(tmp_path / "full"))
    assert "10 classes; self-conditioned on 20 clusters of its training images within them" in card
    with pytest.raises(ValueError, match="pass class_labels"):
        loaded.generate(2)


def test_too_few_clusters_for_the_classes_get_one_line(tmp_path, run_cli):
    out = tmp_path / "run"
    proc = run_cli(
        "train", "gan", "--dataset", MNIST, "--max-samples", "64", "--output-dir", out, "--report-to", "none",
        "--conditional", "--self-condition", "5", "--max-steps", "1", "--batch-size", "16",
    )  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot share 5 clusters among 10 classes of 64 images" in proc.stderr


def test_a_model_grown_from_a_self_conditioned_one_finds_its_clusters_at_32_px(tmp_path, run_cli, caplog):
    """gan-emoji's path: a 32 px stage, then a 64 px model grown from it (--grow-from), which clusters the images
    decoded at 32 px as the first stage did and keeps its clusters (the log says that decode is not the training
    images'); a stage under 32 px cannot be grown from."""
    net = dict(architecture="dcgan", conditional=True, latent_dim=8)
    small = train_tiny("gan", tmp_path / "small", image_size=32, generator_channels=16, discriminator_channels=8,
                       self_condition=20, max_steps=2, **net)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="hf_dgm"):
        grown = train_gan(GANTrainingArguments(**tiny_train_kwargs(
            tmp_path / "grown", grow_from=str(tmp_path / "small"), image_size=64, generator_channels=8,
            discriminator_channels=4, max_steps=2, **net,
        )))  # fmt: skip
    assert "decoding the training images again at 32 px (the model trains at 64 px)" in caplog.text
    assert grown.config.cluster_frequencies == small.config.cluster_frequencies
    assert grown.config.cluster_classes == small.config.cluster_classes and len(set(small.config.cluster_classes)) == 10
    train_tiny("gan", tmp_path / "tiny", image_size=16, generator_channels=16, discriminator_channels=8,
               self_condition=20, max_steps=1, **net)  # fmt: skip
    out = tmp_path / "from16"
    proc = run_cli(
        "train", "gan", "--dataset", tmp_path / "nowhere", "--output-dir", out, "--grow-from", tmp_path / "tiny",
        "--conditional", "--image-size", "32", "--generator-channels", "8", "--discriminator-channels", "4",
        "--latent-dim", "8", "--report-to", "none",
    )  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is self-conditioned at 16 px: a larger model finds its clusters again only from a model of 32 px" in (
        proc.stderr
    )
    assert not out.exists()


def test_mode_seeking_pairs_the_fakes_under_the_same_class_and_cluster(tmp_path):
    """--mode-seeking (MSGAN): the second half of each fake batch repeats the first half's labels under new latents,
    so a pair differs only by its latents within one cluster of one class."""
    from hf_dgm.training.gan import GANTrainer

    kwargs = tiny_train_kwargs(tmp_path / "pairs", conditional=True, self_condition=20, mode_seeking=1.0, **TINY)
    trainer = GANTrainer(GANTrainingArguments(**kwargs))
    real_clusters = torch.arange(7)
    fake, fake_clusters, z = trainer.fakes(7, real_clusters)
    classes = torch.tensor(trainer.model.config.cluster_classes)
    assert torch.equal(fake_clusters[:3], fake_clusters[3:6])
    assert torch.equal(classes[fake_clusters], classes[torch.tensor([0, 1, 2, 0, 1, 2, 6])])
    assert not torch.equal(fake[:3], fake[3:6]) and not torch.equal(z[:3, 1:], z[3:6, 1:])
    with pytest.raises(ValueError, match="--batch-size 1 is too small"):
        GANTrainingArguments(**{**kwargs, "batch_size": 1}).validate()
