import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import MNIST, assert_resumes_exactly, tiny_train_kwargs, train_tiny
from PIL import Image
from safetensors.torch import load_file

from hf_dgm import GANConfig, GANModel, GANPipeline, VAEModel
from hf_dgm.training import losses
from hf_dgm.training.base import NonFiniteLossError
from hf_dgm.training.gan import GANTrainingArguments, train_gan
from hf_dgm.training.vae import VAEObjective, VAETrainingArguments, train_vae

TINY_GAN = dict(generator_channels=4, discriminator_channels=4, latent_dim=8)
TINY_VAE = dict(base_channels=4, hidden_dim=16, latent_dim=4)


def tiny_model(family: str, **options) -> dict:
    """The tiny model flags of `family` ("gan" or "vae") with `options`; the `mlp` architecture takes its own widths
    (a width flag of another architecture is refused)."""
    tiny = TINY_GAN if family == "gan" else TINY_VAE
    if options.get("architecture") == "mlp":
        mlp = dict(generator_hidden_dims=[16, 16], discriminator_hidden_dims=[16, 16]) if family == "gan" else {}
        tiny = {"latent_dim": tiny["latent_dim"], **mlp, **({"hidden_dims": [16, 8]} if family == "vae" else {})}
    return {**tiny, **options}


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "hf_dgm.cli", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def tiny_cli_flags(out, family="gan", steps=6, extra=()):
    model = (
        ["--generator-channels", "4", "--discriminator-channels", "4", "--latent-dim", "8"]
        if family == "gan"
        else ["--base-channels", "4", "--hidden-dim", "16", "--latent-dim", "4"]
    )
    return [
        "train",
        family,
        "--dataset",
        MNIST,
        "--output-dir",
        str(out),
        "--max-samples",
        "256",
        "--batch-size",
        "16",
        "--max-steps",
        str(steps),
        "--log-every",
        "2",
        "--sample-every",
        "4",
        "--checkpoint-every",
        "4",
        "--num-grid-images",
        "8",
        "--no-progress-bar",
        *model,
        *extra,
    ]


# ------------------------------------------------------------------------------------------------ losses


def test_gan_losses_match_formulas():
    lr, lf = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    s = torch.sigmoid
    d = -(torch.log(s(lr)) + torch.log(1 - s(lf))).mean()
    torch.testing.assert_close(losses.discriminator_loss("minimax", lr, lf), d)
    torch.testing.assert_close(losses.discriminator_loss("non_saturating", lr, lf), d)
    torch.testing.assert_close(losses.generator_loss("minimax", lf), torch.log(1 - s(lf)).mean())  # the article's min_G
    torch.testing.assert_close(losses.generator_loss("non_saturating", lf), -torch.log(s(lf)).mean())
    smooth = -(0.9 * torch.log(s(lr)) + 0.1 * torch.log(1 - s(lr))).mean() - torch.log(1 - s(lf)).mean()
    torch.testing.assert_close(losses.discriminator_loss("non_saturating", lr, lf, label_smoothing=0.1), smooth)
    torch.testing.assert_close(
        losses.discriminator_loss("hinge", lr, lf), (torch.relu(1 - lr) + torch.relu(1 + lf)).mean()
    )
    torch.testing.assert_close(losses.generator_loss("hinge", lf), -lf.mean())
    torch.testing.assert_close(
        losses.discriminator_loss("least_squares", lr, lf), 0.5 * ((lr - 1) ** 2).mean() + 0.5 * (lf**2).mean()
    )
    torch.testing.assert_close(losses.generator_loss("least_squares", lf), 0.5 * ((lf - 1) ** 2).mean())
    with pytest.raises(ValueError, match="loss='wasserstein'"):
        losses.generator_loss("wasserstein", lf)


def test_feature_matching_r1_ema_and_historical_average():
    fr, ff = torch.randn(8, 5), torch.randn(8, 5, requires_grad=True)
    fm = losses.feature_matching_loss(fr, ff)
    torch.testing.assert_close(fm, ((fr.mean(0) - ff.mean(0)) ** 2).sum())
    fm.backward()
    assert ff.grad is not None
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.tensor([1.0, 2.0, -2.0])
    torch.testing.assert_close(losses.r1_penalty(x @ w, x), torch.tensor(9.0))  # ||grad_x (x.w)||^2 = ||w||^2
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    losses.ema_update(a, b, 0.9)
    torch.testing.assert_close(a.weight, 0.9 * before + 0.1 * b.weight)
    p = torch.nn.Parameter(torch.zeros(3))
    hist = losses.HistoricalAverage([p], weight=0.5)
    values = [torch.zeros(3)]
    for v in (1.0, 2.0, 6.0):
        with torch.no_grad():
            p.fill_(v)
        values.append(torch.full((3,), v))
        hist.update()
    torch.testing.assert_close(hist.mean[0], torch.stack(values).mean(0))  # mean of all past values: 2.25
    p.grad = torch.zeros(3)
    penalty = hist.add_penalty_grad()
    torch.testing.assert_close(p.grad, 2 * 0.5 * (p.detach() - 2.25))
    assert abs(penalty.item() - 0.5 * 3 * (6.0 - 2.25) ** 2) < 1e-4


def test_mode_seeking_loss_is_the_inverse_ratio_of_image_to_latent_differences():
    images = torch.zeros(5, 1, 2, 2, requires_grad=True)
    latents = torch.zeros(5, 3)
    with torch.no_grad():
        images[2:4] += 0.5  # the pairs (0, 2) and (1, 3) differ by 0.5 in every pixel; image 4 has no pair
        images[4] += 100.0
        latents[2:4] += 2.0
    loss = losses.mode_seeking_loss(images, latents)
    torch.testing.assert_close(loss, torch.tensor(1 / (0.25 + 1e-5)))
    loss.backward()
    assert images.grad[:4].abs().sum() > 0 and images.grad[4].abs().sum() == 0


