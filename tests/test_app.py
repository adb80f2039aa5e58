"""API tests of the Gradio app with gradio_client, against the app started on a free port with a tiny zoo."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, tiny_gan_kwargs, tiny_vae_kwargs
from PIL import Image, ImageDraw

from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    zoo = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    GANModel(GANConfig(**tiny_gan_kwargs(use_ema=True))).save_pretrained(zoo / "dcgan-mnist")
    GANModel(GANConfig(**tiny_gan_kwargs(num_classes=10))).save_pretrained(zoo / "cdcgan-mnist")
    VAEModel(VAEConfig(**tiny_vae_kwargs(latent_dim=2))).save_pretrained(zoo / "vae2d-mnist")
    VAEModel(VAEConfig(**tiny_vae_kwargs())).save_pretrained(zoo / "vae-mnist")
    port = free_port()
    env = {**os.environ, "HF_DGM_ZOO": str(zoo), "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, os.path.join(REPO_ROOT, "spaces_app", "app.py")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
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
            raise RuntimeError(proc.stderr.read().decode()[-3000:])
    else:
        proc.kill()
        raise RuntimeError("the app did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_generate_same_seed_same_images(client):
    a = client.predict("dcgan-mnist", "", 3, 6, "all", 1.0, api_name="/generate")
    b = client.predict("dcgan-mnist", "", 3, 6, "all", 1.0, api_name="/generate")
    gallery_a, grid_a = a
    assert len(gallery_a) == 6
    assert np.array_equal(np.asarray(Image.open(grid_a)), np.asarray(Image.open(b[1])))
    grid = np.asarray(Image.open(grid_a))
    assert grid.shape == (2 + 2 * 30, 2 + 3 * 30)  # 6 images of 28 px with 2 px padding, 3 per row


def test_generate_bad_inputs_give_friendly_errors(client):
    from gradio_client.exceptions import AppError

    for args, needle in [
        (("dcgan-mnist", "", -5, 4, "all", 1.0), "seed must be between"),
        (("dcgan-mnist", "", 0, 65, "all", 1.0), "greater than maximum value 64"),
        (("dcgan-mnist", "nobody/not-a-model", 0, 4, "all", 1.0), "Could not load"),
        (("dcgan-mnist", "/definitely/not/here", 0, 4, "all", 1.0), "not a model"),
    ]:
        with pytest.raises(AppError, match=needle):
            client.predict(*args, api_name="/generate")


def test_conditional_interpolation_and_gif(client):
    strip, gif = client.predict("cdcgan-mnist", "", 0, 1, 5, "spherical", "3", "7", api_name="/interpolate")
    assert Image.open(strip).size == (2 + 5 * 30, 2 + 30)
    frames = Image.open(gif)
    assert frames.format == "GIF" and frames.n_frames == 8  # forth and back


def test_reconstruct_upload_and_blank(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    drawing = Image.new("RGBA", (300, 200), (255, 255, 255, 0))
    ImageDraw.Draw(drawing).line([(150, 30), (150, 170)], fill=(0, 0, 0, 255), width=18)  # a "1", RGBA
    path = tmp_path / "one.png"
    drawing.save(path)
    pre, rec, _, _, variations = client.predict(
        "vae-mnist", "", None, handle_file(str(path)), 0, api_name="/reconstruct"
    )
    pre = np.asarray(Image.open(pre).convert("L"))
    assert pre.shape == (140, 140) and pre.max() > 200 and pre[:10].max() == 0  # white ink, centred, black border
    assert Image.open(variations).size[0] > Image.open(variations).size[1]
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    with pytest.raises(AppError, match="blank"):
        client.predict("vae-mnist", "", None, handle_file(str(blank)), 0, api_name="/reconstruct")
    with pytest.raises(AppError, match="needs a VAE"):
        client.predict("dcgan-mnist", "", None, handle_file(str(path)), 0, api_name="/reconstruct")


def test_explore_manifold(client):
    manifold = client.predict("vae2d-mnist", "", 0, 0, 0, 0, 0, api_name="/explore")
    assert Image.open(manifold).size == (15 * 28, 15 * 28)
    single = client.predict("vae-mnist", "", 0, 1.5, -1, 0, 0, api_name="/explore")
    assert Image.open(single).size == (224, 224)
