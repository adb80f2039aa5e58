"""The hierarchical VAE (``architecture="hierarchical"``, issue #25): tiny models at 28 px grey and 64 px colour."""

import json
import os
import textwrap

import pytest
import torch
from conftest import MNIST, assert_resumes_exactly, run_python, tiny_train_kwargs
from safetensors.torch import save_file

from hf_dgm import VAEConfig, VAEModel, VAEPipeline
from hf_dgm.evaluation.likelihood import kl_per_group, latent_kl_metrics
from hf_dgm.remote_code import export_code
from hf_dgm.training.vae import VAETrainingArguments

EMOJI = os.path.join(os.path.dirname(MNIST), "emoji")

# 28 px grey: groups at 7 and 14 (245 positions), 2 channels each. 64 px colour: five groups, two at 8 px (1424
# positions), 1 channel each, conditional on 9 classes. 32 px colour with a 3x3 pixel context: three groups (336
# positions), 1 channel each; it decodes pixel by pixel (ONE_PASS: the others).
TINY = {
    "grey-28": dict(image_size=28, num_channels=1, likelihood="bernoulli", latent_dim=490, base_channels=2),
    "colour-64": dict(
        image_size=64, num_channels=3, likelihood="logistic_mixture", num_mixtures=2, latent_dim=1424,
        latent_groups=[4, 8, 8, 16, 32], base_channels=1, num_classes=9,
    ),
    "colour-32-context": dict(
        image_size=32, num_channels=3, likelihood="logistic_mixture", num_mixtures=2, latent_dim=336,
        latent_groups=[4, 8, 16], base_channels=1, pixel_context=3, pixel_context_channels=8,
    ),
}  # fmt: skip
ONE_PASS = [name for name, fields in TINY.items() if not fields.get("pixel_context")]


def tiny_hvae(name: str, seed: int = 0) -> VAEModel:
    """A tiny hierarchical VAE whose posterior corrections (zero when new) are switched on, so KLs are not all 0."""
    torch.manual_seed(seed)
    model = VAEModel(VAEConfig(architecture="hierarchical", **TINY[name]))
    with torch.no_grad():
        for group in model.decoder.groups:
            group.posterior[-1].weight.normal_(std=0.3)
        if model.decoder.pixel_context is not None:  # switched on too: a new one starts as the decoder without it
            model.decoder.pixel_context.mix[-1].weight.normal_(std=0.3)
    return model


def images_and_labels(model: VAEModel, n: int = 4):
    cfg = model.config
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, cfg.num_channels, cfg.image_size, cfg.image_size, generator=g)
    x = x.round() if cfg.likelihood == "bernoulli" else x.mul(255).round().div(255)
    return x, (torch.arange(n) % cfg.num_classes if cfg.num_classes else None)


