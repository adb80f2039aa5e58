"""Self-conditioned GANs (`hf-dgm train gan --self-condition K`): clusters of unlabelled images condition the
networks, while the model stays unconditional to its users."""

import pytest
import torch
from conftest import assert_resumes_exactly, tiny_train_kwargs, train_tiny

from hf_dgm import GANConfig, GANModel, GANPipeline
from hf_dgm.gan.networks_gan import latent_clusters
from hf_dgm.training.clustering import cluster_images, kmeans
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
    clusters = latent_clusters(config, z)
    assert torch.bincount(clusters).double().div(len(z)).tolist() == pytest.approx([0.7, 0.2, 0.1], abs=0.005)
    assert torch.equal(clusters[:5], latent_clusters(config, z[:5]))  # a function of each latent alone
    assert latent_clusters(GANConfig(**TINY), z) is None
    with pytest.raises(ValueError, match="cluster_frequencies=\\[0.5, 0.6\\] is invalid"):
        GANConfig(cluster_frequencies=[0.5, 0.6])
    with pytest.raises(ValueError, match="on its labels' classes or on clusters of its images, not both"):
        GANConfig(cluster_frequencies=[0.5, 0.5], num_classes=2)


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
        (["--self-condition", "3", "--conditional"], "a GAN is conditioned on labels or on clusters, not both."),
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
