"""hf-dgm Space: sample, interpolate and explore the latent spaces of GANs and VAEs, on MNIST digits and colour emoji,
reconstruct a visitor's pictures with the VAEs, and drawn digits.

Runs as a Hugging Face Space (ZeroGPU: the GPU work is wrapped in @spaces.GPU) and locally on CPU:
    python spaces_app/app.py          # or: hf-dgm app
then open http://127.0.0.1:7860. Offline, on the shipped zoo (every model folder in zoo/, grey or colour, 28 to 128
px); any hf-dgm model repo id works too.
"""

import io
import json
import logging
import math
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
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
import pydantic  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from hf_dgm.families import FAMILIES, family_of_folder, read_config  # noqa: E402
from hf_dgm.image_processing import make_grid, mnist_preprocess, on_white, save_gif, to_uint8  # noqa: E402
from hf_dgm.modeling_utils import activation_elements, class_path, sample_latents  # noqa: E402
from hf_dgm.modeling_utils import class_names as model_class_names  # noqa: E402
from hf_dgm.pipeline_utils import interpolate_latents  # noqa: E402
from hf_dgm.sampling import generate_images  # noqa: E402
from hf_dgm.vae.networks_vae import prior_latents  # noqa: E402
from hf_dgm.zoo import GENERATIVE_MODELS, REPO_ID, ZOO_MODELS, check_model_name, hub_repo_id, zoo_dir  # noqa: E402

ON_SPACE = bool(os.environ.get("SPACE_ID"))
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
log = logging.getLogger("hf_dgm.app")
# Small images are shown upscaled by a whole factor (nearest neighbour), so that one image is about this many pixels
# wide: 28-px digits at 3x, 32-px emoji at 3x, 64 px at 2x, 128 px at 1x. Downloads stay 1x.
GRID_TILE = 96  # Generate's grid and Interpolate's strip
GIF_TILE = 112  # the frames of Interpolate's GIF
EXPLORE_TILE = 224  # Explore's single image
MAX_SEED = 2**31 - 1
MAX_STEPS = 32  # Interpolate's frames
ALL_CLASSES = "all"  # Generate's class choice for samples balanced across the classes
# a visitor's model names its classes (config.id2label): the dropdowns offer at most this many, each name cut to
# MAX_CLASS_NAME characters (any class id still works through the API)
MAX_CLASS_CHOICES = 1000
MAX_CLASS_NAME = 100
DIGIT_SIZE, DIGIT_CHANNELS = 28, 1  # what the Draw tab's VAEs take: MNIST-like 28x28 grey digits
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
# The per-request budget (spaces_app/README.md): what a model may make the server allocate, checked from its config
# before anything is built, with the package's knobs (HF_DGM_MAX_PARAMETERS, HF_DGM_MAX_ACTIVATIONS) at the Space's
# values unless set. The activation budget counts the batch: a request is drawn in chunks of at most
# MAX_ACTIVATIONS // (the model's activations per image) images, so a model at the limit draws one image at a time.
MAX_PARAMETERS = int(os.environ.get("HF_DGM_MAX_PARAMETERS", 50_000_000))  # 200 MB of float32 weights, the download cap
MAX_ACTIVATIONS = int(os.environ.get("HF_DGM_MAX_ACTIVATIONS", 20_000_000))  # 80 MB per chunk of a request
MAX_IMAGES = 64  # per request, on a fast model
MAX_GRID_PIXELS = 64 * 128 * 128  # and at most this many pixels: 64 images up to 128 px, 16 at 256 px
# Fair queueing. Slow models (pixel-by-pixel decoding, or above these sizes) run in their own lane: at most
# SLOW_RUNNING requests at a time, SLOW_WAITING more waiting, any further one is told "busy, try again"; so they
# never hold more than SLOW_RUNNING + SLOW_WAITING of the app's workers and FAST_WORKERS stay for the fast models.
SLOW_PARAMETERS = 10_000_000  # the zoo's largest sampling network has 3.7 M
SLOW_ACTIVATIONS = 2_000_000  # the zoo's GANs compute at most 0.2 M values per image
SLOW_MAX_IMAGES = 16  # per request, on a slow model
SLOW_RUNNING, SLOW_WAITING, FAST_WORKERS = 1, 1, 2
WORKERS = SLOW_RUNNING + SLOW_WAITING + FAST_WORKERS  # the concurrency limit shared by every model event
# a visitor (an address) may have this many requests queued or running; beyond that: "busy, try again"
VISITOR_MAX_PENDING = int(os.environ.get("HF_DGM_APP_MAX_PENDING", 4))
MAX_QUEUE = 64  # Gradio's queue, all visitors together
# Uploads: the file size (checked by Gradio while it receives the file) and the pixels, checked from the declared
# size before anything is decoded (JPEGs are first set to decode at 1/2 to 1/8 scale, PIL's draft)
MAX_UPLOAD_BYTES = 10 * 2**20
MAX_UPLOAD_PIXELS = 4096 * 4096
DRAFT_SIZE = 512  # a JPEG decodes at the smallest scale still this large: plenty for a digit
# Gradio's cached files (images, GIFs) are deleted every CACHE_TTL_S seconds once older than that
CACHE_TTL_S = int(os.environ.get("HF_DGM_APP_CACHE_TTL_S", 600))
GENERATORS = list(GENERATIVE_MODELS)  # the Hub names, where no zoo folder is shipped
PAPERS = """
- Goodfellow et al., [Generative Adversarial Nets](https://arxiv.org/abs/1406.2661) (2014)
- Radford et al., [DCGAN](https://arxiv.org/abs/1511.06434) (2015)
- Salimans et al., [Improved Techniques for Training GANs](https://arxiv.org/abs/1606.03498) (2016)
- Kingma & Welling, [Auto-Encoding Variational Bayes](https://arxiv.org/abs/1312.6114) (2014)
- Burda et al., [Importance Weighted Autoencoders](https://arxiv.org/abs/1509.00519) (2015)
"""