@pytest.mark.parametrize("name", TINY)
def test_elbo_parts_add_up_and_each_group_kl_is_non_negative(name):
    model = tiny_hvae(name)
    x, labels = images_and_labels(model)
    out = model(x, generator=torch.Generator().manual_seed(0), class_labels=labels)
    groups = len(model.decoder.groups)
    assert out.kl_per_group.shape == (4, groups)
    assert (out.kl_per_group >= 0).all() and (out.kl_per_group > 0.1).all()
    assert torch.allclose(out.kl_loss, out.kl_per_group.sum(1).mean())
    assert torch.allclose(out.loss, out.reconstruction_loss + out.kl_loss)
    # the reconstruction term is the likelihood of the images under the same posterior draw
    noise = torch.randn((4, model.config.latent_dim), generator=torch.Generator().manual_seed(0))
    logits, result = model.posterior_pass(x, labels, noise)
    assert torch.allclose(out.reconstruction_loss, model.reconstruction_nll(logits, x).mean())
    assert torch.equal(result.kl, out.kl_per_group)
    # the encoder's posterior (its mean path) carries the same KL as the groups along that path
    posterior = model.encode(x, class_labels=labels).latent_dist
    mean_path = model(x, class_labels=labels, sample_posterior=False).kl_per_group
    assert torch.allclose(posterior.kl(), mean_path.sum(1), rtol=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_log_weights_average_to_the_elbo_and_the_iwae_bound_is_tighter(name):
    """E_q[log p(z) - log q(z | x)] is -KL, group by group: the sampled log-ratio averages to the closed form. The
    IWAE bound (log of the mean weight) is at least the mean log weight (the ELBO) for the same draws."""
    model = tiny_hvae(name)
    x, labels = images_and_labels(model, n=2)
    k = 128
    noise = torch.randn((k * 2, model.config.latent_dim), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, result = model.posterior_pass(x, labels, noise, num_samples=k)
    kl = result.kl.sum(1).view(k, 2)
    sampled = -result.log_ratio.view(k, 2)
    standard_error = (sampled - kl).std(0) / k**0.5
    assert ((sampled - kl).mean(0).abs() < 4 * standard_error).all(), (sampled.mean(0), kl.mean(0), standard_error)
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 64, torch.Generator().manual_seed(2), labels)
    iwae = torch.logsumexp(log_w, 0) - torch.log(torch.tensor(64.0))
    assert log_w.shape == (64, 2) and (iwae >= log_w.mean(0)).all()
    assert (iwae > log_w.mean(0) + 0.01).all()  # strictly: the weights vary


def test_iwae_decodes_within_the_activation_budget(monkeypatch):
    """The bound's calls stay within HF_DGM_MAX_ACTIVATIONS (vae-mnist decoded 100 images x 500 samples at once:
    over 21 GB): the budget only lowers the samples per call, the numbers are those of asking for that chunk."""
    from hf_dgm import modeling_utils
    from hf_dgm.evaluation.likelihood import iwae_log_likelihood
    from hf_dgm.modeling_utils import activation_elements

    model = tiny_hvae("grey-28").eval()
    x, _ = images_and_labels(model, n=4)
    asked = iwae_log_likelihood(model, x, k=12, batch_size=2, chunk=2, seed=0, progress=False)
    with torch.device("meta"):
        per_image = activation_elements(VAEModel(model.config).sampling_network, model.config)
    monkeypatch.setattr(modeling_utils, "MAX_ACTIVATIONS", 5 * per_image)  # two images x two samples per call
    decoded, call = [], model.log_importance_weights
    monkeypatch.setattr(model, "log_importance_weights", lambda x, s, *a: decoded.append(len(x) * s) or call(x, s, *a))
    bounded = iwae_log_likelihood(model, x, k=12, batch_size=2, seed=0, progress=False)  # chunk: 500 asked
    assert decoded == [4] * 12, decoded  # 2 batches x 6 calls
    torch.testing.assert_close(bounded, asked)
    decoded.clear()
    iwae_log_likelihood(model, x[:1], k=12, seed=0, progress=False)  # one image, a batch of 100 asked
    assert decoded == [5, 5, 2], decoded  # the five samples a call may decode (one per call before)


@pytest.mark.parametrize("name", ONE_PASS)
def test_sampling_is_seeded_and_scaled_by_the_temperature(name):
    model = tiny_hvae(name)
    labels = [0, 1, 2] if model.config.num_classes else None
    a = model.generate(3, generator=torch.Generator().manual_seed(3), class_labels=labels).sample
    b = model.generate(3, generator=torch.Generator().manual_seed(3), class_labels=labels).sample
    cold = model.generate(3, generator=torch.Generator().manual_seed(3), class_labels=labels, temperature=0.5).sample
    assert torch.equal(a, b) and not torch.equal(a, cold)
    assert a.shape == (3, model.config.num_channels, model.config.image_size, model.config.image_size)
    # a temperature scales the groups' prior-standardised noise: the same as decoding the scaled latents
    z = torch.randn((3, model.config.latent_dim), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(model.generate(latents=0.5 * z, class_labels=labels).sample, cold)
    # or one temperature per group, coarse to fine
    groups = len(model.decoder.groups)
    same = model.generate(
        3, generator=torch.Generator().manual_seed(3), class_labels=labels, temperature=[0.5] * groups
    )
    assert torch.equal(same.sample, cold)
    per_group = [1.0] * (groups - 1) + [0.0001]
    fine_cold = model.generate(
        3, generator=torch.Generator().manual_seed(3), class_labels=labels, temperature=per_group
    )
    parts = model.decoder.split(z)
    parts[-1] = parts[-1] * 0.0001
    scaled = torch.cat([p.flatten(1) for p in parts], 1)
    assert torch.allclose(model.generate(latents=scaled, class_labels=labels).sample, fine_cold.sample)
    with pytest.raises(
        ValueError, match=rf"has {groups + 1} values: expected one number, or one per latent group \({groups},"
    ):
        model.generate(3, class_labels=labels, temperature=[1.0] * (groups + 1))
    # the encoder's mode decodes to the posterior mean path's reconstruction
    x, y = images_and_labels(model, n=3)
    mode = model.encode(x, class_labels=y).latent_dist.mode()
    mean_path = model(x, class_labels=y, sample_posterior=False).sample
    assert torch.allclose(model.decode(mode, class_labels=y).sample, mean_path, atol=1e-5)


def test_a_pixel_context_decodes_pixel_by_pixel_what_the_one_pass_likelihood_scores():
    """With a pixel context, sampling draws each pixel given those before it: the parameters it drew from are the
    ones the likelihood (one pass over the finished image, as in training) gives; seeded; the temperature counts."""
    model = tiny_hvae("colour-32-context").eval()
    latents = torch.randn((2, model.config.latent_dim), generator=torch.Generator().manual_seed(3))
    out = model.decode(latents, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        one_pass = model.decoder.pixel_context(model.decoder(latents), out.sample)
    assert torch.allclose(out.logits, one_pass, atol=1e-5)
    assert torch.equal(out.sample * 255, (out.sample * 255).round())  # 8-bit levels
    a, b, cold = (
        model.generate(2, generator=torch.Generator().manual_seed(3), temperature=t).sample for t in (1.0, 1.0, 0.3)
    )
    assert torch.equal(a, b) and not torch.equal(a, cold)


def test_encoding_with_a_pixel_context_does_not_run_the_context():
    """encode() wants q(z | x) only: the context, which only shapes the likelihood, is not run, and the posterior is
    the one the full pass (context included) draws along."""
    model = tiny_hvae("colour-32-context").eval()
    x, _ = images_and_labels(model)
    with torch.no_grad():
        _, result = model.posterior_pass(x, None, torch.zeros(x.shape[0], model.config.latent_dim))
        calls = []
        hook = model.decoder.pixel_context.register_forward_hook(lambda *_: calls.append(1))
        posterior = model.encode(x).latent_dist
        hook.remove()
    assert not calls
    assert torch.allclose(posterior.mode(), result.eps_mean)


@pytest.mark.parametrize("name", TINY)
def test_save_load_round_trip_and_fast_path_equals_pipeline(tmp_path, name):
    from hf_dgm.sampling import load_sampling_network, sample_images

    model = tiny_hvae(name)
    model.save_pretrained(tmp_path)
    loaded = VAEModel.from_pretrained(tmp_path)
    assert loaded.config.latent_groups == model.config.latent_groups
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    x, labels = images_and_labels(model)
    losses = [m(x, torch.Generator().manual_seed(0), class_labels=labels).loss for m in (model, loaded)]
    assert torch.equal(*losses)
    cfg, family, net = load_sampling_network(tmp_path)  # `hf-dgm sample`: the decoder only, without transformers
    labels = [0, 8, 3, 1] if cfg.num_classes else None
    fast = sample_images(cfg, family, net, 4, seed=5, class_labels=labels, temperature=0.7)
    pipe = VAEPipeline(vae=loaded)
    images = pipe(4, torch.Generator().manual_seed(5), class_labels=labels, temperature=0.7, output_type="np").images
    assert torch.equal(torch.from_numpy(fast), torch.from_numpy((images * 255).round().astype("uint8")))


TRAIN = {
    "grey-28": dict(dataset=MNIST, free_bits=0.5, kl_warmup_steps=3),
    "colour-64": dict(dataset=EMOJI, max_samples=64, conditional=True, holdout_fraction=0.25, iwae_samples=2),
    "colour-32-context": dict(dataset=EMOJI, max_samples=32, holdout_fraction=0.25),
}


@pytest.mark.parametrize("name", TINY)
def test_training_resumes_bit_exactly_with_clipping_and_skipping(tmp_path, name):
    model_flags = {k: v for k, v in TINY[name].items() if k != "num_classes"}
    kw = dict(
        architecture="hierarchical", max_steps=6, checkpoint_every=3, batch_size=8, grad_clip=1e4,
        skip_grad_norm=2e4, **model_flags, **TRAIN[name],
    )  # fmt: skip
    full = assert_resumes_exactly("vae", tmp_path, 3, **kw)
    logged = [json.loads(line) for line in (tmp_path / "full" / "logs" / "metrics.jsonl").read_text().splitlines()]
    if name == "grey-28":  # the ELBO's KL, group by group, in bits
        groups = [logged[-1][f"kl_bits_group_{g}"] for g in range(2)]
        assert all(v >= 0 for v in groups) and sum(groups) == pytest.approx(logged[-1]["kl_loss"] / 0.693147, 1e-4)
    assert ("iwae_bound" in logged[-1]) == ("iwae_samples" in TRAIN[name])
    assert full.config.architecture == "hierarchical"


def test_a_gradient_norm_above_the_threshold_skips_the_update(tmp_path):
    from hf_dgm.training.vae import VAETrainer

    kw = dict(architecture="hierarchical", max_steps=3, skip_grad_norm=1e-6, **TINY["grey-28"], dataset=MNIST)
    trainer = VAETrainer(VAETrainingArguments(**tiny_train_kwargs(tmp_path, **kw)))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trained = trainer.train()
    assert trainer.num_skipped == 3
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in start.items())


def test_a_run_whose_updates_are_all_skipped_stops(tmp_path, monkeypatch):
    """Every update over --skip-grad-norm: after MAX_CONSECUTIVE_SKIPS in a row the run stops with one line, instead
    of running its remaining steps with frozen weights."""
    from hf_dgm.training import base
    from hf_dgm.training.vae import VAETrainer

    monkeypatch.setattr(base, "MAX_CONSECUTIVE_SKIPS", 4)
    kw = dict(architecture="hierarchical", max_steps=10, skip_grad_norm=1e-6, **TINY["grey-28"], dataset=MNIST)
    args = tiny_train_kwargs(tmp_path, **kw)
    with pytest.raises(base.NonFiniteLossError, match=r"Steps 1 to 4: all 4 updates were skipped"):
        VAETrainer(VAETrainingArguments(**args)).train()


def test_clipped_updates_are_taken_and_the_norm_before_clipping_is_logged(tmp_path):
    from hf_dgm.training.vae import VAETrainer

    kw = dict(architecture="hierarchical", max_steps=2, log_every=1, grad_clip=1e-3, **TINY["grey-28"], dataset=MNIST)
    trainer = VAETrainer(VAETrainingArguments(**tiny_train_kwargs(tmp_path, **kw)))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trained = trainer.train()
    assert trainer.num_skipped == 0
    assert not all(torch.equal(v, trained.state_dict()[k]) for k, v in start.items())
    logged = [json.loads(line) for line in (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert all(entry["grad_norm"] > 1.0 for entry in logged)


def test_evaluation_reports_the_kl_of_each_group_in_bits():
    model = tiny_hvae("colour-64")
    x, labels = images_and_labels(model, n=5)
    metrics = latent_kl_metrics(model, x, labels, seed=0)
    names = [m["name"] for m in metrics]
    assert names[0] == "KL of latent group 0 (4x4x1; 5 images) bits" and "(32x32x1; 5 images)" in names[4]
    assert names[-1] == "KL of the latent, all groups (5 images) bits" and len(metrics) == 6
    assert metrics[-1]["value"] == pytest.approx(sum(m["value"] for m in metrics[:-1]), abs=0.3)
    kl = kl_per_group(model, x, labels, batch_size=2, seed=0)  # batches do not change the draws per image
    assert torch.allclose(kl.float().mean(0) / 0.6931472, torch.tensor([m["value"] for m in metrics[:-1]]), atol=0.06)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(latent_dim=100), "latent_dim=100 is invalid for the hierarchical architecture with latent groups at [7, 14]"),
        (dict(latent_groups=[14, 7]), "latent_groups=[14, 7] is invalid for image_size=28"),
        (dict(latent_groups=[5]), "expected a non-empty list of resolutions"),
        (dict(cells_per_resolution=0), "cells_per_resolution=0 is invalid"),
        (dict(pixel_context=3), "pixel_context=3 needs likelihood='logistic_mixture', not 'bernoulli'"),
    ],
)  # fmt: skip
def test_bad_config_fields_get_one_clear_line(overrides, message):
    with pytest.raises(ValueError, match=None) as err:
        VAEConfig(architecture="hierarchical", **{**TINY["grey-28"], **overrides})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_one_temperature_per_group_is_refused_by_a_single_latent_vae():
    model = VAEModel(VAEConfig(architecture="conv", latent_dim=4, base_channels=4, hidden_dim=16))
    with pytest.raises(ValueError, match="one per latent group needs architecture='hierarchical'"):
        VAEPipeline(vae=model)(2, temperature=[1.0, 0.5])


def generates_alike_without_hf_dgm(tmp_path, model: VAEModel, arguments: str, more: str = "") -> list[str]:
    """Export `model` and load it with AutoModel(trust_remote_code=True) in an interpreter where hf_dgm is not
    importable: generate(4, seeded, `arguments`) there gives the images it gives here; `more` (code) runs after it,
    with `model` and `torch` at hand. Returns what that interpreter printed, split."""
    expected = model.generate(4, generator=torch.Generator().manual_seed(0), **eval(f"dict({arguments})")).sample
    model.save_pretrained(tmp_path / "model")
    export_code(tmp_path / "model")
    save_file({"expected": expected.contiguous()}, str(tmp_path / "expected.safetensors"))
    code = textwrap.dedent(f"""
        import sys
        sys.modules["hf_dgm"] = None  # hf_dgm is not importable in this interpreter
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel
        model = AutoModel.from_pretrained("model", trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        out = model.generate(4, generator=torch.Generator().manual_seed(0), {arguments}).sample
        expected = load_file("expected.safetensors")["expected"]
        assert torch.allclose(out, expected, rtol=0, atol=1e-5), f"outputs differ by {{(out - expected).abs().max()}}"
    """) + textwrap.dedent(more)
    proc = run_python(code, cwd=tmp_path, env={"HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split()


def test_trust_remote_code_without_hf_dgm(tmp_path):
    more = """
        x = torch.rand(2, 3, 64, 64).mul(255).round().div(255)
        print("ok", type(model).__name__, tuple(model(x, class_labels=[0, 1]).kl_per_group.shape))
    """
    printed = generates_alike_without_hf_dgm(tmp_path, tiny_hvae("colour-64"), "class_labels=[0, 1, 2, 3]", more)
    assert printed == ["ok", "VAEModel", "(2,", "5)"]
