"""hf-dgm Space: sample, interpolate, reconstruct drawn digits and explore latent spaces of GANs and VAEs.

Runs as a Hugging Face Space (ZeroGPU: the GPU work is wrapped in @spaces.GPU) and locally on CPU:
    python spaces_app/app.py          # or: hf-dgm app
then open http://127.0.0.1:7860. Offline, on the shipped zoo; any hf-dgm model repo id works too.
"""

import inspect
import json
import math
import os
import sys
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

try:  # import spaces before anything touches CUDA; outside a ZeroGPU Space @spaces.GPU is a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)


for ROOT in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):
    if (ROOT / "hf_dgm").is_dir() and str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # the Space (hf_dgm/ beside app.py) or a checkout without `pip install`
        break

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from hf_dgm.families import FAMILIES, family_of_folder  # noqa: E402
from hf_dgm.image_processing import make_grid, mnist_preprocess, save_gif, to_uint8  # noqa: E402
from hf_dgm.zoo import REPO_ID, ZOO_MODELS, check_model_name, hub_repo_id, zoo_dir  # noqa: E402

ON_SPACE = bool(os.environ.get("SPACE_ID"))
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MAX_IMAGES = 64
DISPLAY_SCALE = 3  # the Generate tab shows the 28-px digits at 3x (nearest neighbour); the download is 1x
MAX_SEED = 2**31 - 1
DIGITS = ["all"] + [str(i) for i in range(10)]  # the class choices of conditional digit models
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
# what a visitor's model may make the server allocate, checked from its config before anything is built
MAX_PARAMETERS = 50_000_000  # 200 MB of float32 weights, the download cap
MAX_ACTIVATIONS = 20_000_000  # 80 MB per image
# Gradio's cached files (images, GIFs) are deleted every CACHE_TTL_S seconds once older than that
CACHE_TTL_S = int(os.environ.get("HF_DGM_APP_CACHE_TTL_S", 600))
GENERATORS = [m for m in ZOO_MODELS if m != "mnist-classifier"]
PAPERS = """
- Goodfellow et al., [Generative Adversarial Nets](https://arxiv.org/abs/1406.2661) (2014)
- Radford et al., [DCGAN](https://arxiv.org/abs/1511.06434) (2015)
- Salimans et al., [Improved Techniques for Training GANs](https://arxiv.org/abs/1606.03498) (2016)
- Kingma & Welling, [Auto-Encoding Variational Bayes](https://arxiv.org/abs/1312.6114) (2014)
- Burda et al., [Importance Weighted Autoencoders](https://arxiv.org/abs/1509.00519) (2015)
"""


# ---------------------------------------------------------------------------------------------------- models
def _resolve(name: str) -> Path:
    """A zoo name, a repo id or (locally only) a path -> a folder with an hf-dgm config, or a friendly gr.Error.
    On a Space, local paths are not looked at: a visitor learns nothing about which folders exist."""
    name = (name or "").strip()
    if not name:
        raise gr.Error("Pick a model or type a model repo id.")
    try:
        check_model_name(name)
    except ValueError as err:
        raise gr.Error(str(err)) from None
    if name in ZOO_MODELS and (zoo_dir() / name / "config.json").is_file():
        return zoo_dir() / name
    if not ON_SPACE and Path(name).is_dir():
        folder = Path(name)
    else:
        repo_id = hub_repo_id(name) if name in ZOO_MODELS else name
        if not REPO_ID.fullmatch(repo_id):
            raise gr.Error(f"{name!r} is not a model of this app nor a repo id like 'user/model'.")
        from huggingface_hub import HfApi, hf_hub_download

        try:
            info = HfApi().model_info(repo_id, files_metadata=True)
            size = sum(s.size or 0 for s in info.siblings or [] if s.rfilename == "model.safetensors")
            if size > MAX_DOWNLOAD_BYTES:
                raise gr.Error(f"{repo_id} is {size / 2**20:.0f} MB: this app loads models up to 200 MB.")
            folder = Path(hf_hub_download(repo_id, "config.json")).parent
            config = json.loads((folder / "config.json").read_text())
            if config.get("model_type") not in FAMILIES:
                raise gr.Error(f"{repo_id} is not an hf-dgm GAN or VAE (model_type {config.get('model_type')!r}).")
            hf_hub_download(repo_id, "model.safetensors")
        except gr.Error:
            raise
        except Exception as err:  # not found, private, offline...
            raise gr.Error(f"Could not load {repo_id!r} from the Hub ({type(err).__name__}).") from None
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if config.get("model_type") not in FAMILIES:
        raise gr.Error(f"{name!r} is not an hf-dgm GAN or VAE model.")
    return folder


