"""API tests of the Gradio app with gradio_client, against the app started on a free port with a tiny zoo."""

import re

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
        (("dcgan-mnist", "", -5, 4, "all", 1.0), "^The seed must be a whole number from 0 to 2147483647, got -5.$"),
        (("dcgan-mnist", "", 0, 65, "all", 1.0), "^The number of images must be a whole number from 1 to 64, got 65.$"),
        (("dcgan-mnist", "nobody/not-a-model", 0, 4, "all", 1.0), "Could not load"),
        (("dcgan-mnist", "/definitely/not/here", 0, 4, "all", 1.0), "not a model"),
    ]:
        with pytest.raises(AppError, match=needle):
            client.predict(*args, api_name="/generate")


def test_conditional_interpolation_and_gif(client):
    strip, gif = client.predict("cdcgan-mnist", "", 0, 1, 5, "spherical", "3", "7", api_name="/interpolate")
    assert Image.open(strip).size == (3 * (2 + 5 * 30), 3 * (2 + 30))  # the 28-px frames shown at 3x
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
    with pytest.raises(AppError, match="^The Draw tab is for digit models.*: dcgan-mnist is a 28x28 grey GAN.$"):
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
    assert Image.open(strip).size[0] == 3 * (2 + 10 * 30)
    assert Image.open(client.predict(api_name="/explore")).size == (224, 224)


