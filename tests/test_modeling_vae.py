import itertools
import json
import math

import pytest
import torch
from conftest import labels_for, nudge_and_reload, tiny_vae_kwargs

from hf_dgm import VAEConfig, VAEModel
from hf_dgm.vae.networks_vae import ARCHITECTURES, GAUSSIAN_VARIANCES, LIKELIHOODS, output_channels

# every likelihood, the Gaussian with each variance
LIKELIHOOD_VARIANTS = [
    (name, variance)
    for name, entry in LIKELIHOODS.items()
    for variance in (GAUSSIAN_VARIANCES if "gaussian_variance" in entry.fields else ("learned",))
]
VARIANTS = list(itertools.product(sorted(ARCHITECTURES), LIKELIHOOD_VARIANTS, [None, 10]))
# an architecture whose latent is not a flat vector of any size: a tiny latent it accepts
ARCHITECTURE_KWARGS = {"hierarchical": dict(latent_groups=[7], latent_dim=49)}


def make(seed=0, **overrides):
    torch.manual_seed(seed)
    return VAEModel(VAEConfig(**tiny_vae_kwargs(**overrides)))


@pytest.mark.parametrize("arch,likelihood,num_classes", VARIANTS)
def test_shapes_every_variant(arch, likelihood, num_classes):
    lik, var = likelihood
    kwargs = ARCHITECTURE_KWARGS.get(arch, {})
    model = make(architecture=arch, likelihood=lik, gaussian_variance=var, num_classes=num_classes, **kwargs)
    x = torch.rand(5, 1, 28, 28)
    labels = labels_for(model, 5)
    posterior = model.encode(x, class_labels=labels).latent_dist
    latent = (5, model.config.latent_dim)
    assert posterior.mean.shape == latent and posterior.std.shape == latent
    assert posterior.sample(torch.Generator().manual_seed(0)).shape == latent
    assert posterior.kl().shape == (5,) and (posterior.kl() >= 0).all()
    dec = model.decode(posterior.mode(), class_labels=labels)
    assert dec.sample.shape == (5, 1, 28, 28)
    assert dec.logits.shape == (5, output_channels(model.config), 28, 28)
    assert dec.sample.min() >= 0 and dec.sample.max() <= 1
    out = model(x, class_labels=labels, generator=torch.Generator().manual_seed(0))
    assert out.loss.shape == () and torch.isfinite(out.loss)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.kl_loss)
    assert out.sample.shape == (5, 1, 28, 28)
    gen = model.generate(3, generator=torch.Generator().manual_seed(0), class_labels=labels_for(model, 3)).sample
    assert gen.shape == (3, 1, 28, 28)


@pytest.mark.parametrize("image_size,num_channels", [(28, 1), (32, 3), (64, 1)])
def test_conv_image_sizes(image_size, num_channels):
    model = make(image_size=image_size, num_channels=num_channels)
    out = model(torch.rand(2, num_channels, image_size, image_size))
    assert out.sample.shape == (2, num_channels, image_size, image_size)


def test_article_mlp_widths():
    model = VAEModel(VAEConfig(architecture="mlp", latent_dim=8))
    enc = [m for m in model.encoder.net if isinstance(m, torch.nn.Linear)]
    dec = [m for m in model.decoder.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in enc] == [(784, 128), (128, 64)]
    assert (model.encoder.mean.in_features, model.encoder.mean.out_features) == (64, 8)
    assert [(m.in_features, m.out_features) for m in dec] == [(8, 64), (64, 128), (128, 784)]
    assert isinstance(model.encoder.net[1], torch.nn.LeakyReLU)


def test_loss_is_negative_elbo_with_correct_sign():
    """loss = sum-over-pixels BCE + KL, averaged over the batch (the article subtracted the KL)."""
    model = make()
    x = (torch.rand(4, 1, 28, 28) > 0.5).float()
    out = model(x, generator=torch.Generator().manual_seed(1))
    posterior = model.encode(x).latent_dist
    z = posterior.sample(torch.Generator().manual_seed(1))
    logits = model.decode(z).logits
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 4
    kl = (0.5 * (posterior.mean**2 + posterior.std**2 - 1 - 2 * posterior.std.log())).sum() / 4
    torch.testing.assert_close(out.reconstruction_loss, bce)
    torch.testing.assert_close(out.kl_loss, kl, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.loss, bce + kl, rtol=1e-4, atol=1e-4)
    assert out.kl_loss > 0


