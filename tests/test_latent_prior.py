"""The prior fitted to a trained VAE's latents (``vae.latent_prior``, ``hf-dgm fit-prior``): its density and samples
against torch.distributions, the NLL bounds' change of prior, saving and loading, the fast path and
trust_remote_code, the command end to end with its bad input, and ``--init-from`` dropping it."""

import hashlib
import json
import logging
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from conftest import MNIST, tiny_train_kwargs, tiny_vae_kwargs
from safetensors import safe_open
from test_hvae import generates_alike_without_hf_dgm, images_and_labels, tiny_hvae
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from hf_dgm import VAEConfig, VAEModel, VAEPipeline
from hf_dgm.training.fit_prior import posterior_draws
from hf_dgm.training.vae import VAETrainingArguments, train_vae
from hf_dgm.vae.latent_prior import AutoregressivePrior, FittedPrior, standard_normal_log_prob

BUFFERS = ("center", "directions", "log_weights", "means", "scale_tril", "tail_variances")


def clusters(num: int, weights=(0.7, 0.3), dim: int = 6, seed: int = 0):
    """`num` points (float64) of two well-separated anisotropic Gaussian clusters drawn with `weights`, and the
    clusters' centers."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(2, dim, generator=g, dtype=torch.float64) * 4
    labels = (torch.rand(num, generator=g, dtype=torch.float64) >= weights[0]).long()
    mixing = torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.5
    return centers[labels] + torch.randn(num, dim, generator=g, dtype=torch.float64) @ mixing, centers


def fitted(latents: torch.Tensor, components: int, rank: int, dtype=torch.float32, iterations: int = 50):
    prior = FittedPrior(latents.shape[1], components, rank).to(dtype)
    return prior.fit(latents, torch.Generator().manual_seed(0), iterations)


def reference(prior: FittedPrior) -> MixtureSameFamily:
    """The prior as torch.distributions writes it: a mixture of full Gaussians in latent space whose covariances are
    V L_k L_k^T V^T + P diag(tail_variances) P (V the directions, P = I - V V^T), means center + V m_k."""
    p = {name: getattr(prior, name).double() for name in BUFFERS}
    v = p["directions"]
    complement = torch.eye(prior.latent_dim, dtype=torch.float64) - v @ v.T
    tail = complement @ torch.diag(p["tail_variances"]) @ complement
    covariances = v @ p["scale_tril"] @ p["scale_tril"].transpose(1, 2) @ v.T + tail
    means = p["center"] + p["means"] @ v.T
    return MixtureSameFamily(Categorical(logits=p["log_weights"]), MultivariateNormal(means, covariances))


def mixture_covariance(mixture: MixtureSameFamily) -> torch.Tensor:
    w = mixture.mixture_distribution.probs
    means, covariances = mixture.component_distribution.mean, mixture.component_distribution.covariance_matrix
    mean = w @ means
    second = (w[:, None, None] * (covariances + means[:, :, None] * means[:, None, :])).sum(0)
    return second - mean[:, None] * mean[None, :]


def standard_normal_prior(latent_dim: int, rank: int) -> FittedPrior:
    """N(0, I) written as a fitted prior, set by hand: one component at 0 with unit covariance, unit tail."""
    prior = FittedPrior(latent_dim, 1, rank)
    values = dict(
        center=torch.zeros(latent_dim),
        directions=torch.eye(latent_dim, rank),
        log_weights=torch.zeros(1),
        means=torch.zeros(1, rank),
        scale_tril=torch.eye(rank)[None],
        tail_variances=torch.ones(latent_dim),
    )
    prior.load_state_dict(values)
    return prior


def tiny_model(name: str) -> VAEModel:
    """A tiny unconditional VAE: the hierarchical one of test_hvae ("grey-28", 490 latents) or a conv one (4)."""
    if name == "conv":
        torch.manual_seed(0)
        return VAEModel(VAEConfig(**tiny_vae_kwargs()))
    return tiny_hvae(name)


def prior_of(model: VAEModel, draws: int = 60, components: int = 2, rank: int = 3) -> FittedPrior:
    """A prior fitted (as `hf-dgm fit-prior` fits it) to the model's posterior draws of 4 random images."""
    x, _ = images_and_labels(model)
    latents = posterior_draws(model, (x * 255).round().to(torch.uint8), draws, torch.Generator().manual_seed(0))
    return fitted(latents, components, rank, iterations=20)