def test_iwae_bound_is_tighter_than_elbo():
    torch.manual_seed(0)
    from hf_dgm import VAEConfig

    objective = VAEObjective(VAEModel(VAEConfig(architecture="mlp", latent_dim=4, hidden_dims=[32, 16])))
    x = (torch.rand(64, 1, 28, 28) > 0.7).float()
    with torch.no_grad():
        elbo = torch.stack(
            [objective(x, None, torch.Generator().manual_seed(i), 1.0, 0.0, 1)["elbo"] for i in range(20)]
        ).mean()
        iwae = objective(x, None, torch.Generator().manual_seed(0), 1.0, 0.0, 50)["iwae_bound"]
    assert iwae > elbo + 0.1  # log-mean-exp of 50 weights > mean of logs (Jensen), by a clear margin here
    with torch.no_grad():
        free = objective(x, None, torch.Generator().manual_seed(0), 1.0, 100.0, 1)
    torch.testing.assert_close(free["loss"], free["reconstruction_loss"] + 100.0 * 4)  # every dim floored at 100


# ------------------------------------------------------------------------------------------------ runs


def test_gan_cli_run_produces_model_folder(tmp_path):
    out = tmp_path / "gan"
    proc = cli(*tiny_cli_flags(out, "gan", extra=["--report-to", "tensorboard"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "training_args.json", "samples.png", "README.md", "logs"} <= names
    assert any(out.joinpath("logs").rglob("events.out.tfevents*"))
    rows = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "lr_g", "lr_d", "images_per_s"):
        assert all(key in r and r[key] == r[key] for r in rows), key
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_00000004.png", "step_00000006.png"]
    record = json.loads((out / "training_args.json").read_text())
    assert record["steps"] == 6 and record["trainer"] == "gan" and "hardware" in record
    # images/s is measured over each log's window: after a checkpoint it once counted every step since the start
    # against the time since the checkpoint (4x too high at step 4 here)
    overall = 6 * record["batch_size"] / record["training_time_s"]
    assert max(r["images_per_s"] for r in rows) < 3 * overall
    model = GANModel.from_pretrained(out)
    assert model.generator_ema is not None  # EMA on by default
    images = GANPipeline(gan=model)(batch_size=2, output_type="np").images
    assert images.shape == (2, 28, 28, 1)
    assert "[More Information Needed]" not in (out / "README.md").read_text()


@pytest.fixture(scope="module")
def gan_baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    train_gan(GANTrainingArguments(**tiny_train_kwargs(out, max_steps=4, **TINY_GAN)))
    return [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "options,expect",
    [
        ({"loss": "minimax"}, "g_loss"),
        ({"loss": "hinge"}, "g_loss"),
        ({"loss": "least_squares"}, "g_loss"),
        ({"r1_gamma": 1.0}, "r1"),
        ({"label_smoothing": 0.1}, "d_loss"),
        ({"feature_matching": 1.0}, "feature_matching"),
        ({"historical_averaging": 0.01}, "hist_g"),
        ({"mode_seeking": 1.0, "conditional": True}, "mode_seeking"),
        ({"minibatch_discrimination_kernels": 4, "minibatch_std": True, "spectral_norm": True}, "d_loss"),
        ({"d_steps": 2, "conditional": True, "architecture": "mlp"}, "d_loss"),
        ({"diffaugment": "color,translation,cutout"}, "d_loss"),
        ({"architecture": "resnet", "spectral_norm": True, "loss": "hinge", "conditional": True}, "d_loss"),
    ],
)
def test_gan_options_train(tmp_path, options, expect, gan_baseline):
    args = GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=4, **tiny_model("gan", **options)))
    torch.manual_seed(0)
    model = train_gan(args)
    rows = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert all(expect in r and abs(r[expect]) < 1e6 for r in rows)
    # the option changes what is computed: same seed, same data, different numbers than the plain recipe
    assert rows[0][expect] != gan_baseline[0].get(expect)
    for name, value in options.items():
        if hasattr(model.config, name):
            assert getattr(model.config, name) == value
    if options.get("conditional"):
        assert model.config.num_classes == 10
    if options.get("d_steps") == 2:
        assert json.loads((tmp_path / "training_args.json").read_text())["d_steps"] == 2


@pytest.mark.parametrize(
    "options,keys",
    [
        ({}, ("loss", "reconstruction_loss", "kl_loss", "elbo")),
        ({"iwae_samples": 3}, ("iwae_bound",)),
        ({"free_bits": 0.5, "kl_warmup_steps": 4, "lr_schedule": "cosine", "warmup_steps": 1}, ("kl_loss", "beta")),
        ({"architecture": "mlp", "conditional": True, "likelihood": "gaussian"}, ("loss",)),
        ({"likelihood": "discretized_logistic"}, ("bits_per_dim", "kl_loss")),
        ({"likelihood": "logistic_mixture", "num_mixtures": 2}, ("bits_per_dim",)),
    ],
)
def test_vae_options_train(tmp_path, options, keys):
    args = VAETrainingArguments(**tiny_train_kwargs(tmp_path, **tiny_model("vae", **options)))
    model = train_vae(args)
    rows = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    for key in keys:
        assert all(key in r for r in rows), key
    if "kl_warmup_steps" in options:
        assert [r["beta"] for r in rows] == [0.25, 0.75, 1.0]  # beta_t = min(1, step / 4) at steps 1, 3, 5
        assert rows[-1]["lr_vae"] < rows[0]["lr_vae"]  # cosine decay
    assert isinstance(VAEModel.from_pretrained(tmp_path), VAEModel) and model.config.latent_dim == 4


def test_init_from_a_trained_vae_with_a_pixel_context_grows_one_and_keeps_the_rest(tmp_path):
    mixture = dict(likelihood="logistic_mixture", num_mixtures=2, max_steps=2)
    base = train_vae(VAETrainingArguments(**tiny_train_kwargs(tmp_path / "base", **TINY_VAE, **mixture)))
    args = dict(init_from=str(tmp_path / "base"), pixel_context=3, pixel_context_channels=4, max_steps=1, lr=0.0)
    grown = train_vae(VAETrainingArguments(**tiny_train_kwargs(tmp_path / "grown", **args)))
    assert grown.config.pixel_context == 3 and grown.config.latent_dim == 4
    grown_weights = grown.state_dict()
    assert all(torch.equal(v, grown_weights[k]) for k, v in base.state_dict().items())  # lr 0: nothing moved
    assert VAEModel.from_pretrained(tmp_path / "grown").config.pixel_context == 3