def test_non_finite_and_odd_inputs_give_one_clear_line(client, app_url, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    # gradio_client refuses to send NaN; a raw HTTP client can (JSON's NaN token)
    assert "must be a finite number" in call_raw(app_url, "generate", ["vae-mnist", "", 0, 4, "all", float("nan")])
    assert "z[0] must be a finite number" in call_raw(
        app_url, "explore", ["vae-mnist", "", 0, float("nan"), 0, 0, 0, None]
    )
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


def test_cache_clean_up_survives_files_added_while_it_runs(app_module):
    """Gradio's clean-up walks the components' file sets in a thread while requests add to them: a set that changed
    size during the walk stopped the clean-up for good (test_temporary_files_stay_bounded failed now and then)."""
    app = app_module.build_app()
    sets = app.temp_file_sets
    assert sets[0] is app.upload_file_set and all(isinstance(s, app_module.SnapshotSet) for s in sets)
    component = next(b for b in app.blocks.values() if isinstance(b, app_module.gr.components.Component))
    assert any(s is component.temp_files for s in sets)
    component.temp_files.update({"a", "b"})
    for name in component.temp_files:  # a plain set raises RuntimeError here
        component.temp_files.add(name + "-new")
    assert component.temp_files == {"a", "b", "a-new", "b-new"}


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


# ------------------------------------------------------------------------------------------ colour models
EMOJI_GROUPS = [
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
]


@pytest.fixture(scope="module")
def colour_models(tmp_path_factory):
    """Tiny stand-ins for the colour zoo models, as local folders the app is given by path: a conditional residual
    GAN at 32x32 RGB whose config names its 9 classes (id2label), a 64x64 RGB VAE, and a conditional digit GAN saved
    without names, as the MNIST models are."""
    import torch
    from conftest import tiny_gan_kwargs, tiny_vae_kwargs

    from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel

    root = tmp_path_factory.mktemp("colour_models")
    torch.manual_seed(0)
    gan = GANModel(
        GANConfig(
            **tiny_gan_kwargs(
                architecture="resnet",
                image_size=32,
                num_channels=3,
                num_classes=len(EMOJI_GROUPS),
                id2label=dict(enumerate(EMOJI_GROUPS)),
                # self-conditioned within the groups, as the zoo's: the app asks for groups, the latent picks clusters
                cluster_frequencies=[1 / 12] * 12,
                cluster_classes=[0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 8],
            )
        )
    )
    with torch.no_grad():  # the class-conditional BatchNorms start as the identity for every class: make them differ
        for name, parameter in gan.named_parameters():
            if name.endswith("scale_shift"):
                parameter.add_(0.5 * torch.randn_like(parameter))
    gan.save_pretrained(root / "gan-emoji")
    VAEModel(VAEConfig(**tiny_vae_kwargs(image_size=64, num_channels=3))).save_pretrained(root / "vae-emoji")
    GANModel(GANConfig(**tiny_gan_kwargs(num_classes=10))).save_pretrained(root / "cdcgan-digits")
    return {name: str(root / name) for name in ("gan-emoji", "vae-emoji", "cdcgan-digits")}


@pytest.fixture(scope="module")
def app_module():
    """The app imported in this process, to call its event functions directly."""
    import importlib.util

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("space_app_in_process", f"{REPO_ROOT}/spaces_app/app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def tiles(grid: np.ndarray, size: int, padding: int = 2) -> list:
    """The images of a make_grid grid (row by row), each (size, size, C)."""
    step = size + padding
    rows, cols = (grid.shape[0] - padding) // step, (grid.shape[1] - padding) // step
    return [
        grid[padding + r * step : padding + r * step + size, padding + c * step : padding + c * step + size]
        for r in range(rows)
        for c in range(cols)
    ]


def choice_values(dropdown) -> list:
    return [value for _, value in dropdown.choices]


def test_class_names_come_from_id2label_or_fall_back_to_ids(app_module):
    from hf_dgm import GANConfig

    assert app_module.class_names(GANConfig(num_classes=3, id2label={0: "cat", 1: "dog", 2: "fish"})) == [
        "cat",
        "dog",
        "fish",
    ]
    assert app_module.class_names({"num_classes": 3, "id2label": {"0": "cat", "1": "dog", "2": "fish"}}) == [
        "cat",
        "dog",
        "fish",
    ]  # config.json's string keys
    digits = [str(i) for i in range(10)]
    assert app_module.class_names(GANConfig(num_classes=10)) == digits  # transformers' default LABEL_0, LABEL_1
    assert app_module.class_names(GANConfig(num_classes=2)) == ["0", "1"]  # not "LABEL_0", "LABEL_1"
    assert app_module.class_names({"num_classes": 3, "id2label": {"0": "cat"}}) == ["0", "1", "2"]  # names missing
    assert app_module.class_names(GANConfig()) == []  # unconditional


def test_class_dropdowns_follow_the_model(app_module, colour_models):
    generate_dd, a, b, explore_dd, image_dd = app_module.class_choices("", colour_models["gan-emoji"])
    assert choice_values(generate_dd) == ["all", *EMOJI_GROUPS] and generate_dd.value == "all"
    assert choice_values(a) == choice_values(b) == choice_values(explore_dd) == choice_values(image_dd) == EMOJI_GROUPS
    assert (a.value, b.value, explore_dd.value) == ("Smileys & Emotion", "People & Body", "Smileys & Emotion")
    # a choice the new model also has is kept; a digit is not an emoji group
    kept = app_module.class_choices("", colour_models["gan-emoji"], "Flags", "Objects", "3", None, "Objects")
    assert [d.value for d in kept] == ["Flags", "Objects", "People & Body", "Smileys & Emotion", "Objects"]
    # a digit model saved without names (the MNIST models) offers "0".."9"
    digits = [str(i) for i in range(10)]
    generate_dd, a, b, *_ = app_module.class_choices("", colour_models["cdcgan-digits"], "Flags", None, None, None)
    assert choice_values(generate_dd) == ["all", *digits] and generate_dd.value == "all"
    assert choice_values(a) == digits and (a.value, b.value) == ("0", "1")
    # an unconditional model: only "all", nothing to pick
    generate_dd, a, b, explore_dd, image_dd = app_module.class_choices("", colour_models["vae-emoji"])
    assert choice_values(generate_dd) == ["all"] and choice_values(a) == [] and a.value is None
    assert not generate_dd.interactive and not explore_dd.interactive and not image_dd.interactive


def test_the_model_selector_updates_the_class_dropdowns(app_module):
    """The wiring: picking a model (or typing one) runs class_choices, whose outputs are the five class dropdowns."""
    app = app_module.build_app()
    config = app.get_config_file()
    labels = {c["id"]: c["props"].get("label") for c in config["components"]}
    (dependency,) = [d for d in config["dependencies"] if any(t[1] == "blur" for t in d["targets"])]
    assert sorted(t[1] for t in dependency["targets"]) == ["blur", "change", "submit"]
    assert [labels[i] for i in dependency["outputs"]] == [
        "Class (conditional models)",
        "Class A (conditional)",
        "Class B (conditional)",
        "Class (conditional)",
        "Class of the pictures (conditional)",
    ]
    assert "Digit" not in str(labels.values())


def test_colour_gan_generate_with_a_named_class_and_all(client, colour_models):
    from gradio_client.exceptions import AppError

    gan = colour_models["gan-emoji"]
    shown, grid = client.predict("dcgan-mnist", gan, 5, 9, "all", 1.0, api_name="/generate")
    grid_all = np.asarray(Image.open(grid))
    assert grid_all.shape == (2 + 3 * 34, 2 + 3 * 34, 3)  # 9 RGB images of 32 px, 3 per row, at 1x
    shown = Image.open(shown)
    assert shown.size == (3 * grid_all.shape[1], 3 * grid_all.shape[0])  # shown at 3x: 96-px tiles
    assert np.array_equal(np.asarray(shown.resize((shown.width // 3, shown.height // 3), Image.NEAREST)), grid_all)
    by_class = {}
    for name in ("People & Body", "Animals & Nature"):
        _, grid = client.predict("dcgan-mnist", gan, 5, 9, name, 1.0, api_name="/generate")
        by_class[name] = tiles(np.asarray(Image.open(grid)), 32)
    # "all" draws image i from class i % 9; a named class draws every image from that class (same latents)
    assert np.array_equal(tiles(grid_all, 32)[1], by_class["People & Body"][1])
    assert np.array_equal(tiles(grid_all, 32)[2], by_class["Animals & Nature"][2])
    assert not np.array_equal(by_class["People & Body"][1], by_class["Animals & Nature"][1])
    # a class id works too (API callers); an unknown name gets one clear line
    _, grid = client.predict("dcgan-mnist", gan, 5, 9, "1", 1.0, api_name="/generate")
    assert np.array_equal(tiles(np.asarray(Image.open(grid)), 32)[1], by_class["People & Body"][1])
    with pytest.raises(AppError, match="^'Dogs' is not a class of .*gan-emoji: expected one of 'Smileys & Emotion'"):
        client.predict("dcgan-mnist", gan, 5, 9, "Dogs", 1.0, api_name="/generate")


def test_colour_gan_interpolate_and_explore(client, colour_models):
    gan = colour_models["gan-emoji"]
    strip, gif = client.predict(
        "dcgan-mnist", gan, 0, 1, 4, "spherical", "Smileys & Emotion", "Flags", api_name="/interpolate"
    )
    strip = np.asarray(Image.open(strip))
    assert strip.shape == (3 * (2 + 34), 3 * (2 + 4 * 34), 3)  # 4 RGB frames of 32 px on a row, at 3x
    frames = Image.open(gif)
    assert frames.n_frames == 6 and frames.size == (128, 128)  # forth and back; 32 px at 4x
    smileys = client.predict("dcgan-mnist", gan, 0, 1.0, 0, 0, 0, "Smileys & Emotion", api_name="/explore")
    flags = client.predict("dcgan-mnist", gan, 0, 1.0, 0, 0, 0, "Flags", api_name="/explore")
    smileys, flags = np.asarray(Image.open(smileys)), np.asarray(Image.open(flags))
    assert smileys.shape == (224, 224, 3)  # 32 px at 7x
    assert not np.array_equal(smileys, flags)  # the class is used


def test_colour_vae_generate_interpolate_and_explore(client, colour_models):
    vae = colour_models["vae-emoji"]
    shown, grid = client.predict("dcgan-mnist", vae, 0, 4, "all", 1.0, api_name="/generate")
    grid = np.asarray(Image.open(grid))
    assert grid.shape == (2 + 2 * 66, 2 + 2 * 66, 3)  # 4 RGB images of 64 px at 1x
    assert Image.open(shown).size == (2 * grid.shape[1], 2 * grid.shape[0])  # shown at 2x: 128-px tiles
    strip, _ = client.predict("dcgan-mnist", vae, 0, 1, 3, "linear", None, None, api_name="/interpolate")
    assert np.asarray(Image.open(strip)).shape == (2 * (2 + 66), 2 * (2 + 3 * 66), 3)
    explored = client.predict("dcgan-mnist", vae, 0, 1.0, -1.0, 0, 0, api_name="/explore")
    assert np.asarray(Image.open(explored)).shape == (256, 256, 3)  # 64 px at 4x


def test_draw_tab_refuses_colour_models(client, colour_models, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    drawing = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(drawing).line([(100, 20), (100, 180)], fill=0, width=16)
    drawing.save(tmp_path / "one.png")
    for model, what in (("vae-emoji", "a 64x64 RGB VAE"), ("gan-emoji", "a 32x32 RGB GAN with 9 classes")):
        with pytest.raises(AppError, match=f"^The Draw tab is for digit models, 28x28 grey VAEs .*{model} is {what}.$"):
            client.predict(
                "vae-mnist",
                colour_models[model],
                None,
                handle_file(str(tmp_path / "one.png")),
                0,
                api_name="/reconstruct",
            )


# ------------------------------------------------------------------------------------------ issue 27: the app
def call_from(url: str, api_name: str, data: list, source: str = "127.0.0.1") -> tuple[int, str]:
    """Join the queue through Gradio's HTTP API from a local source address (another address is another visitor):
    (200, the event id) or (the refusal's status, its body)."""
    import http.client
    import json

    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    connection.request(
        "POST", f"/gradio_api/call/{api_name}", json.dumps({"data": data}), {"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    body = response.read().decode()
    return response.status, json.loads(body)["event_id"] if response.status == 200 else body


def result_of(url: str, api_name: str, event_id: str) -> str:
    """The event stream of a call that joined the queue, once it has finished."""
    import urllib.request

    return urllib.request.urlopen(f"{url}/gradio_api/call/{api_name}/{event_id}", timeout=120).read().decode()


@pytest.fixture(scope="module")
def slow_models(tmp_path_factory):
    """Tiny VAEs that decode pixel by pixel (slow models: their own lane, at most 16 images a request), at 48 px and
    12 px with a 3x3 window, and at 128 px with a 7x7 one (16 images in about 0.25 s and 0.8 s of one core)."""
    from conftest import tiny_vae_kwargs

    from hf_dgm import VAEConfig, VAEModel

    root = tmp_path_factory.mktemp("slow_models")
    models = {"pixel-vae": (48, 3), "small-pixel-vae": (12, 3), "large-pixel-vae": (128, 7)}
    for name, (size, window) in models.items():
        kwargs = tiny_vae_kwargs(
            image_size=size, likelihood="logistic_mixture", pixel_context=window, pixel_context_channels=4
        )
        VAEModel(VAEConfig(**kwargs)).save_pretrained(root / name)
    return {name: str(root / name) for name in models}


def test_one_visitor_cannot_fill_the_queue_and_slow_models_have_their_own_lane(app_url, slow_models):
    """A burst of 8 requests for a slow model from one visitor, sent at once: 4 join the queue, the rest are told
    "busy" in words; of those 4, the slow lane takes 2 (1 running, 1 waiting) and refuses the others. Meanwhile
    another visitor's 1-image request on a fast model is served. (Before: all 8 queued, and the fast one waited
    behind them.) The largest slow model, so that none of the burst finishes before the last of it arrives."""
    from concurrent.futures import ThreadPoolExecutor

    request = ["dcgan-mnist", slow_models["large-pixel-vae"], 0, 16, "all", 1.0]
    with ThreadPoolExecutor(8) as pool:
        burst = list(
            pool.map(lambda seed: call_from(app_url, "generate", [*request[:2], seed, *request[3:]]), range(8))
        )
    refused = [body for status, body in burst if status != 200]
    assert len(refused) == 4 and all(status == 422 for status, _ in burst if status != 200)
    assert all("Busy: you have 4 requests queued or running" in body and "Try again" in body for body in refused)
    status, event = call_from(app_url, "generate", ["dcgan-mnist", "", 0, 1, "all", 1.0], source="127.0.0.2")
    assert status == 200 and "event: complete" in result_of(app_url, "generate", event)
    answers = [result_of(app_url, "generate", event) for status, event in burst if status == 200]
    busy = [a for a in answers if "event: error" in a]
    assert len(busy) == 2 and all("slow model (it decodes pixel by pixel)" in a and "Try again" in a for a in busy)
    assert sum("event: complete" in a for a in answers) == 2


def test_slow_and_large_models_have_a_lower_image_cap(client, slow_models, colour_models):
    from gradio_client.exceptions import AppError

    vae = slow_models["pixel-vae"]
    with pytest.raises(AppError, match=r"^The number of images must be a whole number from 1 to 16 for .*pixel-vae"):
        client.predict("dcgan-mnist", vae, 0, 17, "all", 1.0, api_name="/generate")
    with pytest.raises(AppError, match=r"^The number of steps must be a whole number from 2 to 16 for .*pixel-vae"):
        client.predict("dcgan-mnist", vae, 0, 1, 17, "linear", api_name="/interpolate")
    _, grid = client.predict("dcgan-mnist", vae, 0, 16, "all", 1.0, api_name="/generate")
    assert Image.open(grid).size == (2 + 4 * 50, 2 + 4 * 50)
    manifold = client.predict("dcgan-mnist", vae, 0, 0, 0, 0, 0, api_name="/explore")
    assert Image.open(manifold).size == (240, 240)  # not a 2-d VAE: one image at 48 px, shown at 5x


def test_requests_are_drawn_in_chunks_within_the_budget(app_module, slow_models, colour_models, monkeypatch):
    """The budget counts the batch: with the activation budget set to what one image of the model needs (a model at
    the limit), a 12-image request runs the network on one image at a time, and draws the images one batch of the
    pipeline draws (the pixel context's draws included); a model above the limit is refused in one line."""
    import torch

    from hf_dgm.image_processing import to_uint8

    batches = []
    for path in (colour_models["gan-emoji"], slow_models["small-pixel-vae"]):
        model = app_module._model("", path)
        latents = torch.randn(12, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
        labels = [i % 9 for i in range(12)] if model.config.num_classes else None
        whole = to_uint8(model.pipe(latents=latents, class_labels=labels, output_type="pt").images)
        network = getattr(model.pipe, model.pipe.component).sampling_network
        hook = network.register_forward_hook(lambda m, inputs, out: batches.append(inputs[0].shape[0]))
        monkeypatch.setattr(app_module, "MAX_ACTIVATIONS", model.activations)
        batches.clear()
        chunked = app_module.draw(model, latents, labels)  # the same images, to float rounding (batch-size kernels)
        hook.remove()
        assert batches == [1] * 12
        assert np.abs(chunked.astype(int) - whole).max() <= 1
    app_module.load_pipeline.cache_clear()
    monkeypatch.setattr(app_module, "MAX_ACTIVATIONS", model.activations - 1)
    with pytest.raises(app_module.gr.Error) as err:
        app_module._model("", slow_models["small-pixel-vae"])
    assert re.match(r"'.*small-pixel-vae' \(VAEConfig\) needs [\d,]+ activation values to draw one", err.value.message)
    app_module.load_pipeline.cache_clear()


def test_large_models_run_in_the_slow_lane(app_module, colour_models, monkeypatch):
    model = app_module._model("", colour_models["gan-emoji"])
    assert model.slow == "" and model.max_images == 64
    parameters, activations = app_module.footprint(colour_models["gan-emoji"])
    monkeypatch.setattr(app_module, "SLOW_PARAMETERS", parameters - 1)
    big = app_module._model("", colour_models["gan-emoji"])
    assert big.slow.endswith("M parameters") and big.max_images == 16


def test_uploads_are_checked_before_they_are_decoded(client, tmp_path):
    """Too large a file, a PNG declaring 100000^2 pixels (PIL's DecompressionBombError) or more than the app's
    pixel limit: one line each, without a server path. A large JPEG decodes at a reduced scale and is taken."""
    import struct
    import zlib

    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def png_header(width, height):  # a PNG's signature, size and an empty first data chunk: 57 bytes
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")

    (tmp_path / "bomb.png").write_bytes(png_header(100_000, 100_000))
    Image.new("L", (4200, 4200), 255).save(tmp_path / "large.png")
    for name, needle in [("bomb.png", "declares too many pixels"), ("large.png", "is 4200x4200 pixels")]:
        with pytest.raises(AppError) as err:
            client.predict("vae-mnist", "", None, handle_file(str(tmp_path / name)), 0, api_name="/reconstruct")
        assert needle in str(err.value) and "/" not in str(err.value)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(AppError) as err:
        client.predict("vae-mnist", "", None, handle_file(str(tmp_path / "notes.txt")), 0, api_name="/reconstruct")
    assert str(err.value).startswith("The upload could not be read as an image") and "/" not in str(err.value)
    sketch = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "bomb.png"))}
    with pytest.raises(AppError, match="^The drawing declares too many pixels"):
        client.predict("vae-mnist", "", sketch, None, 0, api_name="/reconstruct")
    photo = Image.new("L", (6000, 6000), 255)
    ImageDraw.Draw(photo).line([(3000, 600), (3000, 5400)], fill=0, width=500)
    photo.save(tmp_path / "photo.jpg", quality=50)
    pre, *_ = client.predict(
        "vae-mnist", "", None, handle_file(str(tmp_path / "photo.jpg")), 0, api_name="/reconstruct"
    )
    assert np.asarray(Image.open(pre).convert("L")).max() > 200
    (tmp_path / "huge.bin").write_bytes(b"\0" * (10 * 2**20 + 1))
    with pytest.raises(Exception, match="413|too large|exceeds"):
        client.predict("vae-mnist", "", None, handle_file(str(tmp_path / "huge.bin")), 0, api_name="/reconstruct")


def test_reconstruct_takes_either_input_alone(client, tmp_path):
    """Through the API, /reconstruct takes a sketch or an upload: both were required parameters."""
    from gradio_client import handle_file

    drawing = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(drawing).line([(140, 40), (140, 240)], fill=0, width=20)
    drawing.save(tmp_path / "one.png")
    by_upload = client.predict(
        choice="vae-mnist", upload=handle_file(str(tmp_path / "one.png")), api_name="/reconstruct"
    )
    sketch = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "one.png"))}
    by_sketch = client.predict(choice="vae-mnist", sketch=sketch, api_name="/reconstruct")
    assert np.array_equal(np.asarray(Image.open(by_upload[0])), np.asarray(Image.open(by_sketch[0])))


def test_space_mode_messages_name_no_server_path(app_module, tmp_path, monkeypatch):
    """A model that fails to load on a Space is named as the visitor named it, not by its folder on the server."""
    import gradio as gr

    (tmp_path / "dcgan-mnist").mkdir()
    (tmp_path / "dcgan-mnist" / "config.json").write_text("{not json")
    monkeypatch.setenv("HF_DGM_ZOO", str(tmp_path))
    monkeypatch.setattr(app_module, "ON_SPACE", True)
    with pytest.raises(gr.Error) as err:
        app_module._model("dcgan-mnist", "")
    assert err.value.message.startswith("'dcgan-mnist/config.json' is not valid JSON") and str(tmp_path) not in str(err)


def test_every_input_is_checked_in_one_line_and_logged_in_one(client, app_url, tmp_path):
    """NaN, None and wrong types for every kind of input; a local config.json that isn't JSON; a pipeline folder. Each
    gets one line, and the server log one line per refusal, no traceback."""
    import json

    from conftest import APP_DIRS, tiny_vae_kwargs
    from gradio_client.exceptions import AppError

    from hf_dgm import VAEConfig, VAEModel, VAEPipeline

    nan = float("nan")
    cases = [
        ("generate", ["vae-mnist", "", 0, nan, "all", 1.0], "The number of images must be a whole number"),
        ("generate", ["vae-mnist", "", 0, None, "all", 1.0], "The number of images must be a whole number"),
        ("generate", ["vae-mnist", "", "7", 4, "all", 1.0], "The seed must be a whole number from 0 to"),
        ("generate", ["vae-mnist", "", 1.5, 4, "all", 1.0], "The seed must be a whole number"),
        ("generate", ["vae-mnist", "", True, 4, "all", 1.0], "The seed must be a whole number"),
        ("generate", ["vae-mnist", "", 0, 4, "all", "x"], "The truncation / temperature must be a finite number"),
        ("generate", [["vae-mnist"], "", 0, 4, "all", 1.0], "The model must be text, got list"),
        ("generate", ["vae-mnist", 5, 0, 4, "all", 1.0], "The model repo id must be text, got int"),
        ("interpolate", ["vae-mnist", "", 0, 1, nan, "linear", None, None], "The number of steps must be a whole"),
        ("interpolate", ["vae-mnist", "", 0, 1, 4, None, None, None], "The path must be 'spherical' or 'linear'"),
        ("explore", ["vae-mnist", "", 0, 0, {}, 0, 0, None], "z[1] must be a finite number"),
        ("reconstruct", ["vae-mnist", "", None, None, nan], "The seed must be a whole number"),
        ("reconstruct", ["vae-mnist", "", "abc", None, 0], "The drawing must be an image editor's value, got str"),
        ("reconstruct", ["vae-mnist", "", None, 5, 0], "The upload must be a file (gradio_client's handle_file), got"),
    ]
    log_before = APP_DIRS["log"].read_text().count("refused:")
    for api_name, data, needle in cases:
        answer = call_raw(app_url, api_name, data)
        assert "event: error" in answer and needle in answer, (api_name, data, answer)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "hf_dgm_vae",')
    with pytest.raises(AppError, match=r"^'.*broken/config.json' is not valid JSON: .*line 1"):
        client.predict("vae-mnist", str(broken), 0, 4, "all", 1.0, api_name="/generate")
    VAEPipeline(vae=VAEModel(VAEConfig(**tiny_vae_kwargs()))).save_pretrained(tmp_path / "pipeline")
    assert json.loads((tmp_path / "pipeline" / "model_index.json").read_text())["vae"]
    _, grid = client.predict("vae-mnist", str(tmp_path / "pipeline"), 0, 4, "all", 1.0, api_name="/generate")
    assert Image.open(grid).size == (2 + 2 * 30, 2 + 2 * 30)
    (tmp_path / "empty-pipeline").mkdir()
    (tmp_path / "empty-pipeline" / "model_index.json").write_text("{}")
    with pytest.raises(AppError, match=r"is a pipeline folder \(model_index.json\) without one hf-dgm model"):
        client.predict("vae-mnist", str(tmp_path / "empty-pipeline"), 0, 4, "all", 1.0, api_name="/generate")
    with pytest.raises(AppError, match="seed must be"):  # an expected error of a well-formed request
        client.predict("vae-mnist", "", -5, 4, "all", 1.0, api_name="/generate")
    log = APP_DIRS["log"].read_text()
    assert log.count("refused:") - log_before == len(cases) + 3
    assert "Traceback" not in log, log[-3000:]


# ------------------------------------------------------------------------------------------ your image (VAEs)
def picture(path, shape: str = "disc", size=(300, 200), colour=(220, 30, 30, 255)):
    """A colour picture on a transparent background (RGBA), saved as PNG: a disc or a square."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    box = (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4)
    (draw.ellipse if shape == "disc" else draw.rectangle)(box, fill=colour)
    image.save(path)
    return str(path)


def shown_at(path, scale: int) -> np.ndarray:
    """An image the app shows upscaled by a whole factor (nearest neighbour), back at 1x."""
    image = Image.open(path)
    return np.asarray(image.resize((image.width // scale, image.height // scale), Image.NEAREST))


@pytest.fixture(scope="module")
def picture_vae(tmp_path_factory):
    """A tiny 64x64 RGB VAE (conv) whose weights are moved from their init, so that its images follow its latent."""
    import torch
    from conftest import tiny_vae_kwargs

    from hf_dgm import VAEConfig, VAEModel

    torch.manual_seed(0)
    model = VAEModel(VAEConfig(**tiny_vae_kwargs(image_size=64, num_channels=3, latent_dim=8)))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.15 * torch.randn_like(parameter))
    folder = tmp_path_factory.mktemp("picture_vae") / "vae-pictures"
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def hierarchical_vae(tmp_path_factory):
    """A tiny conditional hierarchical colour VAE at 32 px (groups at 4, 8 and 16 px) whose posterior is not its
    prior (its posterior corrections switched on)."""
    import torch

    from hf_dgm import VAEConfig, VAEModel

    torch.manual_seed(0)
    config = VAEConfig(
        architecture="hierarchical", image_size=32, num_channels=3, likelihood="logistic_mixture", num_mixtures=2,
        latent_groups=[4, 8, 16], latent_dim=336, base_channels=2, num_classes=3,
        id2label={0: "cats", 1: "dogs", 2: "fish"},
    )  # fmt: skip
    model = VAEModel(config)
    with torch.no_grad():
        for group in model.decoder.groups:
            group.posterior[-1].weight.normal_(std=0.3)
    folder = tmp_path_factory.mktemp("hierarchical") / "hvae-colour"
    model.save_pretrained(folder)
    return str(folder)


def test_your_image_reconstructs_and_samples_near_its_latent(client, picture_vae, tmp_path):
    """An RGBA picture on a transparent background, 300x200: shown as the 64x64 RGB VAE takes it (on white, padded to
    a square), its reconstruction is the pipeline's of that picture, and the seeded samples near it repeat."""
    import torch
    from gradio_client import handle_file

    from hf_dgm import VAEModel, VAEPipeline

    vae, upload = picture_vae, handle_file(picture(tmp_path / "disc.png"))
    seen, rec, near = client.predict("dcgan-mnist", vae, upload, 3, 5, 1.0, None, api_name="/your_image")
    seen, rec = shown_at(seen, 4), shown_at(rec, 4)  # 64 px shown at 4x
    assert seen.shape == rec.shape == (64, 64, 3)
    assert (seen[:4] == 255).all() and (seen[:, :4] == 255).all()  # transparency and padding are white
    assert tuple(seen[32, 32]) == (220, 30, 30)  # the disc, in the middle
    pipe = VAEPipeline(vae=VAEModel.from_pretrained(vae))
    x = torch.from_numpy(seen.astype(np.float32) / 255).permute(2, 0, 1)[None]
    expected = np.asarray(pipe.reconstruct(x)[0][0])
    assert np.abs(rec.astype(int) - expected).max() <= 1  # the same, to a batch's float rounding
    grid = shown_at(near, 2)  # 5 samples of 64 px, 3 per row, shown at 2x
    assert grid.shape == (2 + 2 * 66, 2 + 3 * 66, 3)
    again = client.predict("dcgan-mnist", vae, upload, 3, 5, 1.0, None, api_name="/your_image")[2]
    other = client.predict("dcgan-mnist", vae, upload, 4, 5, 1.0, None, api_name="/your_image")[2]
    assert np.array_equal(np.asarray(Image.open(near)), np.asarray(Image.open(again)))
    assert not np.array_equal(np.asarray(Image.open(near)), np.asarray(Image.open(other)))
    # at spread 0 every sample is the posterior mean's image: the reconstruction
    still = tiles(shown_at(client.predict("", vae, upload, 3, 5, 0.0, None, api_name="/your_image")[2], 2), 64)
    assert all(np.abs(tile.astype(int) - rec).max() <= 1 for tile in still[:5])


def test_interpolate_between_two_uploads(client, picture_vae, tmp_path):
    """The frames between two pictures' latents: as many as asked, the first and last the pictures'
    reconstructions, the middle neither."""
    from gradio_client import handle_file

    vae = picture_vae
    disc = handle_file(picture(tmp_path / "disc.png"))
    square = handle_file(picture(tmp_path / "square.png", "square", (120, 160), (30, 60, 200, 255)))
    strip, gif = client.predict("", vae, disc, square, 5, 0, None, api_name="/interpolate_images")
    frames = tiles(shown_at(strip, 2), 64)
    assert len(frames) == 5 and Image.open(gif).n_frames == 8  # forth and back
    for upload, frame in ((disc, frames[0]), (square, frames[-1])):
        rec = shown_at(client.predict("", vae, upload, 0, 1, 1.0, None, api_name="/your_image")[1], 4)
        assert np.abs(frame.astype(int) - rec).max() <= 1
    assert np.abs(frames[2].astype(int) - frames[0]).max() > 2 and np.abs(frames[2].astype(int) - frames[4]).max() > 2


def test_your_image_with_a_hierarchical_and_a_pixel_by_pixel_vae(client, hierarchical_vae, slow_models, tmp_path):
    """One code path for every VAE: a conditional hierarchical VAE (its latent is every group's, along the posterior's
    mean path) and a VAE that decodes pixel by pixel (seeded draws; the slow models' lower cap)."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    upload, square = handle_file(picture(tmp_path / "disc.png")), handle_file(picture(tmp_path / "sq.png", "square"))
    seen, rec, near = client.predict("", hierarchical_vae, upload, 0, 3, 0.0, "dogs", api_name="/your_image")
    rec = shown_at(rec, 7)  # 32 px shown at 7x
    assert shown_at(seen, 7).shape == rec.shape == (32, 32, 3)
    assert all(np.abs(tile.astype(int) - rec).max() <= 1 for tile in tiles(shown_at(near, 3), 32)[:3])
    _, cats, _ = client.predict("", hierarchical_vae, upload, 0, 3, 0.0, "cats", api_name="/your_image")
    assert not np.array_equal(shown_at(cats, 7), rec)  # the class is used
    strip, _ = client.predict("", hierarchical_vae, upload, square, 4, 0, "dogs", api_name="/interpolate_images")
    assert np.abs(tiles(shown_at(strip, 3), 32)[0].astype(int) - rec).max() <= 1
    slow = slow_models["small-pixel-vae"]  # 12 px: shown at 19x, samples at 8x
    first = client.predict("", slow, upload, 5, 15, 1.0, None, api_name="/your_image")
    again = client.predict("", slow, upload, 5, 15, 1.0, None, api_name="/your_image")
    assert all(np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))) for a, b in zip(first, again))
    assert shown_at(first[1], 19).shape == (12, 12)  # grey
    with pytest.raises(AppError, match=r"^The number of samples must be a whole number from 1 to 15 for .*pixel-vae"):
        client.predict("", slow, upload, 5, 16, 1.0, None, api_name="/your_image")
    with pytest.raises(AppError, match=r"^The number of steps must be a whole number from 2 to 16 for .*pixel-vae"):
        client.predict("", slow, upload, square, 17, 0, None, api_name="/interpolate_images")


def test_bad_uploads_get_one_line(client, app_url, colour_models, tmp_path):
    """Not a VAE, no picture, fully transparent, not an image, a bomb's declared size, too many pixels, too large a
    file, a payload that is not a file, NaN: one line each, naming no server path."""
    import struct
    import zlib

    from conftest import APP_DIRS
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    def png_header(width, height):  # a PNG's signature, size and an empty first data chunk
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")

    vae, disc = colour_models["vae-emoji"], handle_file(picture(tmp_path / "disc.png"))
    Image.new("RGBA", (50, 40), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("P", (50, 40)).save(tmp_path / "clear.gif", transparency=0)
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "bomb.png").write_bytes(png_header(100_000, 100_000))
    Image.new("RGB", (4200, 4200), "white").save(tmp_path / "large.png")
    log_before = APP_DIRS["log"].read_text().count("refused:")
    cases = [
        (("", colour_models["gan-emoji"], disc), "^The Your image tab needs a VAE, which encodes pictures: .*gan-emoji "
         "is a 32x32 RGB GAN with 9 classes.$"),
        (("", vae, None), r"^The upload is missing: upload a picture \(PNG, JPEG, ...\).$"),
        (("", vae, "clear.png"), "^The upload is fully transparent: nothing to encode. Expected a picture with visible "
         "pixels.$"),
        (("", vae, "clear.gif"), "^The upload is fully transparent"),
        (("", vae, "notes.png"), r"^The upload could not be read as an image \(UnidentifiedImageError\): expected PNG"),
        (("", vae, "bomb.png"), "^The upload declares too many pixels: this app takes images up to 16,777,216.$"),
        (("", vae, "large.png"), "^The upload is 4200x4200 pixels: this app takes images up to 16,777,216 pixels"),
    ]  # fmt: skip
    for (choice, model, upload), needle in cases:
        upload = handle_file(str(tmp_path / upload)) if isinstance(upload, str) else upload
        with pytest.raises(AppError) as err:
            client.predict(choice, model, upload, 0, 4, 1.0, None, api_name="/your_image")
        assert re.match(needle, str(err.value)) and "\n" not in str(err.value) and str(tmp_path) not in str(err.value)
    with pytest.raises(AppError, match=r"^The second picture is missing: upload a picture"):
        client.predict("", vae, disc, None, 4, 0, None, api_name="/interpolate_images")
    (tmp_path / "huge.png").write_bytes(b"\0" * (10 * 2**20 + 1))
    with pytest.raises(Exception, match="413|too large|exceeds"):
        client.predict("", vae, handle_file(str(tmp_path / "huge.png")), 0, 4, 1.0, None, api_name="/your_image")
    nan = float("nan")
    for data, needle in [
        (["", vae, 5, 0, 4, 1.0, None], "The upload must be a file (gradio_client's handle_file), got int"),
        (["", vae, None, nan, 4, 1.0, None], "The seed must be a whole number"),
        (["", vae, None, 0, 4, nan, None], "The spread must be a finite number from 0.0 to 3.0"),
    ]:
        answer = call_raw(app_url, "your_image", data)
        assert "event: error" in answer and needle in answer, (data, answer)
    log = APP_DIRS["log"].read_text()
    assert log.count("refused:") - log_before == len(cases) + 4
    assert log.count("uploads for the VAEs are turned upright") == 1  # the conversion, logged once
    assert "Traceback" not in log, log[-3000:]


def test_class_interpolation_morphs(client, colour_models):
    """Between two classes, the frames mix the classes' conditioning along the path (BigGAN): the ends are the two
    classes' own images, the middle is neither (it cut from one to the other at the midpoint)."""
    gan = colour_models["gan-emoji"]

    def frames(a, b):
        strip, _ = client.predict("", gan, 0, 0, 5, "linear", a, b, api_name="/interpolate")
        return tiles(shown_at(strip, 3), 32)

    morph, smileys, flags = (
        frames("Smileys & Emotion", "Flags"),
        frames("Smileys & Emotion", None),
        frames("Flags", "Flags"),
    )
    assert np.array_equal(morph[0], smileys[0]) and np.array_equal(morph[-1], flags[-1])
    assert np.abs(morph[2].astype(int) - smileys[2]).max() > 2 and np.abs(morph[2].astype(int) - flags[2]).max() > 2
