import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_gan_kwargs, tiny_vae_kwargs
from PIL import Image

from hf_dgm import GANConfig, GANModel, GANPipeline, VAEConfig, VAEModel, VAEPipeline
from hf_dgm.image_processing import make_grid, to_uint8


def test_help_lists_commands():
    """The module entry in a fresh interpreter (the other CLI tests call hf_dgm.cli.main in-process: run_cli)."""
    proc = subprocess.run([sys.executable, "-m", "hf_dgm.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "sample" in proc.stdout


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_sample_writes_grid_equal_to_pipeline(tmp_path, family, run_cli):
    torch.manual_seed(0)
    if family == "gan":
        model = GANModel(GANConfig(**tiny_gan_kwargs(use_ema=True, num_classes=10)))
        with torch.no_grad():
            for p in model.generator_ema.parameters():
                p.add_(0.01)  # sampling must use the EMA weights
        pipe = GANPipeline(gan=model)
    else:
        model = VAEModel(VAEConfig(**tiny_vae_kwargs()))
        pipe = VAEPipeline(vae=model)
    model.save_pretrained(tmp_path / "model")
    out = tmp_path / "grid.png"
    # 300 images: the CLI decodes them in batches of 256, the pipeline in one
    proc = run_cli(
        "sample", "--model", str(tmp_path / "model"), "--num-images", "300", "--seed", "3", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    grid = np.asarray(Image.open(out))
    labels = [i % 10 for i in range(300)] if family == "gan" else None
    images = pipe(batch_size=300, generator=torch.Generator().manual_seed(3), class_labels=labels, output_type="pt")
    expected = np.asarray(make_grid(to_uint8(images.images)))
    assert grid.shape == expected.shape == (2 + 17 * 30, 2 + 18 * 30)
    np.testing.assert_array_equal(grid, expected)


def test_sample_bad_inputs(tmp_path, tiny_gan, run_cli):
    proc = run_cli("sample", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "g.png"))
    assert proc.returncode == 2 and "missing" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run_cli("sample", "--model", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no config.json" in proc.stderr
    tiny_gan.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    proc = run_cli("sample", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "g.png"))
    assert proc.returncode == 2 and "truncated or corrupt" in proc.stderr
    assert not (tmp_path / "g.png").exists()
    proc = run_cli("sample", "--num-images", "0")
    assert proc.returncode == 2 and "not a positive int" in proc.stderr
    proc = run_cli("sample", "--seed", "-1")
    assert proc.returncode == 2 and "out of range" in proc.stderr
    proc = run_cli("evaluate", str(tmp_path / "m"), "--holdout-fraction", "1")  # refused before any loading
    assert proc.returncode == 2 and "'1' is not a number in [0, 1)" in proc.stderr


def test_sample_output_files_and_limits(tmp_path, tiny_gan, run_cli):
    """--out names the format (or is refused), a folder is refused without a stray file, and a grid too large to
    write is refused at once, in one line, saying what to do instead."""
    from hf_dgm.image_processing import save_image_atomic

    tiny_gan.save_pretrained(tmp_path / "m")
    proc = run_cli("sample", "--model", str(tmp_path / "m"), "--num-images", "4", "--out", str(tmp_path / "g.jpg"))
    assert proc.returncode == 0 and Image.open(tmp_path / "g.jpg").format == "JPEG", proc.stderr
    for name, fmt in (("g.webp", "WEBP"), ("g.PNG", "PNG")):
        save_image_atomic(Image.new("L", (8, 8)), tmp_path / name)
        assert Image.open(tmp_path / name).format == fmt
    (tmp_path / "out").mkdir()
    for out, needle in ((tmp_path / "out", "is a folder"), (tmp_path / "g.bmp", "names no image format")):
        proc = run_cli("sample", "--model", str(tmp_path / "m"), "--out", str(out))
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert list((tmp_path / "out").iterdir()) == [] and not (tmp_path / "g.bmp").exists()
    proc = run_cli(
        "sample", "--model", str(tmp_path / "m"), "--num-images", "200000", "--out", str(tmp_path / "big.png")
    )
    assert proc.returncode == 2 and "holds at most 111,111 images of 28x28" in proc.stderr and "--seed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "big.png").exists()


def test_every_flag_has_help_and_enumerations_offer_choices():
    """`hf-dgm CMD --help` and `hf-dgm train gan|vae --help` document every flag; enumerated values are choices."""
    commands, trainers = _all_parsers()
    parsers = [*commands.values(), *trainers]
    for parser in parsers:
        for action in parser._actions:
            if action.dest != "help":
                assert action.help and action.help.strip(), f"{parser.prog} {action.option_strings} has no help"
    train_gan = {a.dest: a for a in parsers[-2]._actions}
    from hf_dgm.gan.networks_gan import ARCHITECTURES as GAN_ARCHITECTURES
    from hf_dgm.training.losses import GAN_LOSSES
    from hf_dgm.vae.networks_vae import LIKELIHOODS

    assert set(train_gan["architecture"].choices) == set(GAN_ARCHITECTURES)  # the choices are the registries'
    assert set(train_gan["loss"].choices) == set(GAN_LOSSES)
    assert train_gan["latent_dim"].help.startswith("Size of the latent")  # from GANConfig's docstring
    train_vae = {a.dest: a for a in parsers[-1]._actions}
    assert set(train_vae["likelihood"].choices) == set(LIKELIHOODS)


def test_sample_refuses_a_config_larger_than_the_budget(tmp_path, run_cli):
    """A small weights file with a config that declares a huge network: one line naming the size and the budget,
    before anything is allocated (it used to end in an allocation traceback)."""
    import json

    torch.manual_seed(0)
    GANModel(GANConfig(**tiny_gan_kwargs())).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "generator_channels": 100_000}))
    proc = run_cli("sample", "--model", str(tmp_path), "--out", str(tmp_path / "g.png"))
    assert proc.returncode == 2
    assert "parameters" in proc.stderr and "more than the budget of 1,000,000,000" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreachable_hub_model_names_the_repo(tmp_path):
    import os

    from conftest import free_port

    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{free_port()}", HF_HOME=str(tmp_path / "hf_home"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_dgm.cli",
            "sample",
            "--model",
            "someone/missing-model",
            "--out",
            str(tmp_path / "g.png"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "Could not get the model 'someone/missing-model' from the Hub" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_fast_path_stays_light(tmp_path, tiny_gan):
    """hf-dgm sample's checks run without transformers, and without meta-tensor ops (their first use imports
    torch._dynamo, about 1 s of the time to first image), for a model within the budgets."""
    from conftest import run_python

    tiny_gan.save_pretrained(tmp_path)
    proc = run_python(
        "import sys\n"
        "from hf_dgm.sampling import load_sampling_network, sample_images\n"
        f"cfg, family, net = load_sampling_network({str(tmp_path)!r})\n"
        "sample_images(cfg, family, net, 4)\n"
        "print(sorted(m for m in ('transformers', 'diffusers', 'torch._dynamo') if m in sys.modules))\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_sample_grid_layout_and_class_labels_are_bounded(tmp_path, run_cli):
    """--nrow counts in the grid limit (10 000 000 used to take 9.5 GB, then a MemoryError traceback), and a class
    label beyond int64 gets one line naming the classes (it was "Overflow when unpacking long long")."""
    torch.manual_seed(0)
    GANModel(GANConfig(**tiny_gan_kwargs(num_classes=10))).save_pretrained(tmp_path / "m")
    base = ["sample", "--model", tmp_path / "m", "--num-images", "4", "--out", tmp_path / "g.png"]
    proc = run_cli(*base, "--nrow", "10000000")
    assert proc.returncode == 2 and "--nrow 10000000 makes a grid 300,000,002 pixels wide" in proc.stderr
    for label in (2**70, -(2**70), 10):
        proc = run_cli(*base, "--class-label", label)
        assert proc.returncode == 2 and f"--class-label '{label}' is not a class of this model" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "g.png").exists()
    proc = run_cli(*base, "--nrow", "4", "--class-label", "9")
    assert proc.returncode == 0 and Image.open(tmp_path / "g.png").size == (2 + 4 * 30, 32), proc.stderr


def test_config_reading_applies_the_config_class_defaults(tmp_path, run_cli):
    """The fast path reads config.json with the config class's defaults for the fields the file lacks (fields newer
    than the file): `hf-dgm sample --model vae-mnist` failed with "lacks a field: ... 'num_mixtures'". The defaults
    are read from the class's source; they must equal the class's own."""
    import dataclasses
    import inspect
    import json

    from hf_dgm.families import FAMILIES, config_defaults, load_config

    for family in FAMILIES.values():
        names = inspect.get_annotations(family.config_class)  # the class's own fields, not PretrainedConfig's
        own = {f.name: f for f in dataclasses.fields(family.config_class) if f.name in names}
        expected = {n: f.default_factory() if f.default is dataclasses.MISSING else f.default for n, f in own.items()}
        assert config_defaults(family) == expected
    torch.manual_seed(0)
    VAEModel(VAEConfig(**tiny_vae_kwargs())).save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    newer = ("num_mixtures", "pixel_context", "pixel_context_channels", "gaussian_fixed_std")
    (tmp_path / "m" / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k not in newer}))
    assert {k: load_config(tmp_path / "m")[1][k] for k in newer} == {k: config[k] for k in newer}
    proc = run_cli("sample", "--model", tmp_path / "m", "--num-images", "4", "--out", tmp_path / "g.png")
    assert proc.returncode == 0, proc.stderr
    for text, needle in (("{not json", "is not valid JSON"), ("[1, 2]", "holds a JSON list: expected an object")):
        (tmp_path / "m" / "config.json").write_text(text)
        proc = run_cli("sample", "--model", tmp_path / "m", "--num-images", "4", "--out", tmp_path / "g.png")
        assert proc.returncode == 2 and needle in proc.stderr and "config.json" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_generation_memory_counts_the_batch(family, monkeypatch, run_cli, tmp_path):
    """generate_images draws in chunks whose activations (every layer's output, summed, for the whole chunk) stay
    within the budget, whatever the number of images, with the pixels of one pass; `hf-dgm sample` uses it with the
    HF_DGM_MAX_ACTIVATIONS budget (the size check used to count one image while 64 were drawn at once)."""
    from hf_dgm.modeling_utils import activation_elements
    from hf_dgm.sampling import generate_images, images_per_chunk, load_sampling_network

    torch.manual_seed(0)
    model = GANModel(GANConfig(**tiny_gan_kwargs())) if family == "gan" else VAEModel(VAEConfig(**tiny_vae_kwargs()))
    model.save_pretrained(tmp_path / "m")
    net = model.sampling_network.eval()
    with torch.device("meta"):
        meta_net = type(model)(model.config).sampling_network
    per_image = activation_elements(meta_net, model.config, 0)  # the exact count
    budget = 5 * per_image
    chunks, elements = [], []
    leaves = [m for m in net.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda m, i, out: elements.append(out.numel())) for m in leaves]
    net.register_forward_pre_hook(lambda m, args: chunks.append((args[0].shape[0], sum(elements))))
    latents = torch.randn(23, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    images = generate_images(model.config, net, latents, max_activations=budget)
    for hook in hooks:
        hook.remove()
    used = [b - a for (_, a), (_, b) in zip(chunks, [*chunks[1:], (0, sum(elements))])]
    assert 1 <= images_per_chunk(model.config, budget) <= 5 and len(chunks) >= 5
    assert max(used) <= budget and sum(n for n, _ in chunks) == 23, (chunks, used, budget)
    expected = generate_images(model.config, net, latents, max_activations=23 * per_image)  # one pass
    np.testing.assert_array_equal(images, expected)
    monkeypatch.setattr("hf_dgm.modeling_utils.MAX_ACTIVATIONS", budget)  # as HF_DGM_MAX_ACTIVATIONS would
    cfg, fam, cli_net = load_sampling_network(tmp_path / "m")
    calls = []
    cli_net.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    monkeypatch.setattr("hf_dgm.sampling.load_sampling_network", lambda folder: (cfg, fam, cli_net))
    proc = run_cli("sample", "--model", tmp_path / "m", "--num-images", "23", "--out", tmp_path / "g.png")
    assert proc.returncode == 0 and sum(calls) == 23 and max(calls) <= 5, (proc.stderr, calls)


def _all_parsers():
    import argparse

    from hf_dgm.cli import build_parser
    from hf_dgm.training.arguments import build_parser as build_train_parser
    from hf_dgm.training.gan import GANTrainingArguments
    from hf_dgm.training.vae import VAETrainingArguments

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    trainers = [
        build_train_parser(cls, f"train {cls.__name__}", "") for cls in (GANTrainingArguments, VAETrainingArguments)
    ]
    return subparsers.choices, trainers


def test_help_describes_every_command_and_shows_each_default_once():
    """No "(default: None)" (a None default is said in words), no default printed twice, and a description for every
    command."""
    import re

    commands, trainers = _all_parsers()
    for parser in [*commands.values(), *trainers]:
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: )" not in text, parser.prog
        for action in parser._actions:
            shown = parser._get_formatter()._expand_help(action) if action.help else ""
            assert len(re.findall(r"\bdefault: |\bnone: ", shown)) <= 1, (parser.prog, action.dest, shown)
    for name, parser in commands.items():
        assert parser.description and len(parser.description) > 40, f"hf-dgm {name} has no description"
    spectral = next(a for a in trainers[0]._actions if a.dest == "spectral_norm")
    assert "Unset: on for `resnet`" in spectral.help  # what its None default means