def test_pixel_context_only_trains_the_context_and_keeps_the_rest_with_its_fitted_prior(tmp_path):
    """--pixel-context-only: the --init-from model's weights do not move, so its fitted prior is kept (and the
    sample grids draw from it); the new context does move. Without --init-from or --pixel-context: one line."""
    from test_latent_prior import fitted

    from hf_dgm.training.base import GRID_SEED_OFFSET
    from hf_dgm.training.vae import VAETrainer

    mixture = dict(likelihood="logistic_mixture", num_mixtures=2, max_steps=2)
    base = train_vae(VAETrainingArguments(**tiny_train_kwargs(tmp_path / "base", **TINY_VAE, **mixture)))
    base = base.with_latent_prior(fitted(torch.randn(50, 4), 2, 2))
    base.save_pretrained(tmp_path / "fitted")
    args = dict(init_from=str(tmp_path / "fitted"), pixel_context=3, pixel_context_channels=4, max_steps=3, lr=0.01)
    grown = train_vae(VAETrainingArguments(**tiny_train_kwargs(tmp_path / "grown", pixel_context_only=True, **args)))
    grown_weights = grown.state_dict()
    assert all(torch.equal(v, grown_weights[k]) for k, v in base.state_dict().items())  # the prior's buffers too
    assert grown.latent_prior is not None and grown.config.latent_prior_components == 2
    new = grown.with_latent_prior(None).state_dict()
    start = base.with_pixel_context(3, 4).with_latent_prior(None).state_dict()
    moved = [k for k in new if not torch.equal(new[k], start[k])]
    assert moved and all(k.startswith("decoder.pixel_context.") for k in moved)
    grid_latents = VAETrainer(
        VAETrainingArguments(**tiny_train_kwargs(tmp_path / "grid", pixel_context_only=True, **args))
    ).fixed[0]
    drawn = grown.latent_prior.sample(len(grid_latents), torch.Generator().manual_seed(GRID_SEED_OFFSET), 1.0)
    assert torch.equal(grid_latents, drawn)  # the sample grids draw from the fitted prior, as the pipeline does
    for missing in ({"init_from": None}, {"pixel_context": 0}):
        flags = {
            **tiny_train_kwargs(tmp_path / "x", pixel_context_only=True, **args, likelihood="logistic_mixture"),
            **missing,
        }
        with pytest.raises(ValueError, match=r"needs --init-from and --pixel-context\.$"):
            VAETrainingArguments(**flags).validate()
    assert not (tmp_path / "x").exists()


def test_sample_grids_drawn_pixel_by_pixel_show_a_bar_of_the_rows_unless_told_not_to(tmp_path, progress_bars):
    """The grids during training (steps 2 and 3, the last) each show a bar of their rows, and the final samples.png
    is the last step's grid, not drawn a second time; --no-progress-bar: none."""
    from hf_dgm.training.vae import VAETrainer

    context = dict(likelihood="logistic_mixture", num_mixtures=2, pixel_context=3, pixel_context_channels=4)
    args = tiny_train_kwargs(tmp_path, **TINY_VAE, **context, max_steps=3, sample_every=2, progress_bar=True)
    trainer = VAETrainer(VAETrainingArguments(**args))
    trainer.train()
    rows = [bar for bar in progress_bars if bar.kwargs.get("desc") == "decoding pixels"]
    assert len(rows) == 2 and all(bar.kwargs["total"] == sum(bar.updates) == 28 for bar in rows)
    assert (tmp_path / "samples" / "step_00000002.png").is_file()
    final, last = (Image.open(tmp_path / name) for name in ("samples.png", "samples/step_00000003.png"))
    assert np.array_equal(np.asarray(final), np.asarray(last))
    trainer.args.progress_bar = False
    bars = len(progress_bars)
    assert trainer.sample_grid_images().shape == (8, 1, 28, 28) and len(progress_bars) == bars


def test_dynamic_binarization_draws_fresh_bits(tmp_path):
    from hf_dgm.training.vae import VAETrainer

    trainer = VAETrainer(VAETrainingArguments(**tiny_train_kwargs(tmp_path, **TINY_VAE)))
    assert trainer.dynamic_binarization
    seen = []
    original = trainer.objective.forward

    def spy(x, *a, **k):
        seen.append(x.detach().clone())
        return original(x, *a, **k)

    trainer.objective.forward = spy
    trainer.data.sampler.batches_per_epoch = 1  # the same 16 images every step
    trainer.training_step(False)
    trainer.training_step(False)
    a, b = seen
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)  # a fresh Bernoulli draw each time the images are used


def test_same_seed_same_weights(tmp_path):
    def run(out):
        train_gan(GANTrainingArguments(**tiny_train_kwargs(out, max_steps=4, **TINY_GAN)))
        return load_file(out / "model.safetensors")

    a, b = run(tmp_path / "a"), run(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_exact_resume_after_sigkill(tmp_path, family):
    steps = 60
    full = tmp_path / "full"
    proc = cli(*tiny_cli_flags(full, family, steps=steps, extra=["--report-to", "none"]))
    assert proc.returncode == 0, proc.stderr[-3000:]

    killed = tmp_path / "killed"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hf_dgm.cli",
            *tiny_cli_flags(killed, family, steps=steps, extra=["--report-to", "none"]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "checkpoint-00000004").is_dir() and time.time() < deadline:
        time.sleep(0.02)
    runner.send_signal(signal.SIGKILL)
    assert runner.wait() == -signal.SIGKILL  # killed mid-run, not after finishing
    assert not (killed / "model.safetensors").exists()
    from hf_dgm.training.checkpointing import list_checkpoints

    resumed_from = int(list_checkpoints(killed)[-1].name.split("-")[1])
    assert 4 <= resumed_from < steps
    proc = cli(*tiny_cli_flags(killed, family, steps=steps, extra=["--report-to", "none", "--resume-from", "latest"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_file(full / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


def test_resume_refuses_changed_arguments_and_reused_folders(tmp_path):
    train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=3, **TINY_GAN)))
    with pytest.raises(ValueError, match="batch_size: 16 -> 8"):
        train_gan(
            GANTrainingArguments(
                **tiny_train_kwargs(tmp_path, max_steps=6, batch_size=8, resume_from="latest", **TINY_GAN)
            )
        )
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=6, **TINY_GAN)))
    train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=2, overwrite_output_dir=True, **TINY_GAN)))
    from hf_dgm.training.checkpointing import list_checkpoints

    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000002"]