def test_gaussian_nll_matches_torch_distributions():
    model = make(likelihood="gaussian", gaussian_variance="fixed", gaussian_fixed_std=0.3)
    logits = torch.randn(2, 1, 28, 28)
    x = torch.rand(2, 1, 28, 28)
    ref = -torch.distributions.Normal(torch.sigmoid(logits), 0.3).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(model.reconstruction_nll(logits, x), ref)
    learned = make(likelihood="gaussian", gaussian_variance="learned")
    with torch.no_grad():
        learned.log_scale.fill_(math.log(0.5))
    ref = -torch.distributions.Normal(torch.sigmoid(logits), 0.5).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(learned.reconstruction_nll(logits, x), ref)


def test_posterior_log_prob_matches_torch():
    model = make()
    posterior = model.encode(torch.rand(3, 1, 28, 28)).latent_dist
    z = posterior.sample(torch.Generator().manual_seed(0))
    ref = torch.distributions.Normal(posterior.mean, posterior.std).log_prob(z).sum(-1)
    torch.testing.assert_close(posterior.log_prob(z), ref)


def test_seeded_determinism(tiny_vae):
    x = torch.rand(3, 1, 28, 28)
    a = tiny_vae(x, generator=torch.Generator().manual_seed(0))
    b = tiny_vae(x, generator=torch.Generator().manual_seed(0))
    c = tiny_vae(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.loss, b.loss) and not torch.equal(a.loss, c.loss)
    g1 = tiny_vae.generate(4, generator=torch.Generator().manual_seed(2)).sample
    g2 = tiny_vae.generate(4, generator=torch.Generator().manual_seed(2)).sample
    assert torch.equal(g1, g2)


def test_tuple_equals_dataclass(tiny_vae):
    x = torch.rand(3, 1, 28, 28)
    out = tiny_vae(x, generator=torch.Generator().manual_seed(0))
    tup = tiny_vae(x, generator=torch.Generator().manual_seed(0), return_dict=False)
    for a, b in zip(out.to_tuple()[:4], tup[:4]):
        assert torch.equal(a, b)
    assert torch.equal(out.latent_dist.mean, tup[4].mean)
    z = torch.randn(2, 4)
    assert torch.equal(tiny_vae.decode(z).sample, tiny_vae.decode(z, return_dict=False)[0])
    assert torch.equal(tiny_vae.encode(x).latent_dist.mean, tiny_vae.encode(x, return_dict=False)[0].mean)