def test_sample_class_label_takes_class_names(tmp_path, run_cli):
    """--class-label takes a name of config.id2label (as the app offers them) or an id; a wrong one gets one line
    listing the names."""
    torch.manual_seed(0)
    model = GANModel(GANConfig(**tiny_gan_kwargs(num_classes=3)))
    model.config.id2label = {0: "cats", 1: "dogs", 2: "smileys & people"}
    model.save_pretrained(tmp_path / "m")
    grids = {}
    for label in ("smileys & people", "2", "dogs"):
        out = tmp_path / f"{label}.png"
        proc = run_cli(
            "sample", "--model", str(tmp_path / "m"), "--num-images", "4", "--class-label", label, "--out", out
        )
        assert proc.returncode == 0, proc.stderr
        grids[label] = np.asarray(Image.open(out))
    np.testing.assert_array_equal(grids["smileys & people"], grids["2"])
    assert not np.array_equal(grids["dogs"], grids["2"])
    proc = run_cli("sample", "--model", str(tmp_path / "m"), "--class-label", "birds", "--out", tmp_path / "x.png")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--class-label 'birds' is not a class of this model: expected one of 'cats', 'dogs'" in proc.stderr


def test_cache_clear_clears_every_cache(tmp_path, monkeypatch, run_cli):
    """Decoded datasets and the evaluation's reference statistics: both under the cache folder, both cleared."""
    monkeypatch.setenv("HF_DGM_CACHE", str(tmp_path / "cache"))
    for folder, n in (("datasets", 2), ("reference_stats", 3)):
        (tmp_path / "cache" / folder).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "cache" / folder / f"{i}.safetensors").write_bytes(b"x")
    proc = run_cli("cache", "dir")
    assert proc.stdout.strip() == str(tmp_path / "cache")
    proc = run_cli("cache", "clear")
    assert proc.returncode == 0 and "2 decoded-dataset file(s), 3 reference-statistics file(s)" in proc.stdout
    assert list((tmp_path / "cache").iterdir()) == []
    assert "removed nothing" in run_cli("cache", "clear").stdout