@lru_cache(maxsize=8)
def load_pipeline(folder: str):
    """Loaded once per model and cached. Never with trust_remote_code: only hf-dgm's own classes."""
    return (
        family_of_folder(folder)
        .pipeline_class.from_pretrained(folder, max_parameters=MAX_PARAMETERS, max_activations=MAX_ACTIVATIONS)
        .to(DEVICE)
    )


@lru_cache(maxsize=1)
def load_classifier():
    from hf_dgm.evaluation.classifier import MNISTClassifier

    path = zoo_dir() / "mnist-classifier"
    return MNISTClassifier.from_pretrained(path).eval() if (path / "config.json").is_file() else None


def _model(choice: str, custom: str):
    folder = _resolve(custom.strip() if custom and custom.strip() else choice)
    try:
        pipe = load_pipeline(str(folder))
    except (ValueError, OSError) as err:  # too large for this app, weights that don't match, unreadable files
        raise gr.Error(str(err)) from None
    return pipe, getattr(pipe, pipe.component).config


def _seed(value) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"The seed must be a whole number, got {value!r}.") from None
    if not 0 <= seed <= MAX_SEED:
        raise gr.Error(f"The seed must be between 0 and {MAX_SEED}, got {seed}.")
    return seed


def _labels(config, digit, n):
    if not config.num_classes:
        return None
    if digit in (None, "", "all"):
        return [i % config.num_classes for i in range(n)]
    return [int(digit)] * n


