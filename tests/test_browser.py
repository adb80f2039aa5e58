"""Real-browser tests: Debian's Chromium driven by Playwright against the app on 127.0.0.1.

Each test asserts on what the page shows, keeps a screenshot in test-artifacts/, and fails on any page JS error or
any request that is not to 127.0.0.1."""

import os
import shutil
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from PIL import Image, ImageDraw

ARTIFACTS = Path(REPO_ROOT) / "test-artifacts"
# Debian's chromium (`make test` installs it where it runs as root with apt-get), or any Chromium named here
CHROMIUM = os.environ.get("HF_DGM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM) and os.environ.get("HF_DGM_REQUIRE_BROWSER"):
        pytest.fail(f"no Chromium at {CHROMIUM}, though `make test` could install it here: the browser tests can't run")
    if not os.path.exists(CHROMIUM):  # a machine where make test can't install it: skipped, and -rs says how to get it
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium; `make test` does it as "
            "root) or set HF_DGM_CHROMIUM to a Chromium binary, then rerun to include the browser tests"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 1400},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser, app_url, request):
    page = browser.new_page()
    errors, foreign = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: None if req.url.startswith((app_url, "data:", "blob:")) else foreign.append(req.url))
    page.goto(app_url, wait_until="networkidle")
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not foreign, f"requests that left 127.0.0.1: {foreign}"


def wait_images(page, selector, count=1, timeout=60_000):
    page.wait_for_function(
        """([sel, n]) => { const imgs = [...document.querySelectorAll(sel + ' img')];
             return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=[selector, count],
        timeout=timeout,
    )
    return page.eval_on_selector_all(f"{selector} img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")


def uploaded(page, path, within=""):
    """Set a file input's file and wait until its upload is done: the File component then lists the file in its
    preview table, a row labelled with the file's name. (Its visible text splits the name into stem and extension,
    so the name as text matched only the upload's progress view, which a quick upload could skip between polls.)"""
    scope = page.locator(within) if within else page
    scope.locator("input[type=file]").last.set_input_files(str(path))
    scope.locator(".file-preview").get_by_label(Path(path).name, exact=True).wait_for()


def test_generate(page):
    page.get_by_role("button", name="Generate", exact=True).click()
    ((width, height),) = wait_images(page, "#samples")
    assert (width, height) == (3 * (2 + 4 * 30),) * 2  # the default 16 samples on a 4 x 4 grid, shown at 3x


def test_interpolate(page):
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("button", name="Interpolate", exact=True).click()
    (width, height), *_ = wait_images(page, "#strip")
    assert width > 5 * height  # a strip of 10 frames


def test_draw_and_reconstruct(page):
    page.get_by_label("…or a model repo id / local folder").fill("vae-mnist")
    page.get_by_role("tab", name="Draw a digit (VAE)").click()
    canvas = page.locator("canvas").first
    canvas.wait_for()
    page.locator("button[aria-label='Brush']").first.click()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y + box["height"] * 0.3, steps=2)
    page.mouse.move(x, y + box["height"] * 0.6, steps=2)
    page.mouse.up()
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    (w, h), *_ = wait_images(page, "#preprocessed")
    assert (w, h) == (140, 140)
    wait_images(page, "#reconstruction")


def test_upload_and_reconstruct(page, tmp_path):
    digit = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(digit).ellipse((50, 40, 150, 160), outline="black", width=16)  # a "0"
    path = tmp_path / "zero.png"
    digit.save(path)
    page.get_by_label("…or a model repo id / local folder").fill("vae-mnist")
    page.get_by_role("tab", name="Draw a digit (VAE)").click()
    uploaded(page, path)
    page.get_by_role("button", name="Reconstruct", exact=True).click()
    (w, h), *_ = wait_images(page, "#preprocessed")
    assert (w, h) == (140, 140)
    wait_images(page, "#reconstruction")


def test_class_dropdown_follows_the_model(page, tmp_path):
    """Picking a conditional digit model offers the digits; typing a colour model's folder offers its class names, and
    a named class generates colour images shown at 3x."""
    import torch
    from conftest import tiny_gan_kwargs

    from hf_dgm import GANConfig, GANModel

    names = ["Smileys & Emotion", "People & Body", "Animals & Nature"]
    torch.manual_seed(0)
    config = GANConfig(
        **tiny_gan_kwargs(
            architecture="resnet", image_size=32, num_channels=3, num_classes=3, id2label=dict(enumerate(names))
        )
    )
    GANModel(config).save_pretrained(tmp_path / "gan-emoji")

    page.get_by_label("Model", exact=True).click()
    page.get_by_role("option", name="cdcgan-mnist", exact=True).click()
    classes = page.get_by_label("Class (conditional models)", exact=True)
    classes.click()  # waits until the model selector's event has enabled it (an unconditional model disables it)
    page.get_by_role("option", name="7", exact=True).wait_for()
    assert page.get_by_role("option", name="People & Body").count() == 0
    page.keyboard.press("Escape")

    custom = page.get_by_label("…or a model repo id / local folder")
    custom.fill(str(tmp_path / "gan-emoji"))
    custom.press("Enter")
    classes.click()
    page.get_by_role("option", name="People & Body", exact=True).click()  # waits for the event's new choices
    assert classes.input_value() == "People & Body"
    assert page.get_by_role("option", name="7", exact=True).count() == 0
    page.get_by_role("button", name="Generate", exact=True).click()
    ((width, height),) = wait_images(page, "#samples")
    assert (width, height) == (3 * (2 + 4 * 34),) * 2  # 16 RGB images of 32 px on a 4 x 4 grid, shown at 3x


def test_your_image_upload_reconstructs(page, tmp_path):
    """A colour VAE typed as a local folder; in the Your image tab, an RGBA picture uploaded: the page shows it as the
    model sees it (64 px at 4x), its reconstruction and the samples near its latent."""
    import torch
    from conftest import tiny_vae_kwargs

    from hf_dgm import VAEConfig, VAEModel

    torch.manual_seed(0)
    VAEModel(VAEConfig(**tiny_vae_kwargs(image_size=64, num_channels=3))).save_pretrained(tmp_path / "vae-colour")
    picture = Image.new("RGBA", (240, 160), (0, 0, 0, 0))
    ImageDraw.Draw(picture).ellipse((60, 40, 180, 120), fill=(220, 30, 30, 255))
    picture.save(tmp_path / "disc.png")

    page.get_by_label("…or a model repo id / local folder").fill(str(tmp_path / "vae-colour"))
    page.get_by_role("tab", name="Your image (VAE)").click()
    uploaded(page, tmp_path / "disc.png", within="#your-upload")
    page.get_by_role("button", name="Reconstruct and sample", exact=True).click()
    ((width, height),) = wait_images(page, "#seen")
    assert (width, height) == (256, 256)
    wait_images(page, "#your-reconstruction")
    ((width, height),) = wait_images(page, "#near")
    assert (width, height) == (2 * (2 + 3 * 66),) * 2  # 9 samples of 64 px, 3 per row, shown at 2x
