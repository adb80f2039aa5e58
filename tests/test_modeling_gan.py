import itertools
import json

import pytest
import torch
from conftest import labels_for, nudge_and_reload, tiny_gan_kwargs

from hf_dgm import GANConfig, GANModel
from hf_dgm.gan.networks_gan import ARCHITECTURES

CONVOLUTIONAL = sorted(name for name, entry in ARCHITECTURES.items() if "generator_channels" in entry.fields)
VARIANTS = list(
    itertools.product(
        sorted(ARCHITECTURES),  # architecture
        [None, 10],  # num_classes
        [False, True],  # spectral_norm
        [(False, 0), (True, 0), (False, 3)],  # (minibatch_std, minibatch_discrimination_kernels)
    )
)


def make(seed=0, **overrides):
    torch.manual_seed(seed)
    return GANModel(GANConfig(**tiny_gan_kwargs(**overrides)))


@pytest.mark.parametrize("arch,num_classes,sn,extras", VARIANTS)
def test_shapes_every_variant(arch, num_classes, sn, extras):
    mbstd, mbd = extras
    model = make(
        architecture=arch,
        num_classes=num_classes,
        spectral_norm=sn,
        minibatch_std=mbstd,
        minibatch_discrimination_kernels=mbd,
    )
    labels = labels_for(model, 5)
    images = model.generate(5, generator=torch.Generator().manual_seed(0), class_labels=labels).sample
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    d = model.discriminate(images, class_labels=labels)
    assert d.logits.shape == (5,)
    assert d.features.ndim == 2 and d.features.shape[0] == 5
    out = model(pixel_values=images, class_labels=labels)
    assert out.sample.shape == (5, 1, 28, 28) and out.logits_fake.shape == (5,) and out.logits_real.shape == (5,)


@pytest.mark.parametrize("arch", CONVOLUTIONAL)
@pytest.mark.parametrize("image_size,num_channels", [(28, 1), (32, 3), (64, 1), (48, 3)])
def test_convolutional_image_sizes(arch, image_size, num_channels):
    model = make(architecture=arch, image_size=image_size, num_channels=num_channels)
    images = model.generate(2).sample
    assert images.shape == (2, num_channels, image_size, image_size)
    assert model.discriminate(images).logits.shape == (2,)


def test_article_mlp_widths():
    model = GANModel(GANConfig(architecture="mlp", latent_dim=100))
    g = [m for m in model.generator.net if isinstance(m, torch.nn.Linear)]
    d = [m for m in model.discriminator.net if isinstance(m, torch.nn.Linear)] + [model.discriminator.head.linear]
    assert [(m.in_features, m.out_features) for m in g] == [(100, 128), (128, 128), (128, 784)]
    assert [(m.in_features, m.out_features) for m in d] == [(784, 128), (128, 128), (128, 1)]
    assert isinstance(model.generator.net[1], torch.nn.LeakyReLU) and isinstance(model.generator.net[-1], torch.nn.Tanh)


def test_dcgan_structure_and_init():
    model = GANModel(GANConfig(architecture="dcgan", generator_channels=128, discriminator_channels=64))
    convs = [m for m in model.generator.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(100, 256), (256, 128), (128, 1)]
    d_layers = list(model.discriminator.net)
    assert isinstance(d_layers[0], torch.nn.Conv2d) and isinstance(d_layers[1], torch.nn.LeakyReLU)  # no BN on input
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in d_layers)
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    bn = torch.cat([m.weight for m in model.generator.net if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1.0) < 0.01 and 0.01 < bn.std().item() < 0.03


def test_seeded_determinism_and_latents(tiny_gan):
    a = tiny_gan.generate(4, generator=torch.Generator().manual_seed(3)).sample
    b = tiny_gan.generate(4, generator=torch.Generator().manual_seed(3)).sample
    c = tiny_gan.generate(4, generator=torch.Generator().manual_seed(4)).sample
    assert torch.equal(a, b) and not torch.equal(a, c)
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(tiny_gan.generate(latents=z).sample, a)


def test_tuple_equals_dataclass(tiny_gan):
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    z = torch.randn(3, 8)
    out = tiny_gan(latents=z, pixel_values=x)
    tup = tiny_gan(latents=z, pixel_values=x, return_dict=False)
    assert len(tup) == 3
    for a, b in zip(out.to_tuple(), tup):
        assert torch.equal(a, b)
    assert torch.equal(tiny_gan.generate(latents=z, return_dict=False)[0], tiny_gan.generate(latents=z).sample)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"architecture": "mlp", "spectral_norm": True, "num_classes": 10},
        {"use_ema": True, "minibatch_discrimination_kernels": 3, "minibatch_std": True},
    ],
)
def test_save_load_round_trip_bit_exact(tmp_path, overrides):
    model = make(**overrides)
    loaded = nudge_and_reload(model, tmp_path)
    labels = labels_for(model, 4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(
        model.generate(4, generator=g(), class_labels=labels).sample,
        loaded.generate(4, generator=g(), class_labels=labels).sample,
    )


def test_ema_is_used_for_sampling():
    model = make(use_ema=True)
    for a, b in zip(model.generator.state_dict().values(), model.generator_ema.state_dict().values()):
        assert torch.equal(a, b)  # starts as a copy
    z = torch.randn(2, 8)
    before = model.generate(latents=z).sample
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)  # only the training generator changes
    assert torch.equal(model.generate(latents=z).sample, before)
    with torch.no_grad():
        for p in model.generator_ema.parameters():
            p.mul_(0.5)
    assert not torch.equal(model.generate(latents=z).sample, before)