def drawn_latents(model: VAEModel, x: torch.Tensor, num_samples: int, seed: int) -> torch.Tensor:
    """The latents log_importance_weights scores for this seed, (num_samples * N, latent_dim): z for a single-latent
    VAE, every group's prior-standardised noise for a hierarchical one."""
    d = model.config.latent_dim
    noise = torch.randn((num_samples, x.shape[0], d), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        if model.is_hierarchical:
            return model.posterior_pass(x, None, noise.reshape(-1, d), num_samples)[1].eps
        posterior = model.encode(x).latent_dist
        return (posterior.mean + posterior.std * noise).reshape(-1, d)


def weight_keys(folder) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


# ----------------------------------------------------------------------------------------------------------------------
# the density


@pytest.mark.parametrize("rank", [3, 6])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-8), (torch.float32, 1e-4)])
def test_log_prob_is_the_mixtures_exact_density(rank, dtype, tolerance):
    x, _ = clusters(300)
    prior = fitted(x, 2, rank, dtype)
    q = prior.directions.double()
    assert q.shape == (6, rank) and torch.allclose(q.T @ q, torch.eye(rank, dtype=torch.float64), atol=tolerance)
    assert prior.tail_variances.shape == (6,)
    if rank < 6:  # the tail: each value's variance in what the directions leave
        centered = x - x.mean(0)
        left = centered - centered @ q @ q.T
        assert torch.allclose(prior.tail_variances.double(), left.var(0), rtol=1e-4)
    assert torch.logsumexp(prior.log_weights.double(), 0).abs() < 1e-6  # normalised weights
    points = torch.cat([x[:50], torch.randn(50, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)])
    expected = reference(prior).log_prob(points)
    got = prior.log_prob(points.to(dtype))
    assert got.dtype == torch.float64 and got.shape == (100,)
    assert torch.allclose(got, expected, rtol=0, atol=tolerance * 10), (got - expected).abs().max()


def test_standard_normal_log_prob_is_that_of_torch_distributions():
    z = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    expected = MultivariateNormal(torch.zeros(5), torch.eye(5)).log_prob(z).double()
    assert torch.allclose(standard_normal_log_prob(z), expected, atol=1e-5)
    assert torch.allclose(standard_normal_prior(5, 2).log_prob(z), expected, atol=1e-5)


def test_fit_refuses_too_few_or_misshapen_latents():
    with pytest.raises(
        ValueError, match=r"latents of shape \(3, 6\) can't fit this prior: expected \(N, 6\) with N > 3"
    ):
        FittedPrior(6, 3, 2).fit(torch.randn(3, 6), torch.Generator())
    with pytest.raises(ValueError, match=r"expected \(N, 6\)"):
        FittedPrior(6, 2, 2).fit(torch.randn(10, 5), torch.Generator())


# ----------------------------------------------------------------------------------------------------------------------
# sampling


def test_samples_are_seeded_and_a_zero_scale_gives_the_components_means():
    x, _ = clusters(300)
    prior = fitted(x, 2, 3, torch.float64)
    a, b = (prior.sample(50, torch.Generator().manual_seed(3)) for _ in range(2))
    assert a.shape == (50, 6) and a.dtype == torch.float64 and torch.equal(a, b)
    assert not torch.equal(a, prior.sample(50, torch.Generator().manual_seed(4)))
    means = prior.center + prior.means @ prior.directions.T  # (K, D)
    modes = prior.sample(40, torch.Generator().manual_seed(3), scale=0.0)
    distances = torch.cdist(modes, means)  # each draw sits on one component's mean
    assert torch.allclose(distances.min(1).values, torch.zeros(40, dtype=torch.float64), atol=1e-9)
    assert set(distances.argmin(1).tolist()) == {0, 1}
    # a temperature scales each draw's deviation from its component's mean; the components are drawn first
    half = prior.sample(50, torch.Generator().manual_seed(3), scale=0.5)
    on_means = prior.sample(50, torch.Generator().manual_seed(3), scale=0.0)
    assert torch.allclose(half - on_means, 0.5 * (a - on_means), atol=1e-9)
    per_latent = prior.sample(50, torch.Generator().manual_seed(3), scale=torch.full((6,), 0.5))
    assert torch.allclose(per_latent, half, atol=1e-12)