def test_given_model_config_drives_the_data(tmp_path):
    from hf_dgm import GANConfig

    model = GANModel(GANConfig(image_size=32, num_channels=3, num_classes=10, **TINY_GAN))
    trained = train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=2)), model=model)
    assert trained is model and trained.config.image_size == 32
    assert json.loads((tmp_path / "training_args.json").read_text())["steps"] == 2


def test_kill_during_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    from hf_dgm.training import checkpointing

    args = GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=3, **TINY_GAN))
    train_gan(args)
    good = checkpointing.list_checkpoints(tmp_path)
    assert [p.name for p in good] == ["checkpoint-00000003"]

    def crash(*a, **k):
        raise KeyboardInterrupt("simulated kill in the middle of a checkpoint write")

    monkeypatch.setattr(checkpointing, "save_file", crash)
    args = GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=6, resume_from="latest", **TINY_GAN))
    with pytest.raises(KeyboardInterrupt):
        train_gan(args)
    monkeypatch.undo()
    assert [p.name for p in checkpointing.list_checkpoints(tmp_path)] == ["checkpoint-00000003"]
    assert any(p.name.startswith(".tmp-checkpoint-") for p in (tmp_path / "checkpoints").iterdir())
    GANModel.from_pretrained(tmp_path / "checkpoints" / "checkpoint-00000003" / "model")  # intact and loadable
    train_gan(args)  # the retry succeeds and cleans the partial folder
    names = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert "checkpoint-00000006" in names and not any(n.startswith(".tmp-") for n in names)


def test_nonfinite_loss_stops_or_skips(tmp_path):
    torch.manual_seed(0)
    from hf_dgm import GANConfig

    model = GANModel(GANConfig(**TINY_GAN))
    with torch.no_grad():
        model.discriminator.head.linear.weight.fill_(float("nan"))
    args = GANTrainingArguments(**tiny_train_kwargs(tmp_path / "stop", max_steps=3, **TINY_GAN))
    with pytest.raises(NonFiniteLossError, match=r"step 1: d_loss = nan"):
        train_gan(args, model=model)
    assert not (tmp_path / "stop" / "model.safetensors").exists()
    assert not (tmp_path / "stop" / "checkpoints").exists()  # nothing written from NaN weights
    # skip: a loss that is NaN once (weights stay finite) is skipped and counted, the run completes
    from unittest import mock

    import hf_dgm.training.gan as gan_module

    real_loss, calls = gan_module.discriminator_loss, []

    def nan_once(*a, **k):
        calls.append(1)
        loss = real_loss(*a, **k)
        return loss * float("nan") if len(calls) == 2 else loss

    args = GANTrainingArguments(**tiny_train_kwargs(tmp_path / "skip", max_steps=3, on_nonfinite="skip", **TINY_GAN))
    with mock.patch.object(gan_module, "discriminator_loss", nan_once):
        train_gan(args)
    assert json.loads((tmp_path / "skip" / "training_args.json").read_text())["skipped_steps"] == 1
    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / "skip" / "model.safetensors").values())


