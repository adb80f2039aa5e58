import numpy as np
import pytest
import torch
from conftest import tiny_gan_kwargs, tiny_vae_kwargs
from diffusers import ImagePipelineOutput
from PIL import Image

from hf_dgm import GANConfig, GANModel, GANPipeline, VAEConfig, VAEModel, VAEPipeline


def gan_pipe(**kw):
    torch.manual_seed(0)
    return GANPipeline(gan=GANModel(GANConfig(**tiny_gan_kwargs(**kw))))


def vae_pipe(**kw):
    torch.manual_seed(0)
    return VAEPipeline(vae=VAEModel(VAEConfig(**tiny_vae_kwargs(**kw))))


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("make", [gan_pipe, vae_pipe])
def test_output_types(make):
    pipe = make()
    out = pipe(batch_size=3, generator=seeded())
    assert isinstance(out, ImagePipelineOutput)
    assert len(out.images) == 3 and all(isinstance(i, Image.Image) and i.size == (28, 28) for i in out.images)
    np_images = pipe(batch_size=3, generator=seeded(), output_type="np").images
    assert isinstance(np_images, np.ndarray) and np_images.shape == (3, 28, 28, 1) and np_images.dtype == np.float32
    assert np_images.min() >= 0 and np_images.max() <= 1
    pt = pipe(batch_size=3, generator=seeded(), output_type="pt").images
    assert isinstance(pt, torch.Tensor) and pt.shape == (3, 1, 28, 28) and pt.min() >= 0 and pt.max() <= 1
    np.testing.assert_array_equal(pt.permute(0, 2, 3, 1).numpy(), np_images)
    pil0 = np.asarray(out.images[0])
    np.testing.assert_array_equal(pil0, (np_images[0, ..., 0] * 255).round().astype(np.uint8))
    (tup,) = pipe(batch_size=3, generator=seeded(), output_type="np", return_dict=False)
    np.testing.assert_array_equal(tup, np_images)
    with pytest.raises(ValueError, match="output_type='latent'"):
        pipe(batch_size=1, output_type="latent")


@pytest.mark.parametrize("make", [gan_pipe, vae_pipe])
def test_same_seed_same_pixels(make):
    pipe = make()
    a = pipe(batch_size=4, generator=seeded(5), output_type="np").images
    b = pipe(batch_size=4, generator=seeded(5), output_type="np").images
    c = pipe(batch_size=4, generator=seeded(6), output_type="np").images
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_gan_pipeline_matches_model_generate_and_uses_ema():
    pipe = gan_pipe(use_ema=True)
    with torch.no_grad():
        for p in pipe.gan.generator_ema.parameters():
            p.add_(0.05)
    images = pipe(batch_size=2, generator=seeded(), output_type="pt").images
    expected = (pipe.gan.generate(2, generator=seeded()).sample + 1) / 2
    torch.testing.assert_close(images, expected.clamp(0, 1), rtol=0, atol=0)
    pipe.gan.generator.eval()
    with torch.no_grad():
        no_ema = pipe.gan.generator(torch.randn(2, 8, generator=seeded()))
    assert not torch.allclose(images, ((no_ema + 1) / 2).clamp(0, 1))


def test_pipeline_samples_in_eval_mode():
    pipe = gan_pipe()
    pipe.gan.train()
    z = torch.randn(4, 8, generator=seeded())
    a = pipe(latents=z, output_type="np").images
    b = pipe(latents=z[:1], output_type="np").images  # BatchNorm in train mode would use batch statistics
    np.testing.assert_array_equal(a[:1], b)
    assert pipe.gan.training


def test_conditional_pipelines():
    pipe = gan_pipe(num_classes=10)
    images = pipe(batch_size=3, generator=seeded(), class_labels=[1, 2, 3], output_type="np").images
    assert images.shape == (3, 28, 28, 1)
    with pytest.raises(ValueError, match="class-conditional"):
        pipe(batch_size=2)
    vpipe = vae_pipe(num_classes=10)
    assert vpipe(batch_size=2, class_labels=7, output_type="pt").images.shape == (2, 1, 28, 28)