def test_many_samples_have_the_mixtures_mean_and_covariance():
    x, _ = clusters(300)
    prior = fitted(x, 2, 3, torch.float64)
    mixture = reference(prior)
    z = prior.sample(40_000, torch.Generator().manual_seed(0))
    covariance = mixture_covariance(mixture)
    spread = covariance.diagonal().sqrt()
    assert ((z.mean(0) - mixture.mean).abs() < 0.05 * spread).all()
    assert torch.allclose(torch.cov(z.T), covariance, atol=0.05 * covariance.abs().max().item())
    # the samples are scored as the reference scores them: the same mean log density
    assert prior.log_prob(z).mean() == pytest.approx(mixture.log_prob(z).mean().item(), abs=1e-6)


def test_the_fit_recovers_a_known_mixtures_weights_and_centers():
    x, centers = clusters(2000, weights=(0.7, 0.3))
    prior = fitted(x, 2, 3, torch.float64)
    weights = prior.log_weights.exp()
    order = weights.argsort(descending=True)
    assert torch.allclose(weights[order], torch.tensor([0.7, 0.3], dtype=torch.float64), atol=0.04)
    means = (prior.center + prior.means @ prior.directions.T)[order]
    assert torch.allclose(means, centers, atol=0.3), (means, centers)


# ----------------------------------------------------------------------------------------------------------------------
# the NLL bounds


