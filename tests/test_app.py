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
    generate_dd, a, b, explore_dd = app_module.class_choices("", colour_models["gan-emoji"])
    assert choice_values(generate_dd) == ["all", *EMOJI_GROUPS] and generate_dd.value == "all"
    assert choice_values(a) == choice_values(b) == choice_values(explore_dd) == EMOJI_GROUPS
    assert (a.value, b.value, explore_dd.value) == ("Smileys & Emotion", "People & Body", "Smileys & Emotion")
    # a choice the new model also has is kept; a digit is not an emoji group
    kept = app_module.class_choices("", colour_models["gan-emoji"], "Flags", "Objects", "3", None)
    assert [d.value for d in kept] == ["Flags", "Objects", "People & Body", "Smileys & Emotion"]
    # a digit model saved without names (the MNIST models) offers "0".."9"
    digits = [str(i) for i in range(10)]
    generate_dd, a, b, _ = app_module.class_choices("", colour_models["cdcgan-digits"], "Flags", None, None, None)
    assert choice_values(generate_dd) == ["all", *digits] and generate_dd.value == "all"
    assert choice_values(a) == digits and (a.value, b.value) == ("0", "1")
    # an unconditional model: only "all", nothing to pick
    generate_dd, a, b, explore_dd = app_module.class_choices("", colour_models["vae-emoji"])
    assert choice_values(generate_dd) == ["all"] and choice_values(a) == [] and a.value is None
    assert not generate_dd.interactive and not explore_dd.interactive


def test_the_model_selector_updates_the_class_dropdowns(app_module):
    """The wiring: picking a model (or typing one) runs class_choices, whose outputs are the four class dropdowns."""
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