def test_generate_uses_eval_mode_and_restores(tiny_gan):
    tiny_gan.train()
    z = torch.randn(4, 8)
    a = tiny_gan.generate(latents=z).sample
    assert tiny_gan.generator.training  # restored
    tiny_gan.eval()
    assert torch.equal(tiny_gan.generate(latents=z).sample, a)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_one_optimizer_step_no_nan(arch):
    model = make(architecture=arch, num_classes=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    labels = torch.arange(6)
    out = model(pixel_values=x, class_labels=labels)
    loss = torch.nn.functional.softplus(-out.logits_real).mean() + torch.nn.functional.softplus(out.logits_fake).mean()
    loss.backward()
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"latent_dim": 0}, "latent_dim=0"),
        ({"latent_dim": -3}, "latent_dim=-3"),
        ({"image_size": 30}, "image_size=30"),
        ({"image_size": 8}, "image_size=8"),
        ({"num_channels": 2}, "num_channels=2"),
        ({"architecture": "stylegan"}, "architecture='stylegan'"),
        ({"num_classes": 1}, "num_classes=1"),
        ({"activation": "gelu"}, "activation='gelu'"),
        ({"architecture": "mlp", "generator_hidden_dims": []}, "generator_hidden_dims=[]"),
        ({"minibatch_discrimination_kernels": -1}, "minibatch_discrimination_kernels=-1"),
        ({"format_version": 99}, "format_version=99"),
    ],
)
def test_invalid_config_values(overrides, needle):
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        GANConfig(**tiny_gan_kwargs(**overrides))


def test_bad_tensors_and_labels(tiny_gan):
    with pytest.raises(ValueError, match=r"latents have shape \(2, 5\)"):
        tiny_gan.generate(latents=torch.randn(2, 5))
    with pytest.raises(ValueError, match="floating-point"):
        tiny_gan.generate(latents=torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"pixel_values have shape \(2, 3, 28, 28\)"):
        tiny_gan.discriminate(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="floating-point"):
        tiny_gan.discriminate(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_gan.generate(2, class_labels=[0, 1])
    with pytest.raises(ValueError, match="batch_size=0"):
        tiny_gan.generate(0)
    cond = make(num_classes=10)
    with pytest.raises(ValueError, match="class-conditional"):
        cond.generate(2)
    with pytest.raises(ValueError, match="class label 10 is out of range"):
        cond.generate(2, class_labels=[3, 10])
    with pytest.raises(ValueError, match="class label -1 is out of range"):
        cond.generate(2, class_labels=-1)
    with pytest.raises(ValueError, match="3 entries, expected one per image"):
        cond.generate(2, class_labels=[1, 2, 3])
    with pytest.raises(ValueError, match="1-D sequence of ints"):
        cond.generate(2, class_labels=[0.5, 1.0])


def test_load_weights_that_do_not_match_config(tmp_path, tiny_gan):
    tiny_gan.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["use_ema"] = True  # the file has no generator_ema weights
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="don.t match its config.*missing: generator_ema"):
        GANModel.from_pretrained(tmp_path)
    config["use_ema"] = False
    config["generator_channels"] = 8  # shapes differ
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="don't match its config.*shapes differ"):
        GANModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_defaults_come_from_the_registry(arch):
    """An unset spectral_norm is the architecture entry's, saved resolved; `hf-dgm train gan` without --loss takes
    the entry's loss."""
    from hf_dgm.training.gan import GANTrainingArguments

    entry = ARCHITECTURES[arch]
    assert GANConfig(architecture=arch).spectral_norm is entry.spectral_norm
    assert GANConfig(architecture=arch, spectral_norm=not entry.spectral_norm).spectral_norm is not entry.spectral_norm
    args = GANTrainingArguments(output_dir="unused", architecture=arch)
    args.validate()
    assert args.loss == entry.loss and args.spectral_norm is entry.spectral_norm
    assert {entry.spectral_norm for entry in ARCHITECTURES.values()} == {False, True}  # the default varies