@pytest.mark.parametrize("name", ["grey-28", "conv"])
def test_importance_weights_change_by_the_fitted_priors_log_density_ratio(name):
    """N(0, I) written as a fitted prior gives the plain model's weights; a fitted one adds log p_fitted - log N(0, I)
    of the latents the weights score (for a hierarchical VAE: every group's prior-standardised noise)."""
    model = tiny_model(name).eval()
    d = model.config.latent_dim
    x, _ = images_and_labels(model)
    with torch.no_grad():
        plain = model.log_importance_weights(x, 8, torch.Generator().manual_seed(2))
        standard = model.with_latent_prior(standard_normal_prior(d, d // 2))
        assert torch.allclose(standard.log_importance_weights(x, 8, torch.Generator().manual_seed(2)), plain)
        prior = prior_of(model)
        changed = model.with_latent_prior(prior).log_importance_weights(x, 8, torch.Generator().manual_seed(2))
    z = drawn_latents(model, x, 8, seed=2)
    expected = (prior.log_prob(z) - standard_normal_log_prob(z)).view(8, 4)
    assert expected.abs().mean() > 0.1  # the fitted prior is not N(0, I): the check below has teeth
    assert changed.dtype == plain.dtype == torch.float32
    assert torch.allclose((changed - plain).double(), expected, rtol=1e-4, atol=1e-2)


# ----------------------------------------------------------------------------------------------------------------------
# saving, loading, the fast path


@pytest.mark.parametrize("name", ["grey-28", "conv"])
def test_a_fitted_prior_saves_loads_and_samples_alike_on_every_path(tmp_path, name):
    from hf_dgm.sampling import load_sampling_network, sample_images

    model = tiny_model(name)
    prior = prior_of(model)
    with_prior = model.with_latent_prior(prior)
    assert with_prior.latent_prior is not None and model.latent_prior is None
    with_prior.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["latent_prior_components"], config["latent_prior_rank"]) == (2, 3)
    assert {f"decoder.latent_prior.{b}" for b in BUFFERS} <= weight_keys(tmp_path / "m")
    loaded = VAEModel.from_pretrained(tmp_path / "m")
    assert all(torch.equal(getattr(loaded.latent_prior, b), getattr(prior, b)) for b in BUFFERS)
    draw = [loaded.generate(4, generator=torch.Generator().manual_seed(5)).sample for _ in range(2)]
    assert torch.equal(*draw) and torch.equal(draw[0], with_prior.generate(4, torch.Generator().manual_seed(5)).sample)
    assert not torch.equal(draw[0], model.generate(4, torch.Generator().manual_seed(5)).sample)
    # generate decodes the prior's samples, drawn from the generator
    latents = prior.sample(4, torch.Generator().manual_seed(5), 0.7)
    expected = loaded.generate(latents=latents).sample
    assert torch.equal(loaded.generate(4, torch.Generator().manual_seed(5), temperature=0.7).sample, expected)
    # the fast path (`hf-dgm sample`: the decoder alone) draws the pipeline's images
    cfg, family, net = load_sampling_network(tmp_path / "m")
    temperatures = [0.7] + ([[0.5, 1.0]] if name == "grey-28" else [])
    for temperature in temperatures:
        fast = sample_images(cfg, family, net, 4, seed=5, temperature=temperature)
        pipe = VAEPipeline(vae=loaded)
        images = pipe(4, torch.Generator().manual_seed(5), temperature=temperature, output_type="np").images
        assert torch.equal(torch.from_numpy(fast), torch.from_numpy((images * 255).round().astype("uint8")))
    if name == "grey-28":  # one temperature per group, the same for both: that temperature
        same = loaded.generate(4, torch.Generator().manual_seed(5), temperature=[0.7, 0.7]).sample
        assert torch.equal(same, expected)
    # back to N(0, I): the networks' weights kept, the prior's dropped
    plain = loaded.with_latent_prior(None)
    plain.save_pretrained(tmp_path / "plain")
    assert plain.latent_prior is None and plain.config.latent_prior_components == plain.config.latent_prior_rank == 0
    assert not any(key.startswith("decoder.latent_prior.") for key in weight_keys(tmp_path / "plain"))
    assert plain.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in model.state_dict().items())


def test_a_config_with_a_prior_and_weights_without_it_fail_to_load(tmp_path):
    from hf_dgm.sampling import load_sampling_network

    tiny_model("conv").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(latent_prior_components=2, latent_prior_rank=2)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing: decoder.latent_prior.center"):
        VAEModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="missing: latent_prior.center"):
        load_sampling_network(tmp_path)


@pytest.mark.parametrize("kind", ["mixture", "autoregressive"])
def test_trust_remote_code_without_hf_dgm_samples_from_the_fitted_prior(tmp_path, kind):
    model = tiny_hvae("grey-28")
    if kind == "mixture":
        prior = prior_of(model)
    else:
        torch.manual_seed(0)
        prior = AutoregressivePrior([7, 14], 2, components=2, width=4)
    model = model.with_latent_prior(prior)
    more = 'print("ok", type(model.latent_prior).__name__, model.config.latent_prior_components)'
    printed = generates_alike_without_hf_dgm(tmp_path, model, "temperature=[0.5, 1.0]", more)
    assert printed == ["ok", type(prior).__name__, "2"]


# ----------------------------------------------------------------------------------------------------------------------
# hf-dgm fit-prior, and training from a model with a fitted prior