@pytest.mark.parametrize("reconstruction", [False, True])  # FastGAN's D decoder: used in D's steps only
def test_multiprocess_ranks_end_identical(tmp_path, reconstruction):
    script = tmp_path / "dist_check.py"
    script.write_text(
        "import hashlib, os, sys, torch\n"
        "from hf_dgm.training.gan import GANTrainingArguments, GANTrainer\n"
        f"kw = dict(output_dir={str(tmp_path / 'out')!r}, dataset={MNIST!r}, max_samples=256, batch_size=8,\n"
        "          max_steps=3, log_every=1, sample_every=3, checkpoint_every=3, num_grid_images=4, report_to='none',\n"
        "          progress_bar=False, device='cpu', generator_channels=4, discriminator_channels=4, latent_dim=8,\n"
        f"          discriminator_reconstruction={reconstruction})\n"
        "trainer = GANTrainer(GANTrainingArguments(**kw))\n"
        "assert trainer.accelerator.num_processes == 2, trainer.accelerator.num_processes\n"
        "first = trainer.data.sampler._permutation(0)[:16].tolist()\n"
        "model = trainer.train()\n"
        "h = hashlib.sha256(b''.join(t.detach().numpy().tobytes() for t in model.state_dict().values())).hexdigest()\n"
        f"open({str(tmp_path)!r} + f'/rank{{trainer.accelerator.process_index}}.txt', 'w').write(h)\n"
        f"open({str(tmp_path)!r} + f'/data{{trainer.accelerator.process_index}}.txt', 'w').write(str(first))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    h0, h1 = (tmp_path / "rank0.txt").read_text(), (tmp_path / "rank1.txt").read_text()
    assert h0 == h1
    assert (tmp_path / "data0.txt").read_text() != (tmp_path / "data1.txt").read_text()  # each rank its own shard
    single = GANModel.from_pretrained(tmp_path / "out")
    assert single.config.latent_dim == 8


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_dataset_inputs(tmp_path, run_cli):
    def train(family, *flags, dataset=MNIST):
        return run_cli("train", family, "--dataset", dataset, "--output-dir", tmp_path / "o", *flags)

    for family, flags, dataset, needles in (
        ("gan", (), tmp_path / "nope", ("does not exist",)),
        (
            "gan",
            ("--image-column", "img", "--max-samples", "64"),
            MNIST,
            ("no image column 'img'", "['image', 'label']"),
        ),
        ("vae", ("--split", "validation"), MNIST, ("validation",)),
        ("gan", ("--max-samples", "0"), MNIST, ("is empty",)),
        ("gan", ("--image-size", "30", "--max-samples", "64"), MNIST, ("image_size=30",)),
    ):
        proc = train(family, *flags, dataset=dataset)
        assert proc.returncode == 2 and all(needle in proc.stderr for needle in needles), (flags, proc.stderr)
    (tmp_path / "not_ckpt").mkdir()
    proc = run_cli(*tiny_cli_flags(tmp_path / "o", extra=["--resume-from", str(tmp_path / "not_ckpt")]))
    assert proc.returncode == 2 and "is not a checkpoint" in proc.stderr
    proc = run_cli(*tiny_cli_flags(tmp_path / "fresh", extra=["--resume-from", "latest"]))
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr


def test_undecodable_images_skip_or_fail(tmp_path):
    from PIL import Image

    from hf_dgm.data import load_image_tensors

    folder = tmp_path / "imgs" / "train"
    (folder / "a").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(folder / "a" / f"{i}.png")
    (folder / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    data = load_image_tensors(str(tmp_path / "imgs"), "train", "image", None, 28, 1, use_cache=False)
    assert data.images.shape == (3, 1, 28, 28) and data.num_skipped == 1  # RGB 32x32 -> L 28x28
    with pytest.raises(ValueError, match=r"Image \d of .* can't be decoded"):
        load_image_tensors(str(tmp_path / "imgs"), "train", "image", None, 28, 1, on_bad_image="error", use_cache=False)


def test_dataset_cache_and_clear(tmp_path):
    from hf_dgm.data import cache_dir, load_image_tensors

    a = load_image_tensors(MNIST, "test", max_samples=32, resolution=28, num_channels=1)
    files = list(cache_dir().glob("*.safetensors"))
    assert files
    from unittest import mock

    with mock.patch("hf_dgm.data.convert_image", side_effect=AssertionError("decoded again")):
        b = load_image_tensors(MNIST, "test", max_samples=32, resolution=28, num_channels=1)  # from the cache
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    c = load_image_tensors(MNIST, "test", max_samples=32, resolution=32, num_channels=3)
    assert c.images.shape == (32, 3, 32, 32)
    proc = cli("cache", "clear")
    assert proc.returncode == 0 and "removed" in proc.stdout
    assert not list(cache_dir().glob("*.safetensors"))


@pytest.mark.parametrize("streaming", [False, True])
def test_labels_outside_the_classlabel_get_one_line(tmp_path, run_cli, streaming):
    """A parquet whose ClassLabel names 3 classes but holds a label 5: one line, not an IndexError in training."""
    import datasets
    import pyarrow
    import pyarrow.parquet

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    images = [np.full((28, 28), 40 * i, dtype=np.uint8) for i in range(6)]
    ds = datasets.Dataset.from_dict({"image": images, "label": [0, 1, 2, 0, 1, 2]}, features=features)
    table = ds.data.table.set_column(1, "label", pyarrow.array([0, 1, 2, 0, 5, 2], pyarrow.int64()))
    (tmp_path / "data").mkdir()
    pyarrow.parquet.write_table(table, tmp_path / "data" / "train-00000-of-00001.parquet")
    flags = ["--conditional", "--batch-size", "4", "--max-steps", "2", "--report-to", "none"]
    proc = run_cli(
        "train", "gan", "--dataset", tmp_path / "data", "--output-dir", tmp_path / "o", *flags,
        *(["--streaming"] if streaming else []),
    )  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "label 5 is out of range for the dataset's ClassLabel of 3 names" in proc.stderr


def test_streaming_fallback_trains_and_resumes_exactly(tmp_path):
    kw = dict(streaming=True, max_steps=6, checkpoint_every=3, **TINY_GAN)
    assert_resumes_exactly("gan", tmp_path, 3, **kw)
    record = json.loads((tmp_path / "full" / "training_args.json").read_text())
    assert record["num_train_images"] == "streamed"


def test_streaming_is_chosen_automatically_for_large_datasets(tmp_path):
    from hf_dgm.data import decoded_size_bytes
    from hf_dgm.training.gan import GANTrainer

    assert decoded_size_bytes(MNIST, "train", 28, 1) == 60000 * 784
    small = GANTrainer(GANTrainingArguments(**tiny_train_kwargs(tmp_path / "a", **TINY_GAN)))
    assert small.data.stream is None and small.args.streaming is False
    big = GANTrainer(GANTrainingArguments(**tiny_train_kwargs(tmp_path / "b", max_memory_gb=0.01, **TINY_GAN)))
    assert big.data.stream is not None and big.args.streaming is True


def test_ema_only_reads_the_generator(tmp_path):
    """A run with an EMA generator trains exactly like the plain recipe without one: same seed, bit-identical G and D
    (the recipe side-by-side in docs/zoo.md compares the raw and EMA generators of one run on this basis)."""
    weights = {}
    for decay in (0.0, 0.999):
        model = train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path / str(decay), ema_decay=decay)))
        weights[decay] = {k: v for k, v in model.state_dict().items() if not k.startswith("generator_ema.")}
        assert (model.generator_ema is not None) == (decay > 0)
    plain, with_ema = weights[0.0], weights[0.999]
    assert plain.keys() == with_ema.keys()
    assert all(torch.equal(plain[k], with_ema[k]) for k in plain)


def test_bad_arguments_fail_before_any_data_is_read(tmp_path, run_cli):
    """One line, and before the dataset is opened: the dataset here does not even exist."""
    from hf_dgm.training.gan import GANTrainer

    (tmp_path / "a_file").write_text("")
    missing = str(tmp_path / "no-such-dataset")
    proc = run_cli("train", "gan", "--dataset", missing, "--output-dir", str(tmp_path / "o"), "--lr-g", "nan")
    assert proc.returncode == 2 and "--lr-g nan is invalid: expected a finite number" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    for flags, needle in (
        ({"ema_decay": float("inf")}, "--ema-decay inf is invalid: expected a finite number"),
        ({"lr_g": -1.0}, "--lr-g -1.0 is invalid"),
        ({"output_dir": str(tmp_path / "a_file")}, "is a file: expected a folder"),
    ):
        args = GANTrainingArguments(**{"dataset": missing, "output_dir": str(tmp_path / "o"), **flags})
        with pytest.raises(ValueError, match=re.escape(needle)):
            GANTrainer(args)
    assert not (tmp_path / "o").exists()


