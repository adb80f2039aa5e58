"""API tests of the Gradio app with gradio_client, against the app started on a free port with a tiny zoo."""

import numpy as np
import pytest
from PIL import Image, ImageDraw


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