def test_vae_reconstruct_and_interpolate():
    pipe = vae_pipe()
    x = torch.rand(3, 1, 28, 28)
    rec = pipe.reconstruct(x, output_type="pt").images
    expected = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample
    torch.testing.assert_close(rec, expected)
    z0, z1 = torch.zeros(4), torch.ones(4)
    frames = pipe.interpolate(z0, z1, num_steps=5, method="linear", output_type="pt").images
    assert frames.shape == (5, 1, 28, 28)
    torch.testing.assert_close(frames[0], pipe.vae.decode(z0[None]).sample[0])
    torch.testing.assert_close(frames[-1], pipe.vae.decode(z1[None]).sample[0])
    sph = pipe.interpolate(torch.randn(4), torch.randn(4), num_steps=3, method="spherical", output_type="pt").images
    assert sph.shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="method='cubic'"):
        pipe.interpolate(z0, z1, method="cubic")
    with pytest.raises(ValueError, match="num_steps=1"):
        pipe.interpolate(z0, z1, num_steps=1)


def test_spherical_path_keeps_norm():
    from hf_dgm.pipeline_utils import interpolate_latents

    a, b = torch.randn(64), torch.randn(64)
    b = b / b.norm() * a.norm()
    path = interpolate_latents(a, b, 7, "spherical")
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b)
    torch.testing.assert_close(path.norm(dim=1), torch.full((7,), a.norm().item()), rtol=1e-4, atol=1e-4)


def test_gan_truncation():
    pipe = gan_pipe()
    a = pipe(batch_size=2, generator=seeded(), truncation=0.5, output_type="pt").images
    z = torch.randn(2, 8, generator=seeded()).clamp(-0.5, 0.5)
    torch.testing.assert_close(a, pipe(latents=z, output_type="pt").images)


@pytest.mark.parametrize("make,cls", [(gan_pipe, GANPipeline), (vae_pipe, VAEPipeline)])
def test_pipeline_save_load(tmp_path, make, cls):
    pipe = make()
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "model_index.json").is_file()
    loaded = cls.from_pretrained(tmp_path)
    np.testing.assert_array_equal(
        pipe(batch_size=2, generator=seeded(), output_type="np").images,
        loaded(batch_size=2, generator=seeded(), output_type="np").images,
    )


@pytest.mark.parametrize("make,cls", [(gan_pipe, GANPipeline), (vae_pipe, VAEPipeline)])
def test_pipeline_from_a_model_folder(tmp_path, make, cls):
    """`GANPipeline.from_pretrained("zoo/dcgan-mnist")`: a model folder (not a pipeline folder) builds the pipeline
    around the model, as users expect."""
    pipe = make()
    model = getattr(pipe, pipe.component)
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    labels = None
    assert torch.equal(
        pipe(batch_size=3, generator=g(), class_labels=labels, output_type="pt").images,
        loaded(batch_size=3, generator=g(), class_labels=labels, output_type="pt").images,
    )
    with pytest.raises(OSError, match="neither a pipeline folder"):
        cls.from_pretrained(tmp_path / "nothing-here")


def test_library_calls_are_quiet(tmp_path):
    """Saving and loading print no progress bars ("Writing model shards", "Loading weights") and no warnings, with
    the libraries' defaults (the test session's own quieting variables removed)."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import torch
        from conftest import tiny_gan_kwargs
        from hf_dgm import GANConfig, GANModel, GANPipeline
        GANModel(GANConfig(**tiny_gan_kwargs(use_ema=True))).save_pretrained({str(tmp_path)!r})
        GANModel.from_pretrained({str(tmp_path)!r})
        GANPipeline.from_pretrained({str(tmp_path)!r})
    """)
    quieting = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")
    env = {k: v for k, v in os.environ.items() if k not in quieting}
    env["PYTHONPATH"] = os.path.dirname(__file__)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "" and proc.stderr == "", proc.stderr[-2000:]