def test_unreachable_hub_fails_fast(tmp_path):
    """A Hub dataset id with the Hub out of reach: one clear line at once, not a minute of retries."""
    from conftest import free_port

    env = {"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_HUB_OFFLINE": "", "HF_DATASETS_OFFLINE": ""}
    start = time.monotonic()
    proc = cli("train", "gan", "--dataset", "someone/images", "--output-dir", str(tmp_path / "o"), env=env)
    assert proc.returncode == 2 and "the Hub can't be reached" in proc.stderr and "'someone/images'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and time.monotonic() - start < 30


EMOJI = os.path.join(os.path.dirname(MNIST), "emoji")


def test_colour_residual_gan_with_diffaugment_resumes_exactly(tmp_path):
    """The small-data recipe on colour images (emoji at 32 px, conditional on the group): resnet, spectral norm,
    hinge, R1 and DiffAugment draw their augmentations from the run's seeded noise, so a resumed run ends
    bit-identical to an uninterrupted one."""
    kw = dict(
        dataset=EMOJI, image_size=32, num_channels=3, conditional=True, architecture="resnet", spectral_norm=True,
        loss="hinge", r1_gamma=1.0, diffaugment="color,translation,cutout", max_steps=6, checkpoint_every=3,
        generator_channels=8, discriminator_channels=8, latent_dim=16,
    )  # fmt: skip
    full = assert_resumes_exactly("gan", tmp_path, 3, **kw)
    assert full.config.num_classes == 9 and full.config.num_channels == 3
    images = full.generate(9, class_labels=list(range(9))).sample
    assert images.shape == (9, 3, 32, 32) and torch.isfinite(images).all()


def test_a_finished_run_is_not_overwritten_without_a_word(tmp_path):
    """A run whose checkpoints/ was deleted still holds its model: training into it again is refused (it used to
    overwrite model.safetensors silently) unless --overwrite-output-dir, which replaces it."""
    import shutil

    train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=2, **TINY_GAN)))
    shutil.rmtree(tmp_path / "checkpoints")
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"already holds a trained model \(config.json, model.safetensors\)"):
        train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=2, seed=1, **TINY_GAN)))
    assert (tmp_path / "model.safetensors").read_bytes() == before
    (tmp_path / "eval_results.json").write_text("{}")  # the old model's evaluation: gone with it
    train_gan(
        GANTrainingArguments(**tiny_train_kwargs(tmp_path, max_steps=2, seed=1, overwrite_output_dir=True, **TINY_GAN))
    )
    assert (tmp_path / "model.safetensors").read_bytes() != before and not (tmp_path / "eval_results.json").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("a folder without a model is no finished run")
    train_gan(GANTrainingArguments(**tiny_train_kwargs(tmp_path / "notes", max_steps=1, **TINY_GAN)))


def test_a_model_over_the_size_budget_is_refused_before_any_data(tmp_path, run_cli, monkeypatch):
    """`train gan --image-size 4096 --generator-channels 100000` used to allocate 8.8 GB and end in a traceback: the
    flags' model is sized on the meta device against the budgets loading uses (HF_DGM_MAX_*), in one line."""
    out = tmp_path / "run"
    proc = run_cli(
        "train", "gan", "--image-size", "4096", "--generator-channels", "100000", "--dataset", tmp_path / "nowhere",
        "--output-dir", out, "--report-to", "none",
    )  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "parameters" in proc.stderr and "HF_DGM_MAX_PARAMETERS" in proc.stderr and not out.exists()
    monkeypatch.setattr("hf_dgm.modeling_utils.MAX_ACTIVATIONS", 10_000)  # HF_DGM_MAX_ACTIVATIONS=10000
    proc = run_cli("train", "vae", "--dataset", tmp_path / "nowhere", "--output-dir", out, "--report-to", "none")
    assert proc.returncode == 2 and "HF_DGM_MAX_ACTIVATIONS" in proc.stderr and not out.exists(), proc.stderr


def test_lr_schedule_is_diffusers_and_resumes_exactly(tmp_path):
    """--lr-schedule cosine with --warmup-steps: diffusers' get_scheduler (linear warm-up from 0, then a half
    cosine to 0 at --max-steps), and a run resumed from a mid-run checkpoint ends bit-identical."""
    import math
    import shutil

    kw = dict(**TINY_VAE, lr_schedule="cosine", warmup_steps=2, log_every=1, max_steps=6, checkpoint_every=3)
    full = train_vae(VAETrainingArguments(**tiny_train_kwargs(tmp_path / "full", **kw)))
    rows = [json.loads(line) for line in (tmp_path / "full" / "logs" / "metrics.jsonl").read_text().splitlines()]
    expected = [1e-3 * (s / 2 if s < 2 else 0.5 * (1 + math.cos(math.pi * (s - 2) / 4))) for s in range(1, 7)]
    assert [r["lr_vae"] for r in rows] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    (tmp_path / "part" / "checkpoints").mkdir(parents=True)
    name = "checkpoint-00000003"
    shutil.copytree(tmp_path / "full" / "checkpoints" / name, tmp_path / "part" / "checkpoints" / name)
    resumed = train_vae(VAETrainingArguments(**tiny_train_kwargs(tmp_path / "part", resume_from="latest", **kw)))
    a, b = full.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_flag_of_another_architecture_is_refused(tmp_path, run_cli):
    """--generator-hidden-dims (an mlp width) with dcgan, --base-channels (conv) with mlp: one line, not ignored."""
    proc = run_cli("train", "gan", "--output-dir", str(tmp_path / "o"), "--generator-hidden-dims", "32", "32")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--generator-hidden-dims applies to --architecture mlp, not 'dcgan'" in proc.stderr
    with pytest.raises(
        ValueError, match="--base-channels applies to --architecture conv or resnet or hierarchical, not 'mlp'"
    ):
        VAETrainingArguments(output_dir=str(tmp_path / "o"), architecture="mlp", base_channels=8).validate()
    with pytest.raises(ValueError, match="--activation applies to --architecture mlp, not 'resnet'"):
        GANTrainingArguments(output_dir=str(tmp_path / "o"), architecture="resnet", activation="tanh").validate()
    with pytest.raises(ValueError, match="--num-mixtures applies to --likelihood logistic_mixture, not 'bernoulli'"):
        VAETrainingArguments(output_dir=str(tmp_path / "o"), num_mixtures=3).validate()  # likelihoods likewise
    GANTrainingArguments(output_dir=str(tmp_path / "o"), **tiny_model("gan", architecture="mlp")).validate()
    assert not (tmp_path / "o").exists()