@pytest.mark.parametrize(
    "overrides",
    [{}, {"architecture": "mlp", "num_classes": 10}, {"likelihood": "gaussian", "gaussian_variance": "learned"}],
)
def test_save_load_round_trip_bit_exact(tmp_path, overrides):
    model = make(**overrides)
    loaded = nudge_and_reload(model, tmp_path)
    x = torch.rand(2, 1, 28, 28)
    labels = labels_for(model, 2)
    a = model(x, class_labels=labels, generator=torch.Generator().manual_seed(0))
    b = loaded(x, class_labels=labels, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.loss, b.loss) and torch.equal(a.sample, b.sample)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_one_optimizer_step_no_nan(arch):
    model = make(architecture=arch, **ARCHITECTURE_KWARGS.get(arch, {}))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(4, 1, 28, 28)
    loss = model(x, generator=torch.Generator().manual_seed(0)).loss
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and all(torch.isfinite(p).all() for p in model.parameters())
    assert model(x, generator=torch.Generator().manual_seed(0)).loss != loss


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"latent_dim": 0}, "latent_dim=0"),
        ({"image_size": 30}, "image_size=30"),
        ({"num_channels": 4}, "num_channels=4"),
        ({"architecture": "transformer"}, "architecture='transformer'"),
        ({"likelihood": "poisson"}, "likelihood='poisson'"),
        ({"gaussian_variance": "per-pixel"}, "gaussian_variance='per-pixel'"),
        ({"gaussian_fixed_std": 0.0}, "gaussian_fixed_std=0.0"),
        ({"num_classes": 0}, "num_classes=0"),
        ({"activation": "swish"}, "activation='swish'"),
        ({"likelihood": "logistic_mixture", "pixel_context": 4}, "pixel_context=4 is invalid"),
        ({"likelihood": "logistic_mixture", "pixel_context": 1}, "pixel_context=1 is invalid"),
        ({"likelihood": "logistic_mixture", "pixel_context": True}, "pixel_context=True is invalid"),
        ({"likelihood": "logistic_mixture", "pixel_context": "3"}, "pixel_context='3' is invalid"),
        ({"likelihood": "discretized_logistic", "pixel_context": 3}, "pixel_context=3 needs likelihood='logistic_m"),
        ({"likelihood": "logistic_mixture", "pixel_context": 3, "pixel_context_channels": 0}, "channels=0"),
    ],
)
def test_invalid_config_values(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        VAEConfig(**tiny_vae_kwargs(**overrides))


def test_bad_tensors(tiny_vae):
    with pytest.raises(ValueError, match=r"pixel_values have shape \(2, 3, 28, 28\)"):
        tiny_vae(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"pixel_values have shape \(2, 1, 32, 32\)"):
        tiny_vae.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="floating-point"):
        tiny_vae(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"span \[-1, 1\]"):
        tiny_vae(torch.linspace(-1, 1, 2 * 28 * 28).view(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"latents have shape \(2, 3\)"):
        tiny_vae.decode(torch.randn(2, 3))
    cond = make(num_classes=10)
    with pytest.raises(ValueError, match="class-conditional"):
        cond(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="class label 12 is out of range"):
        cond.decode(torch.randn(2, 4), class_labels=[1, 12])


def test_load_weights_that_do_not_match_config(tmp_path, tiny_vae):
    tiny_vae.save_pretrained(tmp_path / "vae")
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    cfg.update(likelihood="gaussian", gaussian_variance="learned")  # expects a log_scale the file lacks
    (tmp_path / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="missing: log_scale"):
        VAEModel.from_pretrained(tmp_path / "vae")


def test_discretized_logistic_is_a_distribution_over_the_256_levels():
    """Summed over every 8-bit level, the probabilities are 1 (to 1e-5), wherever the location and scale are."""
    from hf_dgm.vae.networks_vae import bits_per_dim, discretized_logistic_nll

    levels = (torch.arange(256, dtype=torch.float64) / 255).view(256, 1, 1, 1)
    for mean, log_scale in ((0.0, -2.0), (0.7, -4.0), (-1.0, -1.0), (0.3, -6.9), (1.2, -3.0)):
        output = torch.tensor([mean, log_scale], dtype=torch.float64).view(1, 2, 1, 1).expand(256, 2, 1, 1)
        total = torch.exp(-discretized_logistic_nll(output, levels)).sum().item()
        assert total == pytest.approx(1.0, abs=1e-5), (mean, log_scale, total)
    model = make(likelihood="discretized_logistic", num_channels=3, image_size=32)
    x = torch.randint(0, 256, (2, 3, 32, 32)).float() / 255
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.sample.shape == (2, 3, 32, 32) and 0 <= out.sample.min() and out.sample.max() <= 1
    assert bits_per_dim(out.reconstruction_loss, model.config) > 0  # a discrete NLL is never negative


def test_logistic_mixture_is_a_distribution_over_the_colours_of_a_pixel_and_its_mean_is_their_expectation():
    """Two colour channels (the second coupled to the first), three components: the probabilities of all 256 x 256
    colours sum to 1, and the decoded image is their expected colour."""
    from types import SimpleNamespace

    from hf_dgm.vae.networks_vae import decoder_mean, logistic_mixture_nll, output_channels

    cfg = SimpleNamespace(likelihood="logistic_mixture", num_channels=2, num_mixtures=3)
    assert output_channels(cfg) == 3 * (1 + 2 * 2 + 1)
    output = torch.randn(1, output_channels(cfg), 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    output[:, 3:].view(3, 5)[:, :2] *= 0.5  # locations well inside [-1, 1], so the edge bins hold little mass
    output[:, 3:].view(3, 5)[:, 2:4] = -3.0  # log-scales (then a coupling per component)
    levels = torch.arange(256, dtype=torch.float64) / 255
    colours = torch.cartesian_prod(levels, levels).view(-1, 2, 1, 1)  # every (first, second) channel pair
    probs = torch.exp(-logistic_mixture_nll(output.expand(len(colours), -1, -1, -1), colours, 3))
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    expected = (probs.view(-1, 1) * colours.view(-1, 2)).sum(0)
    torch.testing.assert_close(decoder_mean(cfg, output).view(2), expected, atol=2e-3, rtol=0)


def test_drawing_from_the_logistic_mixture_follows_its_probabilities():
    """400k draws of a two-channel pixel (the second coupled to the first) from three components: their colours'
    frequencies are the mixture's probabilities within sampling noise (total variation 0.5 sum |f - p| about 0.06
    over its ~2,600 likely colours; 0.03 at 1.6M draws), while draws that ignore the coupling are far off."""
    from hf_dgm.vae.networks_vae import logistic_mixture_nll, sample_logistic_mixture

    output = torch.randn(1, 18, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    output[:, 3:].view(3, 5)[:, :2] *= 0.5
    output[:, 3:].view(3, 5)[:, 2:4] = -3.0
    levels = torch.arange(256, dtype=torch.float64) / 255
    colours = torch.cartesian_prod(levels, levels).view(-1, 2, 1, 1)
    probs = torch.exp(-logistic_mixture_nll(output.expand(len(colours), -1, -1, -1), colours, 3))
    noise = torch.rand(400_000, 3, 1, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def total_variation(parameters):
        drawn = sample_logistic_mixture(parameters.expand(len(noise), -1, -1, -1), 2, 3, noise)  # in [-1, 1]
        index = ((drawn + 1) * 127.5).round().long().view(-1, 2)
        frequencies = torch.bincount(index[:, 0] * 256 + index[:, 1], minlength=256 * 256).double() / len(noise)
        return 0.5 * (frequencies - probs).abs().sum().item()

    assert total_variation(output) < 0.08
    uncoupled = output.clone()
    uncoupled[:, 3:].view(3, 5)[:, 4] = 0.0
    assert total_variation(uncoupled) > 0.2


def test_logistic_mixture_vae_reports_bits_per_dim():
    from hf_dgm.vae.networks_vae import bits_per_dim

    model = make(likelihood="logistic_mixture", num_mixtures=4, num_channels=3, image_size=32)
    x = torch.randint(0, 256, (2, 3, 32, 32)).float() / 255
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert model.decode(torch.zeros(1, model.config.latent_dim)).logits.shape == (1, 4 * 10, 32, 32)
    assert out.sample.shape == (2, 3, 32, 32) and 0 <= out.sample.min() and out.sample.max() <= 1
    assert bits_per_dim(out.reconstruction_loss, model.config) > 0
    with pytest.raises(ValueError, match="num_mixtures=0"):
        make(likelihood="logistic_mixture", num_mixtures=0)


def pixel_context_vae(**overrides):
    """A colour VAE with a 5x5 pixel context whose last layer is random (a new one starts at zero: no effect)."""
    model = make(
        likelihood="logistic_mixture", num_mixtures=2, num_channels=3, pixel_context=5, pixel_context_channels=8,
        **{"image_size": 12, **overrides},
    )  # fmt: skip
    torch.nn.init.normal_(model.decoder.pixel_context.mix[-1].weight, std=0.3)
    return model.eval()


def test_pixel_context_decodes_pixel_by_pixel_what_the_likelihood_sees_in_one_pass():
    """Decoding is sequential, the likelihood one teacher-forced pass: given the decoded image, the one pass gives
    every pixel the parameters it was decoded with, and a pixel depends only on the pixels before it in its window."""
    model = pixel_context_vae()
    latents = torch.randn(3, model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    decoded = model.decode(latents)
    assert torch.equal(decoded.sample, torch.round(decoded.sample * 255) / 255)  # 8-bit levels, as the data
    one_pass = model.likelihood_output(latents, None, decoded.sample)
    torch.testing.assert_close(one_pass, decoded.logits, atol=1e-5, rtol=0)
    changed = decoded.sample.clone()
    changed[:, :, 5, 6] = 1.0 - changed[:, :, 5, 6]
    moved = (model.likelihood_output(latents, None, changed) - one_pass).abs().amax((0, 1)) > 0  # (H, W)
    window = torch.zeros(12, 12, dtype=torch.bool)
    window[5, 7:9] = True  # the two pixels to the right, then the next two rows, two columns each side
    window[6:8, 4:9] = True
    assert torch.equal(moved, window)


def test_a_pixel_context_added_to_a_trained_vae_starts_as_that_vae(tmp_path):
    base = make(likelihood="logistic_mixture", num_mixtures=2, num_channels=3, image_size=12)
    grown = base.with_pixel_context(3, 8)
    assert grown.config.pixel_context == 3 and not grown.decoder.pixel_context.mix[-1].weight.any()
    x = torch.randint(0, 256, (2, 3, 12, 12)).float() / 255
    z = torch.randn(2, base.config.latent_dim)
    torch.testing.assert_close(
        grown.reconstruction_nll(grown.likelihood_output(z, None, x), x),
        base.reconstruction_nll(base.likelihood_output(z, None, x), x),
    )
    with pytest.raises(ValueError, match="already has a pixel context"):
        grown.with_pixel_context(3, 8)
    grown.save_pretrained(tmp_path)
    loaded = VAEModel.from_pretrained(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in grown.state_dict().items())


def test_a_fully_gated_pixel_context_predicts_a_flat_colour_exactly_whatever_the_coupling():
    """Gate 1 and all weight on the left neighbour: inside a flat region each component's coupled location is the
    region's colour exactly (to float precision), although the decoder's locations and couplings are random."""
    from hf_dgm.vae.networks_vae import NUM_PREDICTIONS, coupled_locations, mixture_parameters

    model = make(likelihood="logistic_mixture", num_mixtures=2, num_channels=3, image_size=12, pixel_context=3)
    context, k = model.decoder.pixel_context, 2
    outputs = context.num_outputs
    with torch.no_grad():
        context.mix[-1].bias[outputs : outputs + k * NUM_PREDICTIONS].view(k, NUM_PREDICTIONS)[:, 0] = 30.0  # left
        context.mix[-1].bias[outputs + k * NUM_PREDICTIONS :] = 5.0  # gate clamped to 1
        context.mix[-1].bias[k:outputs].view(k, 9)[:, 6:] = 1.0  # couplings near tanh(1) (after C + C log-scales)
    colours = torch.randint(0, 256, (2, 3, 1, 1)).float() / 255
    images = colours.expand(2, 3, 12, 12)
    output = model.likelihood_output(torch.randn(2, model.config.latent_dim), None, images)
    _, locations, _, couplings = mixture_parameters(output, 3, k)
    assert couplings.abs().min() > 0.5  # the coupling to the earlier channels is live
    x = (images * 2 - 1).unsqueeze(1)
    located = coupled_locations(locations, couplings, x)[..., 1:]  # every pixel with a left neighbour
    torch.testing.assert_close(
        located, x.expand_as(coupled_locations(locations, couplings, x))[..., 1:], atol=1e-6, rtol=0
    )


def test_pixel_context_draws_the_same_images_whatever_the_batches():
    """`hf-dgm sample` decodes in batches where the pipeline decodes all at once: one generator gives the same
    images both ways; without one the draw is seeded, so the same latents give the same image."""
    from hf_dgm.vae.networks_vae import decode

    model = pixel_context_vae()
    latents = torch.randn(5, model.config.latent_dim)
    whole = decode(model.config, model.decoder, latents, generator=torch.Generator().manual_seed(3))[0]
    generator = torch.Generator().manual_seed(3)
    parts = [decode(model.config, model.decoder, part, generator=generator)[0] for part in (latents[:2], latents[2:])]
    assert torch.equal(whole, torch.cat(parts))
    assert torch.equal(model.decode(latents).sample, model.decode(latents).sample)
    assert not torch.equal(whole, decode(model.config, model.decoder, latents, generator=torch.Generator())[0])


def test_one_intra_op_thread_restores_the_thread_count_also_on_error():
    from hf_dgm.modeling_utils import one_intra_op_thread

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_intra_op_thread(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="inside"), one_intra_op_thread("cpu"):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
        with one_intra_op_thread(torch.device("meta")):  # not the CPU: left as it is
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_pixel_context_decodes_on_one_thread_the_same_pixels_and_reports_each_row(monkeypatch):
    """The decode loop runs on one intra-op thread (the process's count comes back after) and draws the pixels it
    drew on the process's threads, from parameters equal to float rounding; `progress` hears of each row, from
    inside the loop."""
    import contextlib

    from hf_dgm.vae import networks_vae

    model = pixel_context_vae(architecture="mlp", image_size=8)
    latents = torch.randn(3, model.config.latent_dim, generator=torch.Generator().manual_seed(2))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threads_per_row = []
        ours = model.decode(latents, progress=lambda rows: threads_per_row.append((rows, torch.get_num_threads())))
        assert threads_per_row == [(1, 1)] * 8 and torch.get_num_threads() == 2
        monkeypatch.setattr(networks_vae, "one_intra_op_thread", lambda device: contextlib.nullcontext())
        before = model.decode(latents)  # the loop on the process's 2 threads
        torch.set_num_threads(1)
        single = model.decode(latents)  # the loop on one thread, set for the whole process
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(ours.sample, before.sample) and torch.equal(ours.sample, single.sample)
    torch.testing.assert_close(ours.logits, before.logits, atol=1e-6, rtol=0)  # a sum's order may differ
    assert torch.equal(ours.logits, single.logits)


def test_pixel_by_pixel_sampling_shows_a_bar_of_the_rows_of_every_chunk(tmp_path, progress_bars, run_cli):
    """`hf-dgm sample` and its path (generate_images) show one bar of all the chunks' rows for a pixel context, none
    for a model decoded in one pass, and the same pixels with and without it."""
    from hf_dgm.modeling_utils import activation_elements
    from hf_dgm.sampling import generate_images, images_per_chunk

    model = pixel_context_vae()
    latents = torch.randn(5, model.config.latent_dim)
    with torch.device("meta"):
        budget = 2 * activation_elements(type(model)(model.config).sampling_network, model.config)  # 2 per chunk
    assert images_per_chunk(model.config, budget, 5) == 2
    shown = generate_images(model.config, model.sampling_network, latents, max_activations=budget, progress=True)
    (bar,) = progress_bars
    assert bar.kwargs["total"] == 3 * 12 and sum(bar.updates) == 3 * 12 and bar.kwargs["unit"] == "row"
    quiet = generate_images(model.config, model.sampling_network, latents, max_activations=budget)
    assert len(progress_bars) == 1 and (shown == quiet).all()
    one_pass = make(likelihood="logistic_mixture", num_mixtures=2, num_channels=3, image_size=12).eval()
    generate_images(one_pass.config, one_pass.sampling_network, latents, progress=True)
    assert len(progress_bars) == 1
    model.save_pretrained(tmp_path / "model")
    assert (
        run_cli("sample", "--model", tmp_path / "model", "--num-images", 2, "--out", tmp_path / "g.png").returncode == 0
    )
    assert len(progress_bars) == 2 and sum(progress_bars[-1].updates) == progress_bars[-1].kwargs["total"] == 12


@pytest.mark.parametrize("name,variance", LIKELIHOOD_VARIANTS)
def test_every_likelihood_is_a_distribution_over_its_values(name, variance):
    """Each registered likelihood, on a one-pixel image: its mean is in [0, 1]; a likelihood of binary images sums to
    1 over {0, 1}, one of 8-bit images over the 256 levels; a density (the Gaussian) integrates to about 1 over a fine
    grid of [0, 1] when its mass lies there. The learned log-scale exists exactly where the entry says."""
    entry = LIKELIHOODS[name]
    cfg = VAEConfig(likelihood=name, gaussian_variance=variance, gaussian_fixed_std=0.05, num_mixtures=3)
    output = 0.5 * torch.randn(1, entry.output_channels(cfg), 1, 1, generator=torch.Generator().manual_seed(0))
    mean = entry.mean(cfg, output)
    assert mean.shape == (1, 1, 1, 1) and 0.0 <= mean.item() <= 1.0
    log_scale = torch.full((1,), math.log(0.05))
    assert (VAEModel(cfg).log_scale is not None) == entry.learned_log_scale(cfg)
    if entry.binary or entry.eight_bit:
        values = torch.tensor([0.0, 1.0]) if entry.binary else torch.arange(256) / 255.0
    else:
        values = torch.linspace(-0.5, 1.5, 20001)  # a density: mass per grid step
    images = values.view(-1, 1, 1, 1)
    probs = torch.exp(-entry.nll(cfg, output.expand(len(values), -1, -1, -1), images, log_scale))
    if not (entry.binary or entry.eight_bit):
        probs = probs * (values[1] - values[0])
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-3)