def _hub_cache(tmp_path, pipe, repo_id="owner/pipe", subfolder="sub"):
    """A Hub cache as huggingface_hub writes it (refs/<branch> -> snapshots/<commit>/...), with the pipeline saved in
    a subfolder of the repo at branch "dev"."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / f"models--{repo_id.replace('/', '--')}"
    pipe.save_pretrained(repo / "snapshots" / commit / subfolder)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "dev").write_text(commit)
    return tmp_path / "cache"


@pytest.mark.parametrize("make,cls", [(gan_pipe, GANPipeline), (vae_pipe, VAEPipeline)])
def test_from_pretrained_forwards_hub_arguments(tmp_path, make, cls):
    """local_files_only, cache_dir, revision and subfolder reach the download (offline: from a Hub cache), dtype and
    torch_dtype the model."""
    pipe = make()
    cache = _hub_cache(tmp_path, pipe)
    hub = dict(cache_dir=cache, revision="dev", subfolder="sub", local_files_only=True)
    loaded = cls.from_pretrained("owner/pipe", **hub)
    np.testing.assert_array_equal(
        pipe(batch_size=2, generator=seeded(), output_type="np").images,
        loaded(batch_size=2, generator=seeded(), output_type="np").images,
    )
    assert getattr(cls.from_pretrained("owner/pipe", **hub, torch_dtype=torch.float64), pipe.component).dtype == (
        torch.float64
    )
    from huggingface_hub.errors import LocalEntryNotFoundError

    with pytest.raises(LocalEntryNotFoundError):  # local_files_only: no download is tried for another revision
        cls.from_pretrained("owner/pipe", cache_dir=cache, revision="main", local_files_only=True)
    with pytest.raises(OSError, match="subfolder 'other'"):
        cls.from_pretrained("owner/pipe", cache_dir=cache, revision="dev", subfolder="other", local_files_only=True)
    pipe.save_pretrained(tmp_path / "local" / "sub")
    assert (
        getattr(cls.from_pretrained(tmp_path / "local", subfolder="sub", dtype=torch.float64), pipe.component).dtype
        == torch.float64
    )


@pytest.mark.parametrize("cls", [GANPipeline, VAEPipeline])
def test_from_pretrained_refuses_unknown_arguments(tmp_path, cls):
    with pytest.raises(ValueError, match=r"unsupported arguments \['low_cpu_mem_usage', 'varient'\]: expected some of"):
        cls.from_pretrained(tmp_path, varient="fp16", low_cpu_mem_usage=True)


def test_truncation_is_checked_before_drawing():
    pipe = gan_pipe()
    for bad in (0, -1.0, True, "0.5"):
        with pytest.raises(ValueError, match="truncation="):
            pipe(batch_size=2, truncation=bad)
    with pytest.raises(ValueError, match="batch_size=0"):
        pipe(batch_size=0, truncation=0.5)
    z = torch.full((1, 8), 3.0)  # given latents are clamped too
    torch.testing.assert_close(
        pipe(latents=z, truncation=0.5, output_type="pt").images,
        pipe(latents=torch.full((1, 8), 0.5), output_type="pt").images,
    )


def test_interpolation_defaults_to_the_family_path():
    """GANs interpolate spherically by default (latents of a Gaussian prior keep their norm), VAEs linearly."""
    gan, vae = gan_pipe(), vae_pipe()
    z0, z1 = torch.randn(8, generator=seeded(1)), torch.randn(8, generator=seeded(2))
    for pipe, a, b, method in ((gan, z0, z1, "spherical"), (vae, z0[:4], z1[:4], "linear")):
        default = pipe.interpolate(a, b, num_steps=4, output_type="pt").images
        torch.testing.assert_close(default, pipe.interpolate(a, b, num_steps=4, method=method, output_type="pt").images)
        other = "linear" if method == "spherical" else "spherical"
        assert not torch.equal(default, pipe.interpolate(a, b, num_steps=4, method=other, output_type="pt").images)