def test_grow_from_copies_a_smaller_dcgans_coarse_layers_and_refuses_others(tmp_path, run_cli):
    """A 32 px conditional DCGAN grown from a trained 16 px one: G's first layers, D's last layers, the class
    embeddings, D's head and the EMA generator's coarse layers start as the smaller model's; the new resolutions'
    layers (G's to-image, D's from-image) keep their initialisation. The trainer grows with --grow-from; incompatible
    sources give one line, before any data is read."""
    dcgan = dict(architecture="dcgan", conditional=True, spectral_norm=True)
    small = train_tiny("gan", tmp_path / "small", image_size=16, generator_channels=16, discriminator_channels=8,
                       max_steps=2, **dcgan)  # fmt: skip
    config = GANConfig(
        **{**small.config.to_dict(), "image_size": 32, "generator_channels": 8, "discriminator_channels": 4}
    )
    grown = GANModel(config)
    fresh_to_image = grown.generator.net[-2].weight.clone()
    fresh_from_image = grown.discriminator.net[0].parametrizations.weight.original.clone()
    # per generator (raw and EMA): embedding 1 + 2 convolutions + 2 BatchNorms x 5; D: 1 convolution x 4 + head 5
    assert grown.grow_from(small) == 2 * (1 + 2 + 2 * 5) + 1 * 4 + 5
    g_small, g_big = small.generator.net, grown.generator.net
    # 16 px: z -> 32@4 -> 16@8 -> image@16; 32 px with width 8: z -> 32@4 -> 16@8 -> 8@16 -> image@32
    for i in (0, 1, 3, 4):  # the two coarse transposed convolutions and their BatchNorms
        assert torch.equal(g_small[i].weight, g_big[i].weight)
    assert torch.equal(g_big[-2].weight, fresh_to_image)
    assert torch.equal(grown.discriminator.net[0].parametrizations.weight.original, fresh_from_image)
    assert torch.equal(small.generator.label_embedding.weight, grown.generator.label_embedding.weight)
    d_small, d_big = small.discriminator, grown.discriminator
    assert torch.equal(d_small.net[-2].parametrizations.weight.original, d_big.net[-2].parametrizations.weight.original)
    assert torch.equal(d_small.head.class_projection.weight, d_big.head.class_projection.weight)
    assert torch.equal(small.generator_ema.net[0].weight, grown.generator_ema.net[0].weight)
    assert not torch.equal(small.generator.net[0].weight, small.generator_ema.net[0].weight)  # EMA from EMA
    train_tiny("gan", tmp_path / "big", image_size=32, generator_channels=8, discriminator_channels=4,
               grow_from=str(tmp_path / "small"), max_steps=1, **dcgan)  # fmt: skip
    assert GANModel.from_pretrained(tmp_path / "big").config.image_size == 32

    GANModel(GANConfig(**{**config.to_dict(), "num_classes": None})).save_pretrained(tmp_path / "unconditional")
    base = ["train", "gan", "--dataset", str(tmp_path / "no-such-dataset"), "--output-dir", str(tmp_path / "o")]
    small_source = ["--grow-from", str(tmp_path / "small"), "--spectral-norm"]
    for flags, needle in (
        ([*small_source, "--image-size", "16", "--conditional"], "Cannot grow a 16 px GAN from a 16 px one"),
        ([*small_source, "--image-size", "32"], "from a model with num_classes=10: expected num_classes=None"),
        ([*small_source, "--conditional", "--architecture", "resnet"], "Cannot grow a GAN with architecture='resnet'"),
        ([*small_source, "--conditional", "--init-from", str(tmp_path / "small")], "--grow-from and --init-from both"),
        ([*small_source, "--image-size", "32", "--conditional", "--generator-channels", "16"],
         "Cannot grow with generator_channels=16 from a model with generator_channels=16: expected --generator-channels 8"),
        ([*small_source, "--image-size", "32", "--conditional", "--generator-channels", "8",
          "--discriminator-channels", "4", "--discriminator", "projected"], "discriminator='projected': expected the dcgan"),
        ([*small_source, "--image-size", "28", "--conditional"], "their networks start at 7 and 4 px"),
        (["--grow-from", str(tmp_path / "nowhere"), "--conditional"], "cannot read its config.json"),
        (["--grow-from", str(tmp_path / "unconditional"), "--conditional"], "is unconditional: drop --conditional"),
    ):  # fmt: skip
        proc = run_cli(*base, *flags)
        assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (
            flags,
            proc.stderr,
        )
    assert not (tmp_path / "o").exists()