def _number(value, name: str, low: float, high: float) -> float:
    """A finite number within [low, high] (NaN and infinities pass range checks written as comparisons)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}.") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise gr.Error(f"{name} must be a finite number between {low} and {high}, got {value!r}.")
    return number


def _latents(pipe, config, seed, n, spread):
    """Seeded latents, spread as the pipeline understands it: a prior temperature (VAEs) or truncation (GANs)."""
    z = torch.randn(n, config.latent_dim, generator=torch.Generator().manual_seed(seed))
    if "temperature" in inspect.signature(pipe.__call__).parameters:
        return z * spread
    return z.clamp(-spread, spread) if spread < 3.0 else z


# ---------------------------------------------------------------------------------------------------- events
@gpu
@torch.no_grad()
def generate(choice, custom, seed, num_images, digit, spread):
    pipe, config = _model(choice, custom)
    seed = _seed(seed)
    n = int(num_images)
    if not 1 <= n <= MAX_IMAGES:
        raise gr.Error(f"Ask for 1 to {MAX_IMAGES} images, not {n}.")
    z = _latents(pipe, config, seed, n, _number(spread, "The truncation / temperature", 0.1, 3.0))
    images = pipe(latents=z, class_labels=_labels(config, digit, n), output_type="pt").images
    # One grid, shown (3x) and offered for download: a gallery of 64 separate files spent most of each request
    # in Gradio's per-file saving, caching and serving (profiled with py-spy; see the README's speed section).
    grid = make_grid(to_uint8(images))
    shown = grid.resize((grid.width * DISPLAY_SCALE, grid.height * DISPLAY_SCALE), Image.NEAREST)
    return shown, grid  # PIL images: Gradio owns their files (and deletes them, see CACHE_TTL_S)


@gpu
@torch.no_grad()
def interpolate(choice, custom, seed_a, seed_b, steps, method, digit_a, digit_b):
    pipe, config = _model(choice, custom)
    za = _latents(pipe, config, _seed(seed_a), 1, 1.0)[0]
    zb = _latents(pipe, config, _seed(seed_b), 1, 1.0)[0]
    steps = int(steps)
    if not 2 <= steps <= 32:
        raise gr.Error("Use 2 to 32 steps.")
    labels = None
    if config.num_classes:
        a = int(digit_a) if digit_a not in (None, "") else 0
        b = int(digit_b) if digit_b not in (None, "") else a
        labels = [a if i < steps / 2 else b for i in range(steps)]
    out = pipe.interpolate(za, zb, num_steps=steps, method=method, class_labels=labels, output_type="pt").images
    frames = [
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).resize((112, 112), Image.NEAREST) for a in to_uint8(out)
    ]
    strip = make_grid(to_uint8(out), nrow=steps)
    return strip, gif_file(frames)


GIF_DIR = Path(tempfile.mkdtemp(prefix="hf_dgm_app_"))
GIF_SLOTS = 8
_gif_counter, _gif_lock = 0, threading.Lock()


def gif_file(frames) -> str:
    """The GIF in the app's one folder, under a name taken from a ring of GIF_SLOTS: Gradio copies it into its cache
    before the slot is reused, so the app's own files never grow past GIF_SLOTS."""
    global _gif_counter
    with _gif_lock:
        _gif_counter += 1
        path = GIF_DIR / f"interpolation-{_gif_counter % GIF_SLOTS}.gif"
        save_gif(frames, path)
    return str(path)


def _read_drawing(sketch, upload):
    """The uploaded file (opened here, so its transparency survives) or the sketch's composite."""
    if upload is not None:
        try:
            with Image.open(upload) as image:
                image.load()
                return image.copy()
        except (OSError, SyntaxError, ValueError) as err:  # not an image, or a truncated one
            raise gr.Error(f"The upload could not be read as an image ({type(err).__name__}: {err}).") from None
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if composite is None or (isinstance(composite, np.ndarray) and composite.size == 0):
        raise gr.Error("Draw a digit on the canvas or upload an image first.")
    return composite


def _classify(images01: torch.Tensor):
    clf = load_classifier()
    if clf is None:
        return {}
    probs = clf(images01.float().cpu()).logits.softmax(-1)[0]
    return {str(i): float(p) for i, p in enumerate(probs)}


@gpu
@torch.no_grad()
def reconstruct(choice, custom, sketch, upload, seed):
    pipe, config = _model(choice, custom)
    if not hasattr(pipe, "reconstruct"):
        raise gr.Error("Reconstruction needs a VAE: pick vae-mnist, cvae-mnist, mlp-vae-mnist or vae2d-mnist.")
    drawing = _read_drawing(sketch, upload)
    try:
        digit = mnist_preprocess(drawing)
    except ValueError as err:
        raise gr.Error(str(err).capitalize() + ".") from None
    x = torch.from_numpy(digit).float().div(255)[None, None]
    labels = None
    if config.num_classes:
        reading = _classify(x)
        labels = [int(max(reading, key=reading.get))] if reading else [0]
    rec = pipe.reconstruct(x, class_labels=labels, output_type="pt").images
    posterior = pipe.vae.encode(x.to(pipe.vae.device), class_labels=labels).latent_dist
    g = torch.Generator().manual_seed(_seed(seed))
    variations = torch.stack([posterior.sample(g)[0].cpu() for _ in range(8)])
    var_images = pipe(latents=variations, class_labels=labels * 8 if labels else None, output_type="pt").images
    big = lambda t: Image.fromarray(to_uint8(t)[0, ..., 0]).resize((140, 140), Image.NEAREST)  # noqa: E731
    return (big(x), big(rec), _classify(x), _classify(rec), make_grid(to_uint8(var_images), nrow=8))