# ---------------------------------------------------------------------------------------------------- inputs
def user_error(message: str) -> gr.Error:
    """The error for a request the app refuses (bad input, a model it can't take, busy): one line for the visitor and
    one for the server log, no traceback (9 expected errors printed 9 tracebacks, burying real failures). Anything
    else raised in an event keeps Gradio's traceback."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def _shown(value) -> str:
    """A visitor's value for a message: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value, what: str) -> str:
    """A text input (model names, classes): None is empty; anything but a string is refused."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise user_error(f"{what} must be text, got {type(value).__name__} {_shown(value)}.")
    return value.strip()


def _whole(value, what: str, low: int, high: int, why: str = "") -> int:
    """A whole number within [low, high]: an int, or a float without a fraction (JSON may send 4.0). NaN, infinities,
    booleans, None, strings and fractions are refused."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and float(value).is_integer() and low <= value <= high):
        raise user_error(f"{what} must be a whole number from {low} to {high}{why}, got {_shown(value)}.")
    return int(value)


def _number(value, what: str, low: float, high: float) -> float:
    """A finite number within [low, high] (NaN and infinities pass range checks written as comparisons)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and low <= value <= high):
        raise user_error(f"{what} must be a finite number from {low} to {high}, got {_shown(value)}.")
    return float(value)


def _seed(value) -> int:
    return _whole(value, "The seed", 0, MAX_SEED)


# ---------------------------------------------------------------------------------------------------- models
def zoo_models() -> list[str]:
    """The zoo's GANs and VAEs that this copy ships (zoo/<name>), in the zoo's order."""
    return [m for m in GENERATORS if (zoo_dir() / m / "config.json").is_file()]


def class_names(config) -> list[str]:
    """The class names of a conditional model, in id order, cut to MAX_CLASS_NAME characters for the app's menus
    (the package's ``class_names``: the one source of class names)."""
    return [name[:MAX_CLASS_NAME] for name in model_class_names(config)]


def _class_id(config, value, name: str) -> int:
    """A class name (as the dropdowns offer it) or a class id -> the id the pipeline takes."""
    names = class_names(config)
    text = str(value).strip()
    if text in names:
        return names.index(text)
    if text.isascii() and text.isdigit() and len(text) <= 18 and int(text) < len(names):
        return int(text)
    shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    raise user_error(f"{text[:MAX_CLASS_NAME]!r} is not a class of {name}: expected one of {shown} (or an id).")


def _chosen_class(config, value, name: str, default: int = 0) -> int:
    """A class dropdown's value (a name or an id) -> the class id; left empty: `default`."""
    return _class_id(config, value, name) if value not in (None, "") else default


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


def _public(message: str, folder: Path, name: str) -> str:
    """A message about the model in `folder` that names it as the visitor did: no server path (the zoo's folder, the
    Hub cache) reaches a visitor."""
    return message.replace(str(folder), name)


def _pipeline_folder(folder: Path, name: str) -> Path:
    """A local pipeline folder (model_index.json, hf-dgm's model in gan/ or vae/) -> that model's folder."""
    found = [folder / c.name for c in FAMILIES.values() if (folder / c.name / "config.json").is_file()]
    if len(found) != 1:
        raise user_error(
            f"{name!r} is a pipeline folder (model_index.json) without one hf-dgm model in gan/ or vae/: "
            "expected a model folder (config.json and model.safetensors) or an hf-dgm pipeline folder."
        )
    return found[0]


def _download(repo_id: str) -> Path:
    """config.json and model.safetensors of a Hub repo (within MAX_DOWNLOAD_BYTES) -> their folder in the cache."""
    from huggingface_hub import HfApi, hf_hub_download

    try:
        info = HfApi().model_info(repo_id, files_metadata=True)
        size = sum(s.size or 0 for s in info.siblings or [] if s.rfilename == "model.safetensors")
        if size > MAX_DOWNLOAD_BYTES:
            raise user_error(f"{repo_id} is {size / 2**20:.0f} MB: this app loads models up to 200 MB.")
        folder = Path(hf_hub_download(repo_id, "config.json")).parent
        try:
            config = read_config(folder)
        except ValueError as err:  # not JSON: one line naming the file as the visitor would
            raise user_error(_public(str(err), folder, repo_id)) from None
        if isinstance(config, dict) and config.get("model_type") in FAMILIES:
            hf_hub_download(repo_id, "model.safetensors")
        return folder
    except gr.Error:
        raise
    except Exception as err:  # not found, private, offline, not JSON...
        raise user_error(f"Could not load {repo_id!r} from the Hub ({type(err).__name__}).") from None


def _resolve(name: str) -> Path:
    """A zoo name, a repo id or (locally only) a path -> a folder with an hf-dgm config, or one clear error.
    On a Space, local paths are not looked at: a visitor learns nothing about which folders exist."""
    if not name:
        raise user_error("Pick a model or type a model repo id.")
    try:
        check_model_name(name)
    except ValueError as err:
        raise user_error(str(err)) from None
    if name in zoo_models():
        folder = zoo_dir() / name
    elif not ON_SPACE and Path(name).is_dir():
        folder = Path(name)
        if (folder / "model_index.json").is_file() and not (folder / "config.json").is_file():
            folder = _pipeline_folder(folder, name)
    else:
        repo_id = hub_repo_id(name) if name in ZOO_MODELS else name
        if not REPO_ID.fullmatch(repo_id):
            raise user_error(f"{name!r} is not a model of this app nor a repo id like 'user/model'.")
        folder = _download(repo_id)
    try:
        config = read_config(folder) if (folder / "config.json").is_file() else {}
    except (OSError, ValueError) as err:  # not JSON, not UTF-8, unreadable: the message names the file
        raise user_error(_public(str(err), folder, name)) from None
    if not isinstance(config, dict) or config.get("model_type") not in FAMILIES:
        raise user_error(f"{name!r} is not an hf-dgm GAN or VAE model.")
    return folder


@lru_cache(maxsize=8)
def load_pipeline(folder: str):
    """Loaded once per model and cached. Never with trust_remote_code: only hf-dgm's own classes."""
    return (
        family_of_folder(folder)
        .pipeline_class.from_pretrained(folder, max_parameters=MAX_PARAMETERS, max_activations=MAX_ACTIVATIONS)
        .to(DEVICE)
    )


@lru_cache(maxsize=8)
def footprint(folder: str) -> tuple[int, int]:
    """(parameters, activation values per image) of the sampling network of the model in `folder`, counted on the
    meta device (no memory): what sizes its chunks and decides its lane."""
    pipe = load_pipeline(folder)
    model = getattr(pipe, pipe.component)
    with torch.device("meta"):
        meta = type(model)(model.config)
    parameters = sum(p.numel() for p in model.sampling_network.parameters())
    return parameters, activation_elements(meta.sampling_network, model.config)


@lru_cache(maxsize=1)
def load_classifier():
    from hf_dgm.evaluation.classifier import MNISTClassifier

    path = zoo_dir() / "mnist-classifier"
    return MNISTClassifier.from_pretrained(path).eval() if (path / "config.json").is_file() else None


@dataclass(frozen=True)
class Model:
    """A loaded model as the events use it."""

    pipe: object
    config: object
    name: str  # as the visitor gave it
    activations: int  # activation values of its sampling network per image
    slow: str  # why it runs in the slow lane ("" for a fast model)

    @property
    def max_images(self) -> int:
        """Images per request: fewer on a slow model, and fewer above 128 px (MAX_GRID_PIXELS)."""
        return max(1, min(SLOW_MAX_IMAGES if self.slow else MAX_IMAGES, MAX_GRID_PIXELS // self.config.image_size**2))

    @property
    def cap_reason(self) -> str:
        """Why max_images is what it is, for messages."""
        if self.max_images < (SLOW_MAX_IMAGES if self.slow else MAX_IMAGES):
            return f" for {self.name} ({self.config.image_size}-px images)"
        return f" for {self.name} ({self.slow}: a slow model)" if self.slow else ""


def _slow_reason(config, parameters: int, activations: int) -> str:
    if getattr(config, "pixel_context", 0):
        return "it decodes pixel by pixel"
    if parameters > SLOW_PARAMETERS:
        return f"{parameters / 1e6:.0f} M parameters"
    if activations > SLOW_ACTIVATIONS:
        return f"{activations / 1e6:.1f} M activations per image"
    return ""


def _model(choice, custom) -> Model:
    """The model picked (choice) or typed (custom), loaded."""
    choice, custom = _text(choice, "The model"), _text(custom, "The model repo id")
    name = custom or choice
    folder = _resolve(name)
    try:
        pipe = load_pipeline(str(folder))
        parameters, activations = footprint(str(folder))
    except (ValueError, OSError) as err:  # too large for this app, weights that don't match, unreadable files
        raise user_error(_public(str(err), folder, name)) from None
    config = getattr(pipe, pipe.component).config
    return Model(pipe, config, name, activations, _slow_reason(config, parameters, activations))


_slow_admitted = threading.BoundedSemaphore(SLOW_RUNNING + SLOW_WAITING)
_slow_running = threading.BoundedSemaphore(SLOW_RUNNING)


@contextmanager
def lane(model: Model):
    """Run a request's work in its model's lane: a fast model's at once (Gradio's concurrency limit bounds them), a
    slow model's after the slow ones before it, or "busy, try again" when SLOW_RUNNING + SLOW_WAITING are in."""
    if not model.slow:
        yield
        return
    if not _slow_admitted.acquire(blocking=False):
        raise user_error(
            f"Busy: {model.name} is a slow model ({model.slow}) and the slow models' "
            f"{SLOW_RUNNING + SLOW_WAITING} places are taken. Try again in a minute, or pick a fast model."
        )
    try:
        with _slow_running:
            yield
    finally:
        _slow_admitted.release()


def visitor(request) -> str:
    """Who sent a request (a Starlette request or scope-backed object): the client's address; on a Space, the one
    its proxy saw (the last X-Forwarded-For entry)."""
    forwarded = request.headers.get("x-forwarded-for", "") if ON_SPACE else ""
    return forwarded.split(",")[-1].strip() or (request.client.host if request.client else "unknown")


class VisitorLimit:
    """ASGI middleware: the per-visitor limit, checked when a request asks to join the queue. A visitor may have
    VISITOR_MAX_PENDING requests joining, queued or running (Gradio's events, from joining the queue to their end);
    a further one is answered "busy, try again" (HTTP 422, which gradio_client shows in words). The check and the
    count of joins in flight run on the event loop without a pause between them, so a burst can't slip through."""

    def __init__(self, app, blocks: gr.Blocks):
        self.app, self.blocks, self.joining = app, blocks, {}

    def pending(self, who: str) -> int:
        events = list(self.blocks._queue.event_ids_to_events.values())  # Gradio's record of its queue
        return self.joining.get(who, 0) + sum(e.request is not None and visitor(e.request) == who for e in events)

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not (path.endswith("/queue/join") or "/call/" in path)
        ):
            return await self.app(scope, receive, send)
        who = visitor(Request(scope))
        pending = self.pending(who)
        if pending >= VISITOR_MAX_PENDING:
            message = (
                f"Busy: you have {pending} requests queued or running, the most this app takes from one visitor. "
                "Try again when one has finished."
            )
            log.warning("refused: %s", message)
            detail = [{"__type__": "validate", "is_valid": False, "message": message, "parameter_name": "queue"}]
            return await JSONResponse({"detail": detail}, status_code=422)(scope, receive, send)
        self.joining[who] = self.joining.get(who, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.joining[who] -= 1
            if not self.joining[who]:
                del self.joining[who]


def _labels(config, class_name, n, name: str):
    """n class ids: None for an unconditional model, balanced across the classes for "all", else one class."""
    if not config.num_classes:
        return None
    if class_name in (None, "", ALL_CLASSES):
        return [i % config.num_classes for i in range(n)]
    return [_class_id(config, class_name, name)] * n


def _latents(model: Model, seed: int, n: int, spread: float):
    """Seeded latents, spread as the pipeline understands it: a prior temperature (VAEs) or truncation (GANs), and the
    generator that drew them: its stream goes on into a pixel-by-pixel decoder's draws, as in the pipelines."""
    generator = torch.Generator().manual_seed(seed)
    if model.pipe.component == "vae":  # a prior temperature; the model's fitted prior where it has one
        net = model.pipe.vae.sampling_network
        return prior_latents(model.config, net, n, generator, temperature=spread), generator
    z = sample_latents(model.config, n, generator)
    return (z.clamp(-spread, spread) if spread < 3.0 else z), generator


def draw(model: Model, latents: torch.Tensor, labels=None, generator: torch.Generator | None = None) -> np.ndarray:
    """uint8 images (N, H, W, C) for these latents: the one place the app runs a model to draw images, with the
    package's chunked generation (hf_dgm.sampling.generate_images, as the CLI): chunks whose activations together
    stay within the request budget, MAX_ACTIVATIONS, which counts the batch. Its pixel-by-pixel draws come from one
    generator (`generator`, else seeded with 0, as the pipelines'), so the chunks draw the images one batch would."""
    net = getattr(model.pipe, model.pipe.component).sampling_network
    return generate_images(model.config, net, latents, labels, generator, max_activations=MAX_ACTIVATIONS)


@gpu
@torch.no_grad()
def generate(choice, custom, seed, num_images, class_name, spread):
    seed = _seed(seed)
    spread = _number(spread, "The truncation / temperature", 0.1, 3.0)
    model = _model(choice, custom)
    n = _whole(num_images, "The number of images", 1, model.max_images, model.cap_reason)
    labels = _labels(model.config, class_name, n, model.name)
    with lane(model):
        latents, generator = _latents(model, seed, n, spread)
        images = draw(model, latents, labels, generator)
    # One grid, shown (upscaled, see GRID_TILE) and offered for download at 1x: a gallery of 64 separate files spent
    # most of each request in Gradio's per-file saving, caching and serving (py-spy; see docs/benchmarks.md).
    grid = make_grid(images)
    shown = _upscale(grid, model.config.image_size, GRID_TILE)
    return shown, grid  # PIL images: Gradio owns their files (and deletes them, see CACHE_TTL_S)


@gpu
@torch.no_grad()
def interpolate(choice, custom, seed_a, seed_b, steps, method, class_a=None, class_b=None):
    seed_a, seed_b = _seed(seed_a), _seed(seed_b)
    if method not in ("spherical", "linear"):
        raise user_error(f"The path must be 'spherical' or 'linear', got {_shown(method)}.")
    model = _model(choice, custom)
    steps = _whole(steps, "The number of steps", 2, max(2, min(MAX_STEPS, model.max_images)), model.cap_reason)
    config = model.config
    labels = None
    if config.num_classes:
        a = _chosen_class(config, class_a, model.name)
        b = _chosen_class(config, class_b, model.name, default=a)
        labels = torch.full((steps,), a) if a == b else class_morph(config, a, b, steps)
    (za, _), (zb, _) = _latents(model, seed_a, 1, 1.0), _latents(model, seed_b, 1, 1.0)
    with lane(model):
        out = draw(model, interpolate_latents(za, zb, steps, method), labels)
    return strip_and_gif(out, config.image_size)


def class_morph(config, a: int, b: int, steps: int) -> torch.Tensor:
    """``modeling_utils.class_path`` from class a to class b, within the request budget: the weights are dense (a
    model with millions of classes gets one line, not gigabytes)."""
    if steps * config.num_classes > MAX_ACTIVATIONS // 4:
        raise user_error(
            f"A morph between two of {config.num_classes} classes in {steps} steps is too large for this Space "
            f"(at most {MAX_ACTIVATIONS // 4} class weights): pick fewer steps, or the same class twice."
        )
    return class_path(config.num_classes, a, b, steps)


def strip_and_gif(images: np.ndarray, image_size: int):
    """Frames (uint8, N, H, W, C) -> the strip shown (one row, upscaled, see GRID_TILE) and the GIF's path."""
    frames = [_upscale(_picture(images, i), image_size, GIF_TILE) for i in range(len(images))]
    return _upscale(make_grid(images, nrow=len(images)), image_size, GRID_TILE), gif_file(frames)


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


@contextmanager
def checked_image(source, what: str):
    """An image file (a path or a file object) opened for decoding within the pixel limit: its header is read, a JPEG
    is set to decode at a reduced scale (PIL's draft), and a declared size above MAX_UPLOAD_PIXELS is refused before
    anything is decoded. Every refusal is one line without a server path."""
    try:
        image = Image.open(source)  # reads the header only
    except Image.DecompressionBombError:  # PIL's own limit, far above ours
        raise user_error(
            f"{what} declares too many pixels: this app takes images up to {MAX_UPLOAD_PIXELS:,}."
        ) from None
    except (OSError, SyntaxError, ValueError) as err:  # not an image
        raise _unreadable(what, err) from None
    with image:
        image.draft(None, (DRAFT_SIZE, DRAFT_SIZE))
        if image.width * image.height > MAX_UPLOAD_PIXELS:
            raise user_error(
                f"{what} is {image.width}x{image.height} pixels: this app takes images up to {MAX_UPLOAD_PIXELS:,} "
                "pixels; downscale it first."
            )
        yield image


def _decode(image: Image.Image, what: str) -> Image.Image:
    """The checked image decoded (a truncated file is refused in one line)."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise _unreadable(what, err) from None
    return image


def _unreadable(what: str, err: Exception) -> gr.Error:
    # PIL's message names the file: the server's path of an upload
    return user_error(f"{what} could not be read as an image ({type(err).__name__}): expected PNG, JPEG, ...")


def size_checked(sketch: gr.Sketchpad) -> gr.Sketchpad:
    """The sketchpad, its images (the canvas, or whatever an API caller sends in its place) given the uploads' pixel
    limit before Gradio decodes them. (Wrapped on the instance: a subclass of a Gradio component is a new component
    to Gradio's front end.)"""
    convert = sketch.convert_and_format_image

    def checked(file, flatten_on_white: bool = False):
        if file is not None:
            with checked_image(file.path if hasattr(file, "path") else io.BytesIO(file), "The drawing"):
                pass
        return convert(file, flatten_on_white)

    sketch.convert_and_format_image = checked
    return sketch


def checked_payload(component, what: str, expected: str):
    """The component, an API payload of the wrong shape (a number for a file...) refused in one line: Gradio's own
    check of it ends in a blank error and a traceback. (Its data model is swapped for one of the same name whose
    validation says so.)"""
    model = component.data_model

    def model_validate(cls, obj, *args, **kwargs):
        try:
            return model.model_validate(obj, *args, **kwargs)
        except pydantic.ValidationError:
            raise user_error(f"{what} must be {expected}, got {type(obj).__name__}.") from None

    component.data_model = type(model.__name__, (model,), {"model_validate": classmethod(model_validate)})
    return component


def _digit(sketch, upload) -> np.ndarray:
    """The uploaded file (opened here, so its transparency survives) or the sketch's composite, preprocessed like
    MNIST: (28, 28) uint8."""
    if upload is not None:
        with checked_image(upload, "The upload") as image:
            return _preprocess(_decode(image, "The upload"))
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if not isinstance(composite, np.ndarray) or composite.size == 0:
        raise user_error("Draw a digit on the canvas or upload an image first.")
    return _preprocess(composite)


def _preprocess(drawing) -> np.ndarray:
    try:
        return mnist_preprocess(drawing)
    except ValueError as err:  # a blank drawing
        raise user_error(str(err).capitalize() + ".") from None


def _classify(images01: torch.Tensor):
    clf = load_classifier()
    if clf is None:
        return {}
    probs = clf(images01.float().cpu()).logits.softmax(-1)[0]
    return {str(i): float(p) for i, p in enumerate(probs)}


@gpu
@torch.no_grad()
def reconstruct(choice, custom, sketch=None, upload=None, seed=0):
    """Either input may be left out through the API (the upload wins where both are given)."""
    seed = _seed(seed)
    model = _model(choice, custom)
    pipe, config = model.pipe, model.config
    if not hasattr(pipe, "reconstruct") or (config.image_size, config.num_channels) != (DIGIT_SIZE, DIGIT_CHANNELS):
        raise user_error(
            f"The Draw tab is for digit models, {DIGIT_SIZE}x{DIGIT_SIZE} grey VAEs such as vae-mnist, cvae-mnist, "
            f"mlp-vae-mnist or vae2d-mnist: {model.name} is {_describe(pipe, config)}."
        )
    x = torch.from_numpy(_digit(sketch, upload)).float().div(255)[None, None]
    labels = None
    if config.num_classes:
        reading = _classify(x)
        labels = [int(max(reading, key=reading.get))] if reading else [0]
    with lane(model):
        rec = pipe.reconstruct(x, class_labels=labels, output_type="pt").images
        posterior = pipe.vae.encode(x.to(pipe.vae.device), class_labels=labels).latent_dist
        g = torch.Generator().manual_seed(seed)
        variations = torch.stack([posterior.sample(g)[0].cpu() for _ in range(8)])
        var_images = draw(model, variations, labels * 8 if labels else None)
    big = lambda t: Image.fromarray(to_uint8(t)[0, ..., 0]).resize((140, 140), Image.NEAREST)  # noqa: E731
    return (big(x), big(rec), _classify(x), _classify(rec), make_grid(var_images, nrow=8))


# ---------------------------------------------------------------------------------------------------- your image
UPLOAD_CONVERSION = (
    "turned upright (its EXIF orientation), transparent pixels composited onto white, converted to the model's colours "
    "(RGB or grey), padded with white to a square and resized to the model's size (Lanczos)"
)


@lru_cache(maxsize=1)
def _log_conversion() -> None:
    """How uploads are converted, in the server log once per process."""
    log.info("uploads for the VAEs are %s", UPLOAD_CONVERSION)


def _vae_model(choice, custom) -> Model:
    """The model picked, which must be a VAE: the Your image tab encodes pictures."""
    model = _model(choice, custom)
    if model.pipe.component != "vae":
        what = _describe(model.pipe, model.config)
        raise user_error(f"The Your image tab needs a VAE, which encodes pictures: {model.name} is {what}.")
    return model


def as_model_sees_it(upload, what: str, config) -> torch.Tensor:
    """An uploaded picture as the VAE takes it (UPLOAD_CONVERSION): (1, C, H, W) in [0, 1]. None, not an image, too
    large (checked before it is decoded) or fully transparent: one line."""
    if upload is None:
        raise user_error(f"{what} is missing: upload a picture (PNG, JPEG, ...).")
    with checked_image(upload, what) as image:
        image = _decode(image, what)
        image.thumbnail((8 * config.image_size, 8 * config.image_size))  # before any full-size copy
        try:
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, ZeroDivisionError, KeyError, TypeError) as err:  # malformed EXIF
            raise _unreadable(what, err) from None
        if image.has_transparency_data and image.convert("RGBA").getchannel("A").getbbox() is None:
            raise user_error(f"{what} is fully transparent: nothing to encode. Expected a picture with visible pixels.")
        image = on_white(image).convert("L" if config.num_channels == 1 else "RGB")
    _log_conversion()
    size = (config.image_size, config.image_size)
    array = np.asarray(ImageOps.pad(image, size, Image.Resampling.LANCZOS, color="white"), dtype=np.float32) / 255
    return torch.from_numpy(array.reshape(*size, -1)).permute(2, 0, 1)[None]


def _posterior(model: Model, images: torch.Tensor, labels):
    """q(z | x) of pictures (N, C, H, W) in [0, 1] on the CPU: the encoder's Gaussian; a hierarchical VAE's along its
    mean path, in each latent group's prior units (``VAEModel.encode``)."""
    vae = model.pipe.vae
    posterior = vae.encode(images.to(device=vae.device, dtype=vae.dtype), class_labels=labels).latent_dist
    return posterior.mean.float().cpu(), posterior.std.float().cpu()


@gpu
@torch.no_grad()
def your_image(choice, custom, upload=None, seed=0, num_samples=9, spread=1.0, class_name=None):
    """The picture as the VAE sees it, its reconstruction (the posterior mean decoded) and samples near its latent:
    mean + spread * std * noise, the posterior's own spread at 1 (seeded). Where the posterior is narrow (the latent
    carries the picture) they stay close; where it is as wide as the prior (latent groups of a hierarchical VAE that
    the picture does not inform), they are the prior's draws at that temperature."""
    seed = _seed(seed)
    spread = _number(spread, "The spread", 0.0, 3.0)
    model = _vae_model(choice, custom)
    config = model.config
    most = max(1, model.max_images - 1)  # and the reconstruction
    n = _whole(num_samples, "The number of samples", 1, most, model.cap_reason)
    x = as_model_sees_it(upload, "The upload", config)
    label = [_chosen_class(config, class_name, model.name)] if config.num_classes else None
    with lane(model):
        mean, std = _posterior(model, x, label)
        generator = torch.Generator().manual_seed(seed)
        near = mean + spread * std * sample_latents(config, n, generator)
        out = draw(model, torch.cat([mean, near]), label * (n + 1) if label else None, generator)
    shown = [_upscale(_picture(images), config.image_size, EXPLORE_TILE) for images in (to_uint8(x), out)]
    return *shown, _upscale(make_grid(out[1:]), config.image_size, GRID_TILE)


@gpu
@torch.no_grad()
def interpolate_images(choice, custom, upload_a=None, upload_b=None, steps=8, seed=0, class_name=None):
    """Frames decoded along the straight path between two uploads' posterior means (the VAE's interpolation path):
    the first and last are their reconstructions."""
    seed = _seed(seed)
    model = _vae_model(choice, custom)
    config = model.config
    steps = _whole(steps, "The number of steps", 2, max(2, min(MAX_STEPS, model.max_images)), model.cap_reason)
    pictures = [
        as_model_sees_it(u, what, config) for u, what in ((upload_a, "The upload"), (upload_b, "The second picture"))
    ]
    x = torch.cat(pictures)
    label = [_chosen_class(config, class_name, model.name)] if config.num_classes else None
    with lane(model):
        mean, _ = _posterior(model, x, label * 2 if label else None)
        path = interpolate_latents(mean[0], mean[1], steps, model.pipe.interpolation_method)
        out = draw(model, path, label * steps if label else None, torch.Generator().manual_seed(seed))
    return strip_and_gif(out, config.image_size)


@gpu
@torch.no_grad()
def explore(choice, custom, seed, d0, d1, d2, d3, class_name=None):
    seed = _seed(seed)
    offsets = [_number(d, f"z[{i}]", -3.0, 3.0) for i, d in enumerate((d0, d1, d2, d3))]
    model = _model(choice, custom)
    pipe, config = model.pipe, model.config
    if hasattr(pipe, "reconstruct") and config.latent_dim == 2 and not config.num_classes:  # a VAE's 2-d manifold
        side = min(
            15, math.isqrt(SLOW_MAX_IMAGES) if model.slow else 15, math.isqrt(MAX_GRID_PIXELS // config.image_size**2)
        )
        span = torch.linspace(-2.5, 2.5, max(2, side))
        grid = torch.stack(torch.meshgrid(span, span.flip(0), indexing="xy"), -1).reshape(-1, 2)
        with lane(model):
            return make_grid(draw(model, grid), nrow=len(span), padding=0)
    z, _ = _latents(model, seed, 1, 1.0)
    for i, offset in enumerate(offsets[: config.latent_dim]):
        z[0, i] = offset
    labels = None
    if config.num_classes:
        labels = [_chosen_class(config, class_name, model.name)]
    with lane(model):
        image = draw(model, z, labels)
    return _upscale(_picture(image), config.image_size, EXPLORE_TILE)


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


def _class_dropdowns(names: list[str], current=(None, None, None, None, None)):
    """The five class dropdowns for a model with these class names: Generate (with "all"), Interpolate's A and B,
    Explore, Your image. A current choice the model also has is kept; unconditional models leave them empty and
    inactive."""
    generate_value, a, b, e, y = current
    first, second = (names[0] if names else None), (names[1] if len(names) > 1 else names[0] if names else None)
    keep = lambda value, default: value if value in names else default  # noqa: E731
    return (
        gr.Dropdown(choices=[ALL_CLASSES, *names], value=keep(generate_value, ALL_CLASSES), interactive=bool(names)),
        gr.Dropdown(choices=names, value=keep(a, first), interactive=bool(names)),
        gr.Dropdown(choices=names, value=keep(b, second), interactive=bool(names)),
        gr.Dropdown(choices=names, value=keep(e, first), interactive=bool(names)),
        gr.Dropdown(choices=names, value=keep(y, first), interactive=bool(names)),
    )


def class_choices(
    choice, custom, generate_class=None, class_a=None, class_b=None, explore_class=None, image_class=None
):
    """The model selector's event: the class dropdowns follow the model picked (or typed)."""
    names = class_names(_model(choice, custom).config)[:MAX_CLASS_CHOICES]
    return _class_dropdowns(names, (generate_class, class_a, class_b, explore_class, image_class))


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


def tab_generate(choice, custom, names, queued: dict):
    with gr.Tab("Generate"):
        with gr.Row():
            seed = gr.Number(0, precision=0, label="Seed")
            num = gr.Slider(1, MAX_IMAGES, 16, step=1, label=f"Images (slow models: {SLOW_MAX_IMAGES})")
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
            preprocess=False,  # the inputs are checked by the event: one clear line for NaN, None or a wrong type
            **queued,
        )
    return class_name


def tab_interpolate(choice, custom, names, queued: dict):
    with gr.Tab("Interpolate"):
        with gr.Row():
            seed_a = gr.Number(0, precision=0, label="Seed A")
            seed_b = gr.Number(1, precision=0, label="Seed B")
            steps = gr.Slider(2, MAX_STEPS, 10, step=1, label=f"Steps (slow models: {SLOW_MAX_IMAGES})")
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
            preprocess=False,
            **queued,
        )
    return class_a, class_b


def tab_draw(choice, custom, queued: dict):
    with gr.Tab("Draw a digit (VAE)"):
        gr.Markdown(
            f"For digit models only: draw a digit (or upload one) and a {DIGIT_SIZE}x{DIGIT_SIZE} grey VAE "
            "(vae-mnist, cvae-mnist, mlp-vae-mnist, vae2d-mnist) reconstructs it. The colour models don't take "
            "drawings."
        )
        with gr.Row():
            sketch = gr.Sketchpad(
                type="numpy", image_mode="L", canvas_size=(280, 280), fixed_canvas=True, label="Draw (black on white)"
            )
            sketch = checked_payload(size_checked(sketch), "The drawing", "an image editor's value")
            upload = _upload("…or upload an image (PNG, JPEG, ...)", "The upload")
        # preprocessed by Gradio (the files): a seed without precision reaches the event as sent, NaN included
        seed_r = gr.Number(0, label="Seed for variations")
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
            **queued,
        )


def _upload(label: str, what: str, elem_id: str | None = None) -> gr.File:
    """A picture upload: a file the app opens itself (gr.Image would decode it before the app's checks, and convert
    it to RGB, turning transparent paper black), its API payload checked in one line."""
    upload = gr.File(None, label=label, type="filepath", elem_id=elem_id)
    return checked_payload(upload, what, "a file (gradio_client's handle_file)")


def tab_your_image(choice, custom, names, queued: dict):
    with gr.Tab("Your image (VAE)"):
        gr.Markdown(
            "For the VAEs, the colour ones above all (hvae-emoji, whose latent carries the picture): upload any "
            "picture and see the VAE's reconstruction, "
            "samples near its latent code (the posterior's mean plus its spread times the chosen factor), and the "
            f"frames between two pictures' codes. Each picture is {UPLOAD_CONVERSION}. The digit VAEs do better with "
            "the Draw tab, which prepares a digit like MNIST."
        )
        with gr.Row():
            upload_a = _upload("Your picture (PNG, JPEG, ...)", "The upload", elem_id="your-upload")
            upload_b = _upload("A second picture, to interpolate to", "The second picture")
        with gr.Row():
            # preprocessed by Gradio (the files): the numbers reach the events as sent, NaN included
            seed = gr.Number(0, label="Seed")
            most = f"slow models: {SLOW_MAX_IMAGES - 1}"
            num = gr.Slider(1, MAX_IMAGES - 1, 9, step=1, label=f"Samples near it ({most})")
            spread = gr.Slider(0.0, 3.0, 1.0, step=0.05, label="Spread (1: the posterior's own)")
            steps = gr.Slider(2, MAX_STEPS, 8, step=1, label=f"Frames A to B (slow models: {SLOW_MAX_IMAGES})")
            class_y = _class_dropdown(names, "Class of the pictures (conditional)", names[0] if names else None)
        with gr.Row():
            go = gr.Button("Reconstruct and sample", variant="primary")
            go_i = gr.Button("Interpolate from the first picture to the second", variant="primary")
        with gr.Row():
            seen = gr.Image(label="As the model sees it", format="png", elem_id="seen")
            rec = gr.Image(label="Reconstruction", format="png", elem_id="your-reconstruction")
        near = gr.Image(label="Samples near its latent code", format="png", elem_id="near")
        strip = gr.Image(label="From the first picture to the second", format="png", elem_id="your-strip")
        gif = gr.File(label="Animated GIF")
        inputs = [choice, custom, upload_a, seed, num, spread, class_y]
        go.click(your_image, inputs, [seen, rec, near], api_name="your_image", **queued)
        go_i.click(
            interpolate_images,
            [choice, custom, upload_a, upload_b, steps, seed, class_y],
            [strip, gif],
            api_name="interpolate_images",
            **queued,
        )
    return class_y


def tab_explore(choice, custom, names, queued: dict):
    with gr.Tab("Explore the latent space"):
        gr.Markdown("2-D VAE: the decoded manifold. Other models: move the first latent dimensions.")
        with gr.Row():
            seed_e = gr.Number(0, precision=0, label="Seed")
            class_e = _class_dropdown(names, "Class (conditional)", names[0] if names else None)
        sliders = [gr.Slider(-3, 3, 0, step=0.1, label=f"z[{i}]") for i in range(4)]
        go_e = gr.Button("Decode", variant="primary")
        explored = gr.Image(label="Decoded", format="png", elem_id="explored")
        go_e.click(
            explore,
            [choice, custom, seed_e, *sliders, class_e],
            explored,
            api_name="explore",
            preprocess=False,
            **queued,
        )
    return class_e


def tab_about():
    with gr.Tab("About"):
        gr.Markdown(about_markdown())


class SnapshotSet(set):
    """A set whose iteration walks a copy (taken in one C call). Gradio's cache clean-up (delete_cache) iterates the
    components' file sets in a thread while requests add files to them: one "Set changed size during iteration"
    ended the clean-up for good, and the cache grew (seen in this app's tests under concurrent requests)."""

    def __iter__(self):
        return iter(set.copy(self))


def _safe_cache_cleanup(app: gr.Blocks) -> None:
    """The file sets Gradio's clean-up walks, as SnapshotSets (the same sets, as Gradio gathers them)."""
    components = [b for b in app.blocks.values() if isinstance(b, gr.components.Component)]
    for component in components:
        component.temp_files = SnapshotSet(component.temp_files)
    app.upload_file_set = SnapshotSet(app.upload_file_set)
    app.temp_file_sets = [app.upload_file_set, *(c.temp_files for c in components)]


def build_app() -> gr.Blocks:
    available = zoo_models() or GENERATORS
    names = _initial_class_names(available[0])
    with gr.Blocks(title="hf-dgm: GANs and VAEs", delete_cache=(CACHE_TTL_S, CACHE_TTL_S)) as app:
        gr.Markdown(
            "# hf-dgm — GANs and VAEs on MNIST digits and colour emoji\n"
            "Sample, interpolate and explore grey 28-px digits and colour emoji; see a VAE reconstruct your picture; "
            "draw a digit for the digit VAEs. "
            "Same seed, same images (on one device type)."
        )
        with gr.Row():
            # custom values are allowed (the event checks them): an API caller may name any model here too
            choice = gr.Dropdown(available, value=available[0], label="Model", allow_custom_value=True)
            custom = gr.Textbox(
                "", label="…or a model repo id" + ("" if ON_SPACE else " / local folder"), placeholder="user/my-dcgan"
            )
        queued = dict(concurrency_id="models", concurrency_limit=WORKERS)  # one limit for every model event
        generate_class = tab_generate(choice, custom, names, queued)
        class_a, class_b = tab_interpolate(choice, custom, names, queued)
        image_class = tab_your_image(choice, custom, names, queued)
        tab_draw(choice, custom, queued)
        explore_class = tab_explore(choice, custom, names, queued)
        tab_about()
        dropdowns = [generate_class, class_a, class_b, explore_class, image_class]
        gr.on(  # the class choices follow the model: picked from the list, or typed (on Enter or leaving the box)
            [choice.change, custom.submit, custom.blur],
            class_choices,
            [choice, custom, *dropdowns],
            dropdowns,
            api_visibility="private",
            preprocess=False,
            **queued,
        )
    app.queue(default_concurrency_limit=WORKERS, max_size=MAX_QUEUE)
    _safe_cache_cleanup(app)
    return app


def warm_up():
    """Load the default model while the server starts, so that the first visitor does not wait for the imports
    (transformers) and the weights: cold start to first image 14.1 s before this (scripts/load_test_app.py)."""
    try:
        _model((zoo_models() or GENERATORS)[0], "")
    except Exception as err:  # the first request will report it properly
        print(f"warm-up skipped: {type(err).__name__}: {err}", file=sys.stderr)


def main(port: int | None = None):
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)  # the app's own notes: refusals, and how uploads are converted (once)
    threading.Thread(target=warm_up, daemon=True).start()
    app = build_app()
    app.launch(
        app_kwargs={"middleware": [Middleware(VisitorLimit, blocks=app)]},
        server_name="0.0.0.0" if ON_SPACE else "127.0.0.1",
        server_port=port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        share=False,
        footer_links=[],
        max_file_size=MAX_UPLOAD_BYTES,
    )


if __name__ == "__main__":
    main()