def test_a_fade_in_starts_as_the_smaller_model_and_publishes_a_plain_dcgan(tmp_path, run_cli):
    """--fade-in-steps: at alpha 0 the grown 32 px model draws the 16 px model's images upsampled, and its D judges an
    image as the smaller D judges it halved; the trainer raises alpha to 1 over the steps (the checkpoints hold it),
    resumes bit-exactly from the middle of the fade, and publishes the model without the fade-in layers, as
    package_checkpoint does with a checkpoint after the fade (one during it keeps them). Without --grow-from the flag
    is one line."""
    import shutil

    import torch.nn.functional as F

    from hf_dgm.training.publishing import package_checkpoint

    dcgan = dict(architecture="dcgan", conditional=True, spectral_norm=True)
    small = train_tiny("gan", tmp_path / "small", image_size=16, generator_channels=16, discriminator_channels=8,
                       max_steps=2, **dcgan).eval()  # fmt: skip
    sizes = dict(image_size=32, generator_channels=8, discriminator_channels=4, fade_in_steps=4)
    grown = GANModel(GANConfig(**{**small.config.to_dict(), **sizes}))
    grown.grow_from(small)
    grown.eval()
    z, labels, images = torch.randn(4, small.config.latent_dim), torch.arange(4), torch.rand(4, 1, 32, 32) * 2 - 1
    upsampled = F.interpolate(small.generator_ema(z, labels), scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.equal(grown.generator_ema(z, labels), upsampled)
    assert torch.equal(grown.discriminator(images, labels)[0], small.discriminator(F.avg_pool2d(images, 2), labels)[0])
    grown.train()  # after the fade, in training, every parameter still takes part (as DDP expects)
    for network in (grown.generator, grown.discriminator):
        network.fade.alpha.fill_(1.0)
    grown.discriminator(grown.generator(z, labels), labels)[0].sum().backward()
    assert all(p.grad is not None for n in (grown.generator, grown.discriminator) for p in n.parameters())

    run = dict(
        grow_from=str(tmp_path / "small"), keep_checkpoints=0, checkpoint_every=2, sample_every=2, **sizes, **dcgan
    )
    assert_resumes_exactly("gan", tmp_path, stop_at=2, **run)
    checkpoints = tmp_path / "full" / "checkpoints"
    saved = {s: load_file(checkpoints / f"checkpoint-{s:08d}" / "model" / "model.safetensors") for s in (2, 4, 6)}
    assert [saved[s][f"{net}.fade.alpha"].item() for s in (2, 4, 6) for net in ("generator", "discriminator")] == [
        0.5, 0.5, 1.0, 1.0, 1.0, 1.0
    ]  # fmt: skip
    final = load_file(tmp_path / "full" / "model.safetensors")
    assert final.keys() == {k for k in saved[6] if ".fade." not in k}
    assert all(torch.equal(final[k], saved[6][k]) for k in final)
    assert GANConfig.from_pretrained(tmp_path / "full").fade_in_steps == 0
    after, during = (package_checkpoint(tmp_path / "full", s, tmp_path / f"packaged-{s}") for s in (4, 2))
    assert load_file(after / "model.safetensors").keys() == final.keys()  # at step 4, alpha is 1
    assert load_file(during / "model.safetensors").keys() == saved[2].keys()
    assert GANModel.from_pretrained(during).config.fade_in_steps == 4
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
    proc = run_cli(
        "train", "gan", "--dataset", tmp_path / "nowhere", "--output-dir", tmp_path / "o", "--fade-in-steps", "4"
    )
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        "--fade-in-steps 4 fades in the layers a grown model adds: it needs --grow-from."
    )
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_a_checkpoint_is_packaged_as_the_model_folder_of_its_step(tmp_path):
    """publishing.package_checkpoint: checkpoint 3 of a 6-step run (and of the same run stopped before step 6) becomes a
    model folder with that checkpoint's weights (not the final ones), the loop's grid of that step, the run's record
    with that step's steps and training time, and a card that says where it comes from; an eval_results.json left in
    the folder goes (it measured other weights). A missing step is one line naming the steps there are."""
    import shutil

    from hf_dgm.training.publishing import package_checkpoint

    run = tmp_path / "run"
    final = train_tiny("gan", run, keep_checkpoints=0, **TINY_GAN)
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "eval_results.json").write_text("{}")
    folder = package_checkpoint(run, 3, tmp_path / "zoo")
    checkpoint = run / "checkpoints" / "checkpoint-00000003"
    packaged, saved = load_file(folder / "model.safetensors"), load_file(checkpoint / "model" / "model.safetensors")
    assert packaged.keys() == saved.keys() and all(torch.equal(packaged[k], saved[k]) for k in saved)
    assert not all(torch.equal(packaged[k], v) for k, v in final.state_dict().items())
    model = GANModel.from_pretrained(folder)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    assert (folder / "samples.png").read_bytes() == (run / "samples" / "step_00000003.png").read_bytes()
    record, state = (json.loads(p.read_text()) for p in (folder / "training_args.json", checkpoint / "state.json"))
    assert (record["steps"], record["run_steps"], record["max_steps"]) == (3, 6, 6)
    assert (  # both records keep 0.1 s: three tiny steps can take less, so the whole run's may round to the same
        record["training_time_s"]
        == round(state["training_time_s"], 1)
        <= json.loads((run / "training_args.json").read_text())["training_time_s"]
    )
    assert not str(record["output_dir"]).startswith("/") and not (folder / "eval_results.json").exists()
    card = (folder / "README.md").read_text()
    assert "# zoo" in card and "These are the weights of step 3, a checkpoint of a run of 6 steps." in card
    assert "| steps | 3 |" in card
    # stopped between steps 3 and 6: the record the run wrote at its start, no final folder, no checkpoint 6
    stopped = tmp_path / "stopped"
    shutil.copytree(run / "checkpoints" / "checkpoint-00000003", stopped / "checkpoints" / "checkpoint-00000003")
    shutil.copytree(run / "samples", stopped / "samples")
    end_fields = ("steps", "training_time_s", "skipped_steps")  # what publish_run adds to the start record
    start = {k: v for k, v in json.loads((run / "training_args.json").read_text()).items() if k not in end_fields}
    assert start["hardware"]  # the start record says where the run trained
    (stopped / "training_args.json").write_text(json.dumps(start))
    folder = package_checkpoint(stopped, 3, tmp_path / "from-stopped")
    assert load_file(folder / "model.safetensors").keys() == saved.keys()
    packaged = json.loads((folder / "training_args.json").read_text())
    assert packaged["run_steps"] == 3 and packaged["hardware"] == start["hardware"]
    assert "a checkpoint of a run stopped after 3 of its 6 steps." in (folder / "README.md").read_text()
    with pytest.raises(FileNotFoundError) as missing:
        package_checkpoint(run, 5, tmp_path / "other")
    assert str(missing.value).endswith("has no checkpoint of step 5; it has checkpoints of steps: 3, 6.")
    assert not (tmp_path / "other").exists()  # nothing written