@gpu
@torch.no_grad()
def explore(choice, custom, seed, d0, d1, d2, d3):
    pipe, config = _model(choice, custom)
    if hasattr(pipe, "reconstruct") and config.latent_dim == 2 and not config.num_classes:  # a VAE's 2-d manifold
        span = torch.linspace(-2.5, 2.5, 15)
        grid = torch.stack(torch.meshgrid(span, span.flip(0), indexing="xy"), -1).reshape(-1, 2)
        images = pipe(latents=grid, output_type="pt").images
        return make_grid(to_uint8(images), nrow=15, padding=0)
    z = _latents(pipe, config, _seed(seed), 1, 1.0)
    for i, d in enumerate((d0, d1, d2, d3)[: config.latent_dim]):
        z[0, i] = _number(d, f"z[{i}]", -3.0, 3.0)
    labels = [0] if config.num_classes else None
    image = pipe(latents=z, class_labels=labels, output_type="pt").images
    return Image.fromarray(to_uint8(image)[0, ..., 0]).resize((224, 224), Image.NEAREST)


def about_markdown() -> str:
    lines = ["# The models\n"]
    for name in GENERATORS + ["mnist-classifier"]:
        folder = zoo_dir() / name
        if not (folder / "config.json").is_file():
            lines.append(f"- **{name}**: not shipped in this copy (Hub: `{hub_repo_id(name)}`).")
            continue
        config = json.loads((folder / "config.json").read_text())
        evals = (
            json.loads((folder / "eval_results.json").read_text()) if (folder / "eval_results.json").is_file() else {}
        )
        metrics = ", ".join(f"{m['name']} {m['value']}" for m in evals.get("metrics", [])[:6])
        if "test_accuracy" in evals:
            metrics = f"test accuracy {evals['test_accuracy']:.2%}"
        lines.append(
            f"- **{name}** ({config.get('model_type', '?').replace('hf_dgm_', '').upper()}, "
            f"`{config.get('architecture', 'cnn')}`): {metrics or 'not evaluated yet'}"
        )
    return "\n".join(lines) + "\n\n## Papers\n" + PAPERS


# ---------------------------------------------------------------------------------------------------- UI
def tab_generate(choice, custom):
    with gr.Tab("Generate"):
        with gr.Row():
            seed = gr.Number(0, precision=0, label="Seed")
            num = gr.Slider(1, MAX_IMAGES, 16, step=1, label="Images")
            digit = gr.Dropdown(DIGITS, value="all", label="Digit (conditional models)")
            spread = gr.Slider(0.1, 3.0, 1.0, label="Truncation (GAN) / temperature (VAE)")
        go = gr.Button("Generate", variant="primary")
        samples = gr.Image(label="Samples", format="png", elem_id="samples")
        grid_file = gr.Image(label="Grid at 1x (download button at its corner)", format="png", type="pil")
        go.click(
            generate,
            [choice, custom, seed, num, digit, spread],
            [samples, grid_file],
            api_name="generate",
            concurrency_limit=2,
        )


def tab_interpolate(choice, custom):
    with gr.Tab("Interpolate"):
        with gr.Row():
            seed_a = gr.Number(0, precision=0, label="Seed A")
            seed_b = gr.Number(1, precision=0, label="Seed B")
            steps = gr.Slider(2, 32, 10, step=1, label="Steps")
            method = gr.Radio(["spherical", "linear"], value="spherical", label="Path")
            digit_a = gr.Dropdown(DIGITS[1:], value="0", label="Digit A (conditional)")
            digit_b = gr.Dropdown(DIGITS[1:], value="1", label="Digit B (conditional)")
        go_i = gr.Button("Interpolate", variant="primary")
        strip = gr.Image(label="Frames", format="png", elem_id="strip")
        gif = gr.File(label="Animated GIF")
        go_i.click(
            interpolate,
            [choice, custom, seed_a, seed_b, steps, method, digit_a, digit_b],
            [strip, gif],
            api_name="interpolate",
            concurrency_limit=2,
        )


