"""API tests of the Gradio app with gradio_client, against the app started on a free port with a tiny zoo."""

import numpy as np
import pytest
from PIL import Image, ImageDraw


def call_raw(url: str, api_name: str, data: list) -> str:
    """One call through Gradio's HTTP API without gradio_client; returns the event stream's text."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{url}/gradio_api/call/{api_name}",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    event_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["event_id"]
    return urllib.request.urlopen(f"{url}/gradio_api/call/{api_name}/{event_id}", timeout=60).read().decode()


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_generate_same_seed_same_images(client):
    a = client.predict("dcgan-mnist", "", 3, 6, "all", 1.0, api_name="/generate")
    b = client.predict("dcgan-mnist", "", 3, 6, "all", 1.0, api_name="/generate")
    shown_a, grid_a = a
    shown = Image.open(shown_a)
    assert np.array_equal(
        np.asarray(shown.resize((shown.width // 3, shown.height // 3), Image.NEAREST)), np.asarray(Image.open(grid_a))
    )  # the same grid, shown at 3x
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


def test_every_input_has_a_default(client):
    """A gradio_client call with only api_name works (it failed: "No value provided for required argument")."""
    shown, grid = client.predict(api_name="/generate")
    assert Image.open(grid).size == (2 + 4 * 30, 2 + 4 * 30)  # 16 images by default
    strip, _ = client.predict(api_name="/interpolate")
    assert Image.open(strip).size[0] == 2 + 10 * 30
    assert Image.open(client.predict(api_name="/explore")).size == (224, 224)


def test_non_finite_and_odd_inputs_give_one_clear_line(client, app_url, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    # gradio_client refuses to send NaN; a raw HTTP client can (JSON's NaN token)
    assert "must be a finite number" in call_raw(app_url, "generate", ["vae-mnist", "", 0, 4, "all", float("nan")])
    assert "z[0] must be a finite number" in call_raw(app_url, "explore", ["vae-mnist", "", 0, float("nan"), 0, 0, 0])
    with pytest.raises(AppError, match="A model name of 300 characters"):
        client.predict("dcgan-mnist", "x" * 300, 0, 4, "all", 1.0, api_name="/generate")
    with pytest.raises(AppError, match="^Draw a digit on the canvas or upload an image first.$"):
        client.predict("vae-mnist", "", None, None, 0, api_name="/reconstruct")
    (tmp_path / "notes.txt").write_text("not an image")
    png = tmp_path / "digit.png"
    Image.new("L", (64, 64), 255).save(png)
    (tmp_path / "cut.png").write_bytes(png.read_bytes()[:60])
    for name in ("notes.txt", "cut.png"):
        with pytest.raises(AppError, match="could not be read as an image"):
            client.predict("vae-mnist", "", None, handle_file(str(tmp_path / name)), 0, api_name="/reconstruct")


def test_transparent_upload_keeps_its_ink(client, tmp_path):
    """Black ink on a transparent (black, alpha 0) background: transparency is paper, not ink."""
    from gradio_client import handle_file

    drawing = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(drawing).line([(100, 20), (100, 180)], fill=(0, 0, 0, 255), width=16)
    drawing.save(tmp_path / "transparent.png")
    pre, *_ = client.predict(
        "vae-mnist", "", None, handle_file(str(tmp_path / "transparent.png")), 0, api_name="/reconstruct"
    )
    pre = np.asarray(Image.open(pre).convert("L"))
    assert pre.max() > 200 and pre[:, :30].max() == 0  # a white vertical stroke in the middle, black around it


def test_temporary_files_stay_bounded(client):
    """50 calls leave neither 50 files of the app's own (a ring of GIF names) nor 50 in Gradio's cache (cleaned
    every HF_DGM_APP_CACHE_TTL_S seconds: 3 in the test app)."""
    import time

    from conftest import APP_DIRS

    for seed in range(25):
        client.predict("dcgan-mnist", "", seed, 2, "all", 1.0, api_name="/generate")
        client.predict("dcgan-mnist", "", seed, seed + 1, 2, "linear", "0", "1", api_name="/interpolate")
    own = [p for p in APP_DIRS["tmp"].rglob("*") if p.is_file()]
    assert len(own) <= 8, own
    time.sleep(8)  # two clean-up periods
    cached = [p for p in APP_DIRS["gradio"].rglob("*") if p.is_file()]
    assert len(cached) < 20, len(cached)


def test_space_mode_does_not_tell_which_folders_exist(tmp_path, monkeypatch):
    """On a Space, an existing local folder and a missing one get the same answer."""
    import importlib.util

    import gradio as gr
    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("space_app", f"{REPO_ROOT}/spaces_app/app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    monkeypatch.setattr(app, "ON_SPACE", True)
    answers = []
    for path in (tmp_path, tmp_path / "missing", "/etc"):
        with pytest.raises(gr.Error) as err:
            app._resolve(str(path))
        answers.append(str(err.value.message).replace(repr(str(path)), "PATH"))
    assert len(set(answers)) == 1, answers