TINY_TRAINED = dict(base_channels=4, hidden_dim=16, latent_dim=4)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The first 64 MNIST training images, a local folder."""
    digits = tmp_path_factory.mktemp("digits")
    name = "train-00000-of-00001.parquet"
    pq.write_table(pq.read_table(f"{MNIST}/{name}").slice(0, 64), digits / name)
    return digits


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    """A tiny conv VAE trained for 2 steps on `digits`, 16 of them held out."""
    out = tmp_path_factory.mktemp("trained")
    kwargs = dict(dataset=str(digits), max_samples=None, holdout_fraction=0.25, max_steps=2, **TINY_TRAINED)
    train_vae(VAETrainingArguments(**tiny_train_kwargs(out, **kwargs)))
    return out


def digests(folder) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_fit_prior_writes_a_new_model_folder_and_leaves_the_source_alone(tmp_path, trained, digits, run_cli):
    before = digests(trained)
    record = json.loads((trained / "training_args.json").read_text())
    assert (record["num_train_images"], record["num_held_out_images"]) == (48, 16)
    out = tmp_path / "fitted"
    out.mkdir()
    (out / "eval_results.json").write_text("{}")  # a refit where an earlier fit was evaluated: that no longer holds
    flags = ["--dataset", digits, "--components", "2", "--rank", "3", "--iterations", "20"]
    proc = run_cli("fit-prior", trained, "--output-dir", out, *flags)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: 2 components in 3 dimensions, fitted to 2 x 48 posterior draws")
    assert digests(trained) == before
    config = json.loads((out / "config.json").read_text())
    assert (config["latent_prior_components"], config["latent_prior_rank"]) == (2, 3)
    new_record = json.loads((out / "training_args.json").read_text())
    fit = new_record.pop("latent_prior")
    assert new_record == record
    assert fit["num_images"] == record["num_train_images"] == 48
    assert (fit["components"], fit["rank"], fit["draws"], fit["iterations"], fit["seed"]) == (2, 3, 2, 20, 0)
    assert "holdout_fraction" not in fit and "split" not in fit  # the record's own, beside it
    assert fit["dataset"] == record["dataset"] == digits.name and fit["dataset_sha256"] == record["dataset_sha256"]
    assert str(digits.parent) not in (out / "training_args.json").read_text()  # no path of this machine
    assert (out / "samples.png").is_file() and (out / "README.md").is_file()
    assert not (out / "eval_results.json").exists()
    model, source = VAEModel.from_pretrained(out), VAEModel.from_pretrained(trained)
    weights = model.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in source.state_dict().items())  # the networks unchanged
    assert model.latent_prior.means.shape == (2, 3) and model.latent_prior.log_weights.exp().sum() == pytest.approx(1)
    # seeded: the same command fits the same prior
    again = run_cli("fit-prior", trained, "--output-dir", tmp_path / "again", *flags)
    assert again.returncode == 0, again.stderr
    refit = VAEModel.from_pretrained(tmp_path / "again").latent_prior
    assert all(torch.equal(getattr(refit, b), getattr(model.latent_prior, b)) for b in BUFFERS)


def test_fit_prior_fits_the_images_of_a_run_on_the_first_max_samples(tmp_path, trained, digits, run_cli):
    """A run with --max-samples trained on the split's first images only, their held-out fraction left out: so is the
    prior fitted (40 images, a quarter held out: 30)."""
    source = tmp_path / "source"
    shutil.copytree(trained, source)
    record = json.loads((source / "training_args.json").read_text())
    (source / "training_args.json").write_text(json.dumps({**record, "max_samples": 40}))
    flags = ["--dataset", digits, "--components", "2", "--rank", "3", "--iterations", "5"]
    proc = run_cli("fit-prior", source, "--output-dir", tmp_path / "fitted", *flags)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "fitted" / "training_args.json").read_text())["latent_prior"]["num_images"] == 30


def test_fit_prior_bad_input_gets_one_line_and_exit_code_2(tmp_path, trained, digits, run_cli):
    torch.manual_seed(0)
    VAEModel(VAEConfig(**tiny_vae_kwargs(num_classes=10))).save_pretrained(tmp_path / "conditional")
    cases = [
        ((tmp_path / "conditional", "--output-dir", tmp_path / "a"), "components=20 is invalid for a conditional VAE (num_classes=10)"),
        ((trained, "--output-dir", tmp_path / "b", "--rank", "5"), "rank=5 is invalid: expected at most the model's latent_dim=4"),
        ((trained, "--output-dir", trained, "--rank", "2"), "is the model's own folder: expected a new folder"),
        ((trained, "--output-dir", tmp_path / "c", "--dataset", digits, "--components", "97", "--rank", "2"), "48 images x 2 draws can't fit 97"),
        ((trained, "--output-dir", tmp_path / "d", "--rank", "2"), f"trained on the local dataset '{digits.name}'"),
    ]  # fmt: skip
    before = digests(trained)
    for args, message in cases:
        proc = run_cli("fit-prior", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("hf-dgm fit-prior: error: ") and message in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not any((tmp_path / name).exists() for name in "abcd")  # nothing written before the checks
    assert digests(trained) == before
    proc = run_cli("fit-prior", trained, "--output-dir", tmp_path / "e", "--components", "0")
    assert proc.returncode == 2 and "0 is not a positive int" in proc.stderr


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(latent_prior_components=2, latent_prior_rank=0), "latent_prior_rank=0 is invalid: expected a positive int"),
        (dict(latent_prior_components=0, latent_prior_rank=2), "latent_prior_components=0 is invalid"),
        (dict(latent_prior_components=2, latent_prior_rank=5), "latent_prior_rank=5 is invalid: expected at most the model's latent_dim=4"),
        (dict(latent_prior_components=2, latent_prior_rank=2, num_classes=10), "invalid for a conditional VAE (num_classes=10)"),
        (dict(latent_prior_kind="flow"), "latent_prior_kind='flow' is invalid: expected one of mixture, autoregressive"),
        (dict(latent_prior_components=2, latent_prior_rank=2, latent_prior_width=3), "latent_prior_width=3 does not apply to latent_prior_kind='mixture': expected 0"),
        (dict(latent_prior_kind="autoregressive", latent_prior_components=2, latent_prior_width=4), "an autoregressive prior needs architecture='hierarchical'"),
        (dict(latent_prior_kind="autoregressive", latent_prior_components=2, latent_prior_rank=2, latent_prior_width=4), "latent_prior_rank=2 does not apply to latent_prior_kind='autoregressive'"),
    ],
)  # fmt: skip
def test_bad_prior_config_fields_get_one_clear_line(fields, message):
    with pytest.raises(ValueError) as err:
        VAEConfig(**tiny_vae_kwargs(**fields))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_cli_the_fit_and_the_config_name_the_same_prior_kinds():
    """The CLI lists the kinds without importing torch, so the three lists are kept equal here."""
    from hf_dgm.cli import build_parser
    from hf_dgm.training.fit_prior import KIND_DEFAULTS
    from hf_dgm.vae.latent_prior import PRIOR_KINDS

    fit_prior = build_parser()._subparsers._group_actions[0].choices["fit-prior"]
    kind = next(action for action in fit_prior._actions if action.dest == "kind")
    assert tuple(kind.choices) == tuple(KIND_DEFAULTS) == PRIOR_KINDS
    assert kind.default == VAEConfig.latent_prior_kind == PRIOR_KINDS[0]


def test_training_from_a_model_with_a_fitted_prior_drops_it_with_a_warning(tmp_path, trained, caplog):
    source = VAEModel.from_pretrained(trained)
    source.with_latent_prior(fitted(torch.randn(50, 4), 2, 2)).save_pretrained(tmp_path / "fitted")
    args = tiny_train_kwargs(tmp_path / "run", init_from=str(tmp_path / "fitted"), max_steps=1, **TINY_TRAINED)
    with caplog.at_level(logging.WARNING, logger="hf_dgm.training.vae"):
        model = train_vae(VAETrainingArguments(**args))
    dropped = [r.getMessage() for r in caplog.records if "its fitted prior is dropped" in r.getMessage()]
    assert dropped == [f"--init-from {tmp_path / 'fitted'}: its fitted prior is dropped (hf-dgm fit-prior fits one)."]
    assert model.latent_prior is None
    assert model.config.latent_prior_components == model.config.latent_prior_rank == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["latent_prior_components"] == saved["latent_prior_rank"] == 0
    assert not any(key.startswith("decoder.latent_prior.") for key in weight_keys(tmp_path / "run"))


# ----------------------------------------------------------------------------------------------------------------------
# the autoregressive prior (hierarchical VAEs)


def correlated(num: int, dim: int, seed: int = 0) -> torch.Tensor:
    """`num` latents whose values share one factor (correlation 0.8) around a mean of 0.5, std 0.5."""
    g = torch.Generator().manual_seed(seed)
    shared, own = torch.randn(num, 1, generator=g), torch.randn(num, dim, generator=g)
    return 0.5 + 0.5 * (0.8**0.5 * shared + 0.2**0.5 * own)


def autoregressive(data: torch.Tensor, resolutions: list[int], steps: int = 100) -> AutoregressivePrior:
    torch.manual_seed(0)
    prior = AutoregressivePrior(resolutions, 1, components=2, width=8)
    return prior.fit(data, torch.Generator().manual_seed(0), steps, lr=1e-2)


def test_each_step_of_the_autoregressive_prior_sees_only_what_was_drawn_before_it():
    """The chain rule makes the density normalised if each step's mixture is: the log density of subgrid s depends on
    the subgrids before it and its own values, never on a later subgrid's; and one value's mixture integrates to 1."""
    from hf_dgm.vae.latent_prior import SUBGRIDS, subgrid_masks

    torch.manual_seed(0)
    scale = AutoregressivePrior([4, 8], 1, components=3, width=8).scales[1]  # an 8 x 8 grid after a 4 x 4 one
    with torch.no_grad():
        for parameter in scale.parameters():
            parameter.normal_(std=0.3)  # nothing left at its initial zeros
    masks = subgrid_masks(8)[:, 0]
    for step in range(len(SUBGRIDS)):
        eps, coarser = torch.randn(2, 1, 8, 8, requires_grad=True), torch.randn(2, 1, 8, 8)
        scale.log_prob(eps, torch.full((2,), step), coarser).sum().backward()
        touched = eps.grad.abs().sum((0, 1)) > 0
        assert not touched[masks[step + 1 :].sum(0).bool()].any()  # no later subgrid
        assert touched[masks[: step + 1].sum(0).bool()].all()  # its own values and those before
    single = autoregressive(torch.randn(500, 1) * 0.3 + 1, [1])
    values = torch.linspace(-10, 10, 20001)[:, None]
    with torch.no_grad():
        assert single.log_prob(values).exp().sum().item() * 0.001 == pytest.approx(1.0, abs=1e-4)


def test_the_autoregressive_prior_learns_its_data():
    """Over 5 values (a 1 x 1 grid, then a 2 x 2 one): fitting raises the density of its data, and its samples have
    the data's mean, spread and correlation; at scale 0 they are the chosen components' means; seeded."""
    data = correlated(2000, 5)
    prior = autoregressive(data, [1, 2])
    z = torch.randn(50, 5)
    assert torch.equal(prior.from_grids(prior.to_grids(z)), z)
    with torch.no_grad():
        assert (prior.log_prob(data) - standard_normal_log_prob(data)).mean() > 3.0
    samples = prior.sample(4000, torch.Generator().manual_seed(2))
    assert torch.allclose(samples.mean(0), data.mean(0), atol=0.08)
    assert torch.allclose(samples.std(0), data.std(0), atol=0.08)
    assert torch.corrcoef(samples.T)[0, 1:].min() > 0.6  # the 2 x 2 grid follows the 1 x 1 one
    assert torch.equal(
        prior.sample(8, torch.Generator().manual_seed(3)), prior.sample(8, torch.Generator().manual_seed(3))
    )
    sharp = prior.sample(4000, torch.Generator().manual_seed(2), 0.0)
    assert sharp.std(0).max() < samples.std(0).min()


def test_an_autoregressive_prior_saves_loads_samples_and_scores_latents(tmp_path):
    model = tiny_hvae("grey-28")
    x, _ = images_and_labels(model)
    latents = posterior_draws(model, (x * 255).round().to(torch.uint8), 20, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    prior = AutoregressivePrior([7, 14], 2, components=2, width=4).fit(latents, torch.Generator().manual_seed(0), 5)
    with_prior = model.with_latent_prior(prior)
    with_prior.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert [config[f"latent_prior_{k}"] for k in ("kind", "components", "rank", "width")] == ["autoregressive", 2, 0, 4]
    loaded = VAEModel.from_pretrained(tmp_path / "m")
    draw = loaded.generate(4, generator=torch.Generator().manual_seed(5), temperature=[0.5, 1.0]).sample
    assert torch.equal(draw, with_prior.generate(4, torch.Generator().manual_seed(5), temperature=[0.5, 1.0]).sample)
    from hf_dgm.sampling import load_sampling_network, sample_images

    fast = sample_images(*load_sampling_network(tmp_path / "m"), 4, seed=5, temperature=[0.5, 1.0])
    assert torch.equal(torch.from_numpy(fast), (draw * 255).round().to(torch.uint8).permute(0, 2, 3, 1))
    with torch.no_grad():  # the NLL bounds score the latents with it
        plain = model.log_importance_weights(x, 4, torch.Generator().manual_seed(2))
        changed = loaded.log_importance_weights(x, 4, torch.Generator().manual_seed(2))
        z = drawn_latents(model, x, 4, seed=2)
        expected = (prior.log_prob(z) - standard_normal_log_prob(z)).view(4, 4)
    assert torch.allclose((changed - plain).double(), expected, rtol=1e-4, atol=1e-2)


@pytest.fixture(scope="module")
def trained_hierarchical(tmp_path_factory, digits):
    """A tiny hierarchical VAE trained for 2 steps on `digits`, 16 of them held out."""
    out = tmp_path_factory.mktemp("trained_hierarchical")
    kwargs = dict(dataset=str(digits), max_samples=None, holdout_fraction=0.25, max_steps=2, base_channels=2,
                  latent_dim=490, architecture="hierarchical")  # fmt: skip
    train_vae(VAETrainingArguments(**tiny_train_kwargs(out, **kwargs)))
    return out


def test_fit_prior_fits_an_autoregressive_prior_to_a_hierarchical_vae(tmp_path, trained, trained_hierarchical,
                                                                        digits, run_cli):  # fmt: skip
    flags = ["--dataset", digits, "--kind", "autoregressive", "--components", "2", "--width", "4", "--iterations", "3"]
    out = tmp_path / "fitted"
    proc = run_cli("fit-prior", trained_hierarchical, "--output-dir", out, *flags)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: autoregressive, 2 components per position, width 4, fitted to 2 x 48")
    fit = json.loads((out / "training_args.json").read_text())["latent_prior"]
    assert (fit["kind"], fit["components"], fit["width"], fit["iterations"]) == ("autoregressive", 2, 4, 3)
    assert "four interleaved subgrids" in (out / "README.md").read_text()
    again = run_cli("fit-prior", trained_hierarchical, "--output-dir", tmp_path / "again", *flags)
    assert again.returncode == 0, again.stderr
    weights = [VAEModel.from_pretrained(folder).state_dict() for folder in (out, tmp_path / "again")]
    assert all(torch.equal(v, weights[1][k]) for k, v in weights[0].items())  # seeded
    cases = [
        ((trained, "--dataset", digits, "--kind", "autoregressive"), "an autoregressive prior needs architecture='hierarchical'"),
        ((trained_hierarchical, "--kind", "autoregressive", "--rank", "3"), "rank=3 does not apply to kind='autoregressive': leave it out"),
        ((trained_hierarchical, "--width", "4"), "width=4 does not apply to kind='mixture': leave it out"),
    ]  # fmt: skip
    for args, message in cases:
        proc = run_cli("fit-prior", *args[:1], "--output-dir", tmp_path / "bad", *args[1:])
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "bad").exists()