def tab_draw(choice, custom):
    with gr.Tab("Draw a digit (VAE)"):
        with gr.Row():
            sketch = gr.Sketchpad(
                type="numpy",
                image_mode="L",
                canvas_size=(280, 280),
                fixed_canvas=True,
                label="Draw (black on white)",
            )
            # a file, read by the app: gr.Image would convert it to RGB first, turning transparent paper black
            upload = gr.File(None, label="…or upload an image (PNG, JPEG, ...)", type="filepath")
        seed_r = gr.Number(0, precision=0, label="Seed for variations")
        go_r = gr.Button("Reconstruct", variant="primary")
        with gr.Row():
            pre = gr.Image(label="Preprocessed like MNIST", format="png", elem_id="preprocessed")
            rec = gr.Image(label="Reconstruction", format="png", elem_id="reconstruction")
            read_in = gr.Label(label="Classifier: input", num_top_classes=3)
            read_out = gr.Label(label="Classifier: reconstruction", num_top_classes=3)
        variations = gr.Image(label="Samples sharing its latent code", format="png")
        go_r.click(
            reconstruct,
            [choice, custom, sketch, upload, seed_r],
            [pre, rec, read_in, read_out, variations],
            api_name="reconstruct",
            concurrency_limit=2,
        )


def tab_explore(choice, custom):
    with gr.Tab("Explore the latent space"):
        gr.Markdown("2-D VAE: the decoded manifold. Other models: move the first latent dimensions.")
        seed_e = gr.Number(0, precision=0, label="Seed")
        sliders = [gr.Slider(-3, 3, 0, step=0.1, label=f"z[{i}]") for i in range(4)]
        go_e = gr.Button("Decode", variant="primary")
        explored = gr.Image(label="Decoded", format="png")
        go_e.click(explore, [choice, custom, seed_e, *sliders], explored, api_name="explore", concurrency_limit=2)


def tab_about():
    with gr.Tab("About"):
        gr.Markdown(about_markdown())


def build_app() -> gr.Blocks:
    available = [m for m in GENERATORS if (zoo_dir() / m / "config.json").is_file()] or GENERATORS
    with gr.Blocks(title="hf-dgm: GANs and VAEs", delete_cache=(CACHE_TTL_S, CACHE_TTL_S)) as app:
        gr.Markdown("# hf-dgm — deep generative models on MNIST\nSame seed, same images (on one device type).")
        with gr.Row():
            choice = gr.Dropdown(available, value=available[0], label="Model")
            custom = gr.Textbox(
                "", label="…or a model repo id" + ("" if ON_SPACE else " / local folder"), placeholder="user/my-dcgan"
            )
        tab_generate(choice, custom)
        tab_interpolate(choice, custom)
        tab_draw(choice, custom)
        tab_explore(choice, custom)
        tab_about()
    app.queue(default_concurrency_limit=2, max_size=64)
    return app


def warm_up():
    """Load the default model while the server starts, so that the first visitor does not wait for the imports
    (transformers) and the weights: cold start to first image 14.1 s before this (scripts/load_test_app.py)."""
    try:
        _model(GENERATORS[0], "")
    except Exception as err:  # the first request will report it properly
        print(f"warm-up skipped: {type(err).__name__}: {err}", file=sys.stderr)


def main(port: int | None = None):
    threading.Thread(target=warm_up, daemon=True).start()
    build_app().launch(
        server_name="0.0.0.0" if ON_SPACE else "127.0.0.1",
        server_port=port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        share=False,
        footer_links=[],
    )


if __name__ == "__main__":
    main()
