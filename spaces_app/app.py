"""hf-dgm Space: sample, interpolate and explore the latent spaces of GANs and VAEs, on MNIST digits and colour emoji,
and reconstruct drawn digits.

Runs as a Hugging Face Space (ZeroGPU: the GPU work is wrapped in @spaces.GPU) and locally on CPU:
    python spaces_app/app.py          # or: hf-dgm app
then open http://127.0.0.1:7860. Offline, on the shipped zoo (every model folder in zoo/, grey or colour, 28 to 128
px); any hf-dgm model repo id works too.
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
# Small images are shown upscaled by a whole factor (nearest neighbour), so that one image is about this many pixels
# wide: 28-px digits at 3x, 32-px emoji at 3x, 64 px at 2x, 128 px at 1x. Downloads stay 1x.
GRID_TILE = 96  # Generate's grid and Interpolate's strip
GIF_TILE = 112  # the frames of Interpolate's GIF
EXPLORE_TILE = 224  # Explore's single image
MAX_SEED = 2**31 - 1
ALL_CLASSES = "all"  # Generate's class choice for samples balanced across the classes
# a visitor's model names its classes (config.id2label): the dropdowns offer at most this many, each name cut to
# MAX_CLASS_NAME characters (any class id still works through the API)
MAX_CLASS_CHOICES = 1000
MAX_CLASS_NAME = 100
DIGIT_SIZE, DIGIT_CHANNELS = 28, 1  # what the Draw tab's VAEs take: MNIST-like 28x28 grey digits
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
# what a visitor's model may make the server allocate, checked from its config before anything is built
MAX_PARAMETERS = 50_000_000  # 200 MB of float32 weights, the download cap
MAX_ACTIVATIONS = 20_000_000  # 80 MB per image
# Gradio's cached files (images, GIFs) are deleted every CACHE_TTL_S seconds once older than that
CACHE_TTL_S = int(os.environ.get("HF_DGM_APP_CACHE_TTL_S", 600))
GENERATORS = [m for m in ZOO_MODELS if m != "mnist-classifier"]  # the Hub names, where no zoo folder is shipped
PAPERS = """
- Goodfellow et al., [Generative Adversarial Nets](https://arxiv.org/abs/1406.2661) (2014)
- Radford et al., [DCGAN](https://arxiv.org/abs/1511.06434) (2015)
- Salimans et al., [Improved Techniques for Training GANs](https://arxiv.org/abs/1606.03498) (2016)
- Kingma & Welling, [Auto-Encoding Variational Bayes](https://arxiv.org/abs/1312.6114) (2014)
- Burda et al., [Importance Weighted Autoencoders](https://arxiv.org/abs/1509.00519) (2015)
"""


# ---------------------------------------------------------------------------------------------------- models
def zoo_models() -> list[str]:
    """The zoo's GANs and VAEs that this copy ships (zoo/<name>), in the zoo's order."""
    return [m for m in GENERATORS if (zoo_dir() / m / "config.json").is_file()]


def class_names(config) -> list[str]:
    """The class names of a conditional model, in id order ([] for an unconditional one): config.id2label where it
    names every class (trainers save a ClassLabel column's names there), else "0", "1", ... (the MNIST models).
    `config` is a model config or its config.json as a dict. The one source of class names for the whole app."""
    get = config.get if isinstance(config, dict) else (lambda key: getattr(config, key, None))
    num_classes = get("num_classes") or 0
    try:
        named = {int(k): str(v) for k, v in (get("id2label") or {}).items()}
    except (AttributeError, TypeError, ValueError):  # not a mapping of ids to names: not used
        named = {}
    if not all(i in named for i in range(num_classes)) or all(named[i] == f"LABEL_{i}" for i in range(num_classes)):
        named = {}  # no names saved (transformers' default id2label is LABEL_0, LABEL_1)
    return [named.get(i, str(i))[:MAX_CLASS_NAME] for i in range(num_classes)]


def _class_id(config, value, name: str) -> int:
    """A class name (as the dropdowns offer it) or a class id -> the id the pipeline takes."""
    names = class_names(config)
    text = str(value).strip()
    if text in names:
        return names.index(text)
    if text.isascii() and text.isdigit() and len(text) <= 18 and int(text) < len(names):
        return int(text)
    shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    raise gr.Error(f"{text[:MAX_CLASS_NAME]!r} is not a class of {name}: expected one of {shown} (or an id).")


def _describe(pipe, config) -> str:
    """'a 32x32 RGB GAN with 9 classes', for messages."""
    colours = {1: "grey", 3: "RGB"}.get(config.num_channels, f"{config.num_channels}-channel")
    classes = f" with {config.num_classes} classes" if config.num_classes else ""
    return f"a {config.image_size}x{config.image_size} {colours} {pipe.component.upper()}{classes}"


def _upscale(image: Image.Image, image_size: int, tile: int) -> Image.Image:
    """The image (one picture or a grid of them) enlarged by the whole factor that makes a picture of `image_size`
    pixels about `tile` pixels wide (never below 1x), nearest neighbour so pixels stay sharp."""
    scale = max(1, int(tile / image_size + 0.5))
    return image if scale == 1 else image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def _picture(images_uint8: np.ndarray, i: int = 0) -> Image.Image:
    """Image i of a uint8 batch (N, H, W, C) as a PIL image: grey (L) for one channel, RGB for three."""
    array = images_uint8[i]
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


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
    if name in zoo_models():
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
    """(pipeline, config, the name the visitor gave) of the model picked or typed."""
    name = custom.strip() if custom and custom.strip() else (choice or "")
    folder = _resolve(name)
    try:
        pipe = load_pipeline(str(folder))
    except (ValueError, OSError) as err:  # too large for this app, weights that don't match, unreadable files
        raise gr.Error(str(err)) from None
    return pipe, getattr(pipe, pipe.component).config, name.strip()


def _seed(value) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"The seed must be a whole number, got {value!r}.") from None
    if not 0 <= seed <= MAX_SEED:
        raise gr.Error(f"The seed must be between 0 and {MAX_SEED}, got {seed}.")
    return seed


def _labels(config, class_name, n, name: str):
    """n class ids: None for an unconditional model, balanced across the classes for "all", else one class."""
    if not config.num_classes:
        return None
    if class_name in (None, "", ALL_CLASSES):
        return [i % config.num_classes for i in range(n)]
    return [_class_id(config, class_name, name)] * n


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
def generate(choice, custom, seed, num_images, class_name, spread):
    pipe, config, name = _model(choice, custom)
    seed = _seed(seed)
    n = int(num_images)
    if not 1 <= n <= MAX_IMAGES:
        raise gr.Error(f"Ask for 1 to {MAX_IMAGES} images, not {n}.")
    z = _latents(pipe, config, seed, n, _number(spread, "The truncation / temperature", 0.1, 3.0))
    images = pipe(latents=z, class_labels=_labels(config, class_name, n, name), output_type="pt").images
    # One grid, shown (upscaled, see GRID_TILE) and offered for download at 1x: a gallery of 64 separate files spent
    # most of each request in Gradio's per-file saving, caching and serving (profiled with py-spy; see docs/benchmarks.md).
    grid = make_grid(to_uint8(images))
    shown = _upscale(grid, config.image_size, GRID_TILE)
    return shown, grid  # PIL images: Gradio owns their files (and deletes them, see CACHE_TTL_S)


@gpu
@torch.no_grad()
def interpolate(choice, custom, seed_a, seed_b, steps, method, class_a=None, class_b=None):
    pipe, config, name = _model(choice, custom)
    za = _latents(pipe, config, _seed(seed_a), 1, 1.0)[0]
    zb = _latents(pipe, config, _seed(seed_b), 1, 1.0)[0]
    steps = int(steps)
    if not 2 <= steps <= 32:
        raise gr.Error("Use 2 to 32 steps.")
    labels = None
    if config.num_classes:
        a = _class_id(config, class_a, name) if class_a not in (None, "") else 0
        b = _class_id(config, class_b, name) if class_b not in (None, "") else a
        labels = [a if i < steps / 2 else b for i in range(steps)]
    out = to_uint8(
        pipe.interpolate(za, zb, num_steps=steps, method=method, class_labels=labels, output_type="pt").images
    )
    frames = [_upscale(_picture(out, i), config.image_size, GIF_TILE) for i in range(len(out))]
    strip = _upscale(make_grid(out, nrow=steps), config.image_size, GRID_TILE)
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
    pipe, config, name = _model(choice, custom)
    if not hasattr(pipe, "reconstruct") or (config.image_size, config.num_channels) != (DIGIT_SIZE, DIGIT_CHANNELS):
        raise gr.Error(
            f"The Draw tab is for digit models, {DIGIT_SIZE}x{DIGIT_SIZE} grey VAEs such as vae-mnist, cvae-mnist, "
            f"mlp-vae-mnist or vae2d-mnist: {name} is {_describe(pipe, config)}."
        )
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
def explore(choice, custom, seed, d0, d1, d2, d3, class_name=None):
    pipe, config, name = _model(choice, custom)
    if hasattr(pipe, "reconstruct") and config.latent_dim == 2 and not config.num_classes:  # a VAE's 2-d manifold
        span = torch.linspace(-2.5, 2.5, 15)
        grid = torch.stack(torch.meshgrid(span, span.flip(0), indexing="xy"), -1).reshape(-1, 2)
        images = pipe(latents=grid, output_type="pt").images
        return make_grid(to_uint8(images), nrow=15, padding=0)
    z = _latents(pipe, config, _seed(seed), 1, 1.0)
    for i, d in enumerate((d0, d1, d2, d3)[: config.latent_dim]):
        z[0, i] = _number(d, f"z[{i}]", -3.0, 3.0)
    labels = None
    if config.num_classes:
        labels = [_class_id(config, class_name, name) if class_name not in (None, "") else 0]
    image = pipe(latents=z, class_labels=labels, output_type="pt").images
    return _upscale(_picture(to_uint8(image)), config.image_size, EXPLORE_TILE)


def about_markdown() -> str:
    lines = ["# The models\n"]
    for name in (zoo_models() or GENERATORS) + ["mnist-classifier"]:
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
        size, channels = config.get("image_size", 28), config.get("num_channels", 1)
        images = f"{size}x{size} {'RGB' if channels == 3 else 'grey'}"
        names = class_names(config)
        if names:
            images += f", {len(names)} classes" + (f" ({', '.join(names)})" if len(names) <= 12 else "")
        lines.append(
            f"- **{name}** ({config.get('model_type', '?').replace('hf_dgm_', '').upper()}, "
            f"`{config.get('architecture', 'cnn')}`, {images}): {metrics or 'not evaluated yet'}"
        )
    return "\n".join(lines) + "\n\n## Papers\n" + PAPERS


def _initial_class_names(name: str) -> list[str]:
    """The class names of the model selected when the page opens, from its config.json (no model is loaded)."""
    path = zoo_dir() / name / "config.json"
    try:
        return class_names(json.loads(path.read_text()))[:MAX_CLASS_CHOICES] if path.is_file() else []
    except (OSError, ValueError):
        return []


def _class_dropdowns(names: list[str], current=(None, None, None, None)):
    """The four class dropdowns for a model with these class names: Generate (with "all"), Interpolate's A and B,
    Explore. A current choice the model also has is kept; unconditional models leave them empty and inactive."""
    generate_value, a, b, e = current
    first, second = (names[0] if names else None), (names[1] if len(names) > 1 else names[0] if names else None)
    keep = lambda value, default: value if value in names else default  # noqa: E731
    return (
        gr.Dropdown(choices=[ALL_CLASSES, *names], value=keep(generate_value, ALL_CLASSES), interactive=bool(names)),
        gr.Dropdown(choices=names, value=keep(a, first), interactive=bool(names)),
        gr.Dropdown(choices=names, value=keep(b, second), interactive=bool(names)),
        gr.Dropdown(choices=names, value=keep(e, first), interactive=bool(names)),
    )


def class_choices(choice, custom, generate_class=None, class_a=None, class_b=None, explore_class=None):
    """The model selector's event: the class dropdowns follow the model picked (or typed)."""
    _, config, _ = _model(choice, custom)
    names = class_names(config)[:MAX_CLASS_CHOICES]
    return _class_dropdowns(names, (generate_class, class_a, class_b, explore_class))


# ---------------------------------------------------------------------------------------------------- UI
def _class_dropdown(names: list[str], label: str, value, choices=None) -> gr.Dropdown:
    # custom values are allowed: API callers name any class of the model they pass (checked by _class_id)
    return gr.Dropdown(
        names if choices is None else choices,
        value=value,
        label=label,
        allow_custom_value=True,
        interactive=bool(names),
    )


def tab_generate(choice, custom, names):
    with gr.Tab("Generate"):
        with gr.Row():
            seed = gr.Number(0, precision=0, label="Seed")
            num = gr.Slider(1, MAX_IMAGES, 16, step=1, label="Images")
            class_name = _class_dropdown(
                names, "Class (conditional models)", ALL_CLASSES, choices=[ALL_CLASSES, *names]
            )
            spread = gr.Slider(0.1, 3.0, 1.0, label="Truncation (GAN) / temperature (VAE)")
        go = gr.Button("Generate", variant="primary")
        samples = gr.Image(label="Samples", format="png", elem_id="samples")
        grid_file = gr.Image(label="Grid at 1x (download button at its corner)", format="png", type="pil")
        go.click(
            generate,
            [choice, custom, seed, num, class_name, spread],
            [samples, grid_file],
            api_name="generate",
            concurrency_limit=2,
        )
    return class_name


def tab_interpolate(choice, custom, names):
    with gr.Tab("Interpolate"):
        with gr.Row():
            seed_a = gr.Number(0, precision=0, label="Seed A")
            seed_b = gr.Number(1, precision=0, label="Seed B")
            steps = gr.Slider(2, 32, 10, step=1, label="Steps")
            method = gr.Radio(["spherical", "linear"], value="spherical", label="Path")
            class_a = _class_dropdown(names, "Class A (conditional)", names[0] if names else None)
            class_b = _class_dropdown(names, "Class B (conditional)", names[min(1, len(names) - 1)] if names else None)
        go_i = gr.Button("Interpolate", variant="primary")
        strip = gr.Image(label="Frames", format="png", elem_id="strip")
        gif = gr.File(label="Animated GIF")
        go_i.click(
            interpolate,
            [choice, custom, seed_a, seed_b, steps, method, class_a, class_b],
            [strip, gif],
            api_name="interpolate",
            concurrency_limit=2,
        )
    return class_a, class_b


def tab_draw(choice, custom):
    with gr.Tab("Draw a digit (VAE)"):
        gr.Markdown(
            f"For digit models only: draw a digit (or upload one) and a {DIGIT_SIZE}x{DIGIT_SIZE} grey VAE "
            "(vae-mnist, cvae-mnist, mlp-vae-mnist, vae2d-mnist) reconstructs it. The colour models don't take "
            "drawings."
        )
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


def tab_explore(choice, custom, names):
    with gr.Tab("Explore the latent space"):
        gr.Markdown("2-D VAE: the decoded manifold. Other models: move the first latent dimensions.")
        with gr.Row():
            seed_e = gr.Number(0, precision=0, label="Seed")
            class_e = _class_dropdown(names, "Class (conditional)", names[0] if names else None)
        sliders = [gr.Slider(-3, 3, 0, step=0.1, label=f"z[{i}]") for i in range(4)]
        go_e = gr.Button("Decode", variant="primary")
        explored = gr.Image(label="Decoded", format="png", elem_id="explored")
        go_e.click(
            explore, [choice, custom, seed_e, *sliders, class_e], explored, api_name="explore", concurrency_limit=2
        )
    return class_e


def tab_about():
    with gr.Tab("About"):
        gr.Markdown(about_markdown())


def build_app() -> gr.Blocks:
    available = zoo_models() or GENERATORS
    names = _initial_class_names(available[0])
    with gr.Blocks(title="hf-dgm: GANs and VAEs", delete_cache=(CACHE_TTL_S, CACHE_TTL_S)) as app:
        gr.Markdown(
            "# hf-dgm — GANs and VAEs on MNIST digits and colour emoji\n"
            "Sample, interpolate and explore grey 28-px digits and colour emoji; draw a digit for the digit VAEs. "
            "Same seed, same images (on one device type)."
        )
        with gr.Row():
            choice = gr.Dropdown(available, value=available[0], label="Model")
            custom = gr.Textbox(
                "", label="…or a model repo id" + ("" if ON_SPACE else " / local folder"), placeholder="user/my-dcgan"
            )
        generate_class = tab_generate(choice, custom, names)
        class_a, class_b = tab_interpolate(choice, custom, names)
        tab_draw(choice, custom)
        explore_class = tab_explore(choice, custom, names)
        tab_about()
        dropdowns = [generate_class, class_a, class_b, explore_class]
        gr.on(  # the class choices follow the model: picked from the list, or typed (on Enter or leaving the box)
            [choice.change, custom.submit, custom.blur],
            class_choices,
            [choice, custom, *dropdowns],
            dropdowns,
            api_visibility="private",
            concurrency_limit=2,
        )
    app.queue(default_concurrency_limit=2, max_size=64)
    return app


def warm_up():
    """Load the default model while the server starts, so that the first visitor does not wait for the imports
    (transformers) and the weights: cold start to first image 14.1 s before this (scripts/load_test_app.py)."""
    try:
        _model((zoo_models() or GENERATORS)[0], "")
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
