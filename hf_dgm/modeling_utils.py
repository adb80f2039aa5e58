"""What the GAN and VAE families share: checks of config fields and inputs, the latent prior, activations, and the
loading rules of their Hugging Face classes (strict, structured weight checks before anything is built).

It imports only torch (and ``file_utils``) at module level, so ``hf-dgm sample`` can use it without transformers. On
upload this file is bundled with ``file_utils`` and a family's networks, configuration and modeling files into one
module (``hf_dgm.remote_code``), so it may only import siblings relatively and third-party packages.
"""

import math
import os
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .file_utils import FORMAT_VERSION, count_parameters, read_weight_shapes

# What a config may make a process allocate, checked on the meta device before anything is built (loading, and training
# before any data): parameters, and the activations of the sampling network (elements) for one image; generation
# (hf_dgm.sampling.generate_images) draws in chunks whose activations together stay within the same budget. Raise them
# with these variables; the Space lowers them.
MAX_PARAMETERS = int(os.environ.get("HF_DGM_MAX_PARAMETERS", 1_000_000_000))  # 4 GB of float32 weights
MAX_ACTIVATIONS = int(os.environ.get("HF_DGM_MAX_ACTIVATIONS", 100_000_000))  # 400 MB per image

# Hidden activations by name (`activation` in the configs). Add one here and every architecture accepts it.
ACTIVATIONS = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


# ----------------------------------------------------------------------------------------------------------------------
# Config fields
# ----------------------------------------------------------------------------------------------------------------------


def check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name}={value!r} is invalid: expected a positive int.")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported: expected one of {tuple(choices)}.")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is invalid: expected true or false.")


def check_dims(name: str, value) -> None:
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise ValueError(f"{name}={value!r} is invalid: expected a non-empty list of positive ints.")
    for width in value:
        check_positive_int(f"{name} entry", width)


def check_common_fields(cfg) -> None:
    """Fields every family has: latent size, image shape, conditioning, activation, format version."""
    if getattr(cfg, "format_version", FORMAT_VERSION) != FORMAT_VERSION:  # configs before the field were version 1
        raise ValueError(
            f"format_version={cfg.format_version!r} is not supported by this version of hf_dgm: expected "
            f"{FORMAT_VERSION}. Upgrade hf_dgm to load this model."
        )
    check_positive_int("latent_dim", cfg.latent_dim)
    check_positive_int("image_size", cfg.image_size)
    if cfg.num_channels not in (1, 3) or isinstance(cfg.num_channels, bool):
        raise ValueError(f"num_channels={cfg.num_channels!r} is invalid: expected 1 (grey) or 3 (RGB).")
    if cfg.num_classes is not None:
        if not isinstance(cfg.num_classes, int) or isinstance(cfg.num_classes, bool) or cfg.num_classes < 2:
            raise ValueError(f"num_classes={cfg.num_classes!r} is invalid: expected None or an int >= 2.")
        check_positive_int("class_embed_dim", cfg.class_embed_dim)
    check_choice("activation", cfg.activation, ACTIVATIONS)


def conditioning_classes(cfg) -> int | None:
    """The classes a model's networks are conditioned on: a self-conditioned GAN's clusters (cluster_frequencies),
    else its labels' classes (num_classes), or None."""
    clusters = getattr(cfg, "cluster_frequencies", None)
    return len(clusters) if clusters else cfg.num_classes


def conv_schedule(image_size: int) -> tuple[int, int]:
    """Return ``(initial_size, num_stages)`` with ``image_size == initial_size * 2**num_stages``, 3 <= initial <= 7
    and num_stages >= 2, using the most stride-2 stages (28 -> 7 x 2**2, 32 -> 4 x 2**3, 64 -> 4 x 2**4).
    Raises ``ValueError`` for sizes the convolutional architectures can't produce."""
    message = (
        f"image_size={image_size!r} is not supported by the convolutional architectures: expected an int "
        "of the form b * 2**n with 3 <= b <= 7 and n >= 2 (for example 28, 32, 48 or 64)."
    )
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 12:
        raise ValueError(message)
    size, stages = image_size, 0
    while size % 2 == 0 and size // 2 >= 3:
        size //= 2
        stages += 1
    if stages < 2 or size > 7:
        raise ValueError(message)
    return size, stages


def make_activation(name: str) -> nn.Module:
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


# ----------------------------------------------------------------------------------------------------------------------
# Latents and inputs
# ----------------------------------------------------------------------------------------------------------------------


def randn(shape, generator: torch.Generator | None = None, device=None, dtype=None) -> torch.Tensor:
    """``torch.randn`` drawn on the generator's device, then moved: the same seed gives the same numbers
    whatever device the model lives on (as diffusers' ``randn_tensor``)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    sample = torch.randn(shape, generator=generator, device=gen_device, dtype=dtype or torch.float32)
    return sample.to(device) if device is not None else sample


def sample_latents(cfg, batch_size: int, generator=None, device=None, dtype=None, temperature: float = 1.0):
    """The one place prior latents z ~ N(0, temperature^2 I) are drawn: models, pipelines and the CLI call it."""
    return randn((batch_size, cfg.latent_dim), generator=generator, device=device, dtype=dtype) * temperature


def check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: expected a positive int.")


def check_temperature(temperature) -> None:
    ok = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not (ok and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r} is invalid: expected a positive finite number.")


def check_class_labels(cfg, class_labels, batch_size: int, device=None, mixing: bool = False) -> torch.Tensor | None:
    """Validate and convert ``class_labels`` (int, list or tensor) for a model with ``cfg.num_classes``. With
    `mixing` (where images are drawn from latents), a float tensor (batch_size, num_classes) of class weights is taken
    too: non-negative, each row summing to 1 (``embed_classes``)."""
    if cfg.num_classes is None:
        if class_labels is not None:
            raise ValueError("class_labels were given, but this model is unconditional (num_classes=None).")
        return None
    if class_labels is None:
        raise ValueError(
            f"This model is class-conditional (num_classes={cfg.num_classes}): pass class_labels, "
            f"ints in [0, {cfg.num_classes - 1}]."
        )
    expected = f"ints in [0, {cfg.num_classes - 1}]"
    if mixing and isinstance(class_labels, torch.Tensor) and class_labels.is_floating_point():
        return _check_class_weights(cfg, class_labels, batch_size).to(device=device)
    if isinstance(class_labels, int) and not isinstance(class_labels, bool):
        if not 0 <= class_labels < cfg.num_classes:  # before a list of batch_size copies is made
            raise ValueError(f"class label {class_labels} is out of range: expected {expected}.")
        class_labels = [class_labels] * batch_size
    try:
        labels = torch.as_tensor(class_labels)
    except (ValueError, TypeError, RuntimeError, OverflowError):  # ints beyond int64, strings, None entries
        raise ValueError(f"class_labels must be {expected}, got {short_repr(class_labels)}.") from None
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.ndim != 1:
        raise ValueError(
            f"class_labels must be a 1-D sequence of ints, got dtype {labels.dtype} and shape {tuple(labels.shape)}."
        )
    if labels.shape[0] != batch_size:
        raise ValueError(f"class_labels has {labels.shape[0]} entries, expected one per image ({batch_size}).")
    if labels.numel() and (labels.min() < 0 or labels.max() >= cfg.num_classes):
        bad = labels[(labels < 0) | (labels >= cfg.num_classes)][0].item()
        raise ValueError(f"class label {bad} is out of range: expected {expected}.")
    return labels.to(device=device, dtype=torch.long)


def _check_class_weights(cfg, weights: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Soft class labels: (batch_size, num_classes) finite, non-negative weights, each row summing to 1."""
    shape = (batch_size, cfg.num_classes)
    if tuple(weights.shape) != shape:
        raise ValueError(f"class weights have shape {tuple(weights.shape)}: expected {shape}, one row per image.")
    sums = weights.sum(1)
    if not (weights.isfinite().all() and (weights >= 0).all() and torch.allclose(sums, torch.ones_like(sums))):
        raise ValueError("class weights must be finite, non-negative, and sum to 1 in each row (one image's mix).")
    return weights


def class_path(num_classes: int, a: int, b: int, steps: int) -> torch.Tensor:
    """Class weights (steps, num_classes) along the straight path from class a to class b: drawn with the latents'
    steps, the frames morph from one class into the other through the mixed class embeddings (``embed_classes``), as
    BigGAN's class interpolations do; the end frames are the two classes' own images, bit for bit."""
    t = torch.linspace(0.0, 1.0, steps)
    weights = torch.zeros(steps, num_classes)
    weights[:, a] = 1.0 - t
    weights[:, b] += t
    return weights


def embed_classes(table: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
    """The rows of a class table (num_classes, D) (an embedding's weight, conditional BatchNorm's scales and shifts)
    for class labels: integer labels (N,) pick their rows, class weights (N, num_classes) mix them (weights @ table:
    BigGAN's interpolation between classes). A one-hot row gives its class's row bit for bit."""
    if class_labels.is_floating_point():
        return class_labels.to(table.dtype) @ table
    return table[class_labels]


def short_repr(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def class_names(cfg) -> list[str]:
    """The class names of a conditional model in id order ([] for an unconditional one): ``cfg.id2label`` where it
    names every class (the trainers save a ClassLabel column's names there), else "0", "1", ... (transformers'
    default LABEL_0, LABEL_1, ... names nothing). `cfg` is a config, or its config.json as a dict or namespace."""
    get = cfg.get if isinstance(cfg, dict) else (lambda key: getattr(cfg, key, None))
    num_classes = get("num_classes") or 0
    try:
        named = {int(k): str(v) for k, v in (get("id2label") or {}).items()}
    except (AttributeError, TypeError, ValueError):  # not a mapping of ids to names
        named = {}
    if not all(i in named for i in range(num_classes)) or all(named[i] == f"LABEL_{i}" for i in range(num_classes)):
        named = {}
    return [named.get(i, str(i)) for i in range(num_classes)]


def class_id(cfg, label) -> int:
    """A class name (``class_names``) or an id (int, or its digits) -> the id; ValueError naming the classes."""
    names = class_names(cfg)
    text = str(label).strip()
    if text in names:
        return names.index(text)
    if text.isascii() and text.isdigit() and int(text) < len(names):
        return int(text)
    if not names:
        raise ValueError(f"class label {text!r} given, but the model is unconditional.")
    shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    raise ValueError(f"{text!r} is not a class of this model: expected one of {shown} (or an id 0-{len(names) - 1}).")


def check_latents(cfg, latents) -> None:
    if not isinstance(latents, torch.Tensor) or not latents.is_floating_point():
        raise ValueError(f"latents must be a floating-point tensor, got {type(latents).__name__}.")
    if latents.ndim != 2 or latents.shape[1] != cfg.latent_dim:
        raise ValueError(f"latents have shape {tuple(latents.shape)}, expected (batch_size, {cfg.latent_dim}).")


def check_pixel_values(cfg, pixel_values) -> None:
    c, s = cfg.num_channels, cfg.image_size
    if not isinstance(pixel_values, torch.Tensor) or not pixel_values.is_floating_point():
        raise ValueError(
            f"pixel_values must be a floating-point tensor, got {getattr(pixel_values, 'dtype', type(pixel_values))}."
        )
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (c, s, s):
        raise ValueError(f"pixel_values have shape {tuple(pixel_values.shape)}, expected (batch_size, {c}, {s}, {s}).")


# ----------------------------------------------------------------------------------------------------------------------
# Weights: a structured check of model.safetensors against a config, before any tensor is allocated
# ----------------------------------------------------------------------------------------------------------------------


def check_weight_shapes(expected: dict, found: dict, where: str) -> None:
    """Raise one ValueError naming the missing, unexpected and mis-shaped tensors (the first few of each)."""

    def listed(names):
        return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")

    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    mismatched = [
        f"{k} {found[k]} (the config needs {expected[k]})"
        for k in sorted(expected.keys() & found.keys())
        if tuple(found[k]) != tuple(expected[k])
    ]
    problems = [
        f"{what}: {listed(names)}"
        for what, names in (("missing", missing), ("unexpected", unexpected), ("shapes differ", mismatched))
        if names
    ]
    if problems:
        raise ValueError(f"The weights in {where} don't match its config; {'; '.join(problems)}.")


def meta_state_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def activation_elements(net: nn.Module, cfg, budget: int | None = None) -> int:
    """Elements of every leaf module's output when ``net`` (a meta-device sampling network: latents, labels ->
    images) turns one latent into an image: the activations of one sample, computed without memory.

    Where a cheap upper bound (every leaf module's output at the network's largest width and the full image size) is
    within ``budget``, the bound is returned instead: the exact count runs meta-tensor ops, whose first use imports
    torch._dynamo (about 1 s), too slow for ``hf-dgm sample``'s time to first image."""
    leaves = [m for m in net.modules() if not list(m.children())]
    widest = max((max(p.shape[:2]) for p in net.parameters() if p.ndim), default=1)
    bound = len(leaves) * widest * cfg.image_size**2
    if budget is not None and bound <= budget:
        return bound
    total = 0

    def count(module, inputs, output):
        nonlocal total
        total += output.numel() if isinstance(output, torch.Tensor) else 0

    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        latents = torch.empty(1, cfg.latent_dim, device="meta")
        labels = torch.zeros(1, dtype=torch.long, device="meta") if conditioning_classes(cfg) else None
        with torch.no_grad():
            net.eval()(latents, labels)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def check_footprint(num_parameters: int, activations: int, where: str, max_parameters=None, max_activations=None):
    """Refuse a model whose config declares more than the budgets (see MAX_PARAMETERS)."""
    max_parameters = MAX_PARAMETERS if max_parameters is None else max_parameters
    max_activations = MAX_ACTIVATIONS if max_activations is None else max_activations
    if num_parameters > max_parameters:
        raise ValueError(
            f"{where} declares {num_parameters:,} parameters ({num_parameters * 4 / 2**30:.1f} GiB in float32): "
            f"more than the budget of {max_parameters:,} (HF_DGM_MAX_PARAMETERS)."
        )
    if activations > max_activations:
        raise ValueError(
            f"{where} needs {activations:,} activation values to draw one image ({activations * 4 / 2**30:.1f} GiB "
            f"in float32): more than the budget of {max_activations:,} (HF_DGM_MAX_ACTIVATIONS)."
        )


def check_model_footprint(meta_model: nn.Module, config, where: str, max_parameters=None, max_activations=None):
    """Refuse a model built on the meta device whose config declares more than the budgets: its parameters first
    (cheap), then its sampling network's activations for one image. Returns its state's tensor shapes. Loading
    (``from_pretrained``) and training (before any data or weight) both check this."""
    expected = meta_state_shapes(meta_model)
    check_footprint(count_parameters(expected), 0, where, max_parameters, max_activations)
    budget = MAX_ACTIVATIONS if max_activations is None else max_activations
    activations = activation_elements(meta_model.sampling_network, config, budget)
    check_footprint(0, activations, where, max_parameters, max_activations)
    return expected


def local_model_folder(name_or_path, kwargs: dict) -> Path:
    """A local folder holding config.json and model.safetensors: the folder itself, or a download of a Hub repo
    (config and safetensors only; never code or pickles) with `from_pretrained`'s hub arguments."""
    path = Path(name_or_path)
    subfolder = kwargs.get("subfolder") or ""
    if path.is_dir():
        return path / subfolder
    from huggingface_hub import snapshot_download

    prefix = f"{subfolder}/" if subfolder else ""
    snapshot = snapshot_download(
        str(name_or_path),
        revision=kwargs.get("revision"),
        token=kwargs.get("token"),
        cache_dir=kwargs.get("cache_dir"),
        local_files_only=kwargs.get("local_files_only", False),
        allow_patterns=[f"{prefix}config.json", f"{prefix}*.safetensors"],
    )
    return Path(snapshot) / subfolder


@contextmanager
def eval_mode(module: nn.Module):
    """Run the block with `module` in eval mode, then give it back its training flag."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@contextmanager
def one_intra_op_thread(device):
    """Run a sequential loop of small operations (a decoder drawing pixel by pixel) on one intra-op thread where
    `device` is the CPU; the previous thread count comes back afterwards, also on error. Each step is too small to
    share out, and while other processes use the cores, torch's threads wait for each other at every operation: on a
    busy 2-core CPU one thread drew the same pixels 10-22x faster (``scripts/benchmark_sample.py --pixel-context``).
    torch sets the calling thread's OpenMP count (other threads keep theirs) and the count that threads starting
    meanwhile take."""
    if torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def quiet_progress_bars():
    """transformers' "Loading weights" / "Writing model shards" bars off inside hf-dgm's load and save (a library
    call stays quiet; the bars remain for transformers' own models)."""
    from transformers.utils import logging as transformers_logging

    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)
    if set_hook is None:  # a transformers without the hook: its bars stay
        yield
        return
    previous = set_hook(lambda factory, args, kwargs: factory(*args, **{**kwargs, "disable": True}))
    try:
        yield
    finally:
        set_hook(previous)


class HfDgmConfigMixin:
    """The rules both configs share: validation in ``__post_init__`` (by the family's ``validate_fields``), lists
    kept as lists, and a clear error when a config of another model type is loaded with this class."""

    validate_fields = None  # the family's validation function, set by each config class

    def __post_init__(self, **kwargs):
        for name, value in list(vars(self).items()):
            if isinstance(value, tuple):
                setattr(self, name, list(value))  # JSON round trips give lists: compare equal after save/load
        type(self).validate_fields(self)
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        model_type = config_dict.get("model_type")
        if model_type is not None and model_type != cls.model_type:
            raise ValueError(
                f"This config has model_type={model_type!r}; {cls.__name__} expects {cls.model_type!r}. "
                "Load it with the matching class (or AutoModel)."
            )
        return super().from_dict(config_dict, **kwargs)


class HfDgmModelMixin:
    """The loading and sharing rules both models share.

    ``from_pretrained`` reads safetensors only, and checks the file's tensor names and shapes against the config
    before anything is built (transformers 5 would re-initialise missing weights and only print a report).
    ``push_to_hub`` uploads hf-dgm's card and the code for ``trust_remote_code`` (``hf_dgm.hub``).
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, max_parameters=None, max_activations=None, **kwargs):
        """`PreTrainedModel.from_pretrained` with the checks above; `max_parameters` / `max_activations` lower or
        raise the size budgets (MAX_PARAMETERS, MAX_ACTIVATIONS) for this call."""
        kwargs["use_safetensors"] = True  # never fall back to a pickled pytorch_model.bin
        folder = local_model_folder(pretrained_model_name_or_path, kwargs)
        kwargs.pop("subfolder", None)
        config = kwargs.pop("config", None)
        if config is None:
            config = cls.config_class.from_pretrained(folder)
        where = f"{str(pretrained_model_name_or_path)!r} ({cls.config_class.__name__})"
        with torch.device("meta"):
            meta_model = cls(config)
        expected = check_model_footprint(meta_model, config, where, max_parameters, max_activations)
        check_weight_shapes(expected, read_weight_shapes(folder / "model.safetensors"), where)
        with quiet_progress_bars():
            return super().from_pretrained(folder, *args, config=config, **kwargs)

    def prepare_latents(self, batch_size: int, generator: torch.Generator | None, latents: torch.Tensor | None):
        """`latents` checked and moved to the model's device and dtype, or, when None, `batch_size` draws of
        N(0, I) from `generator`."""
        if latents is None:
            check_batch_size(batch_size)
            return sample_latents(self.config, batch_size, generator, device=self.device, dtype=self.dtype)
        check_latents(self.config, latents)
        return latents.to(device=self.device, dtype=self.dtype)

    def save_pretrained(self, save_directory, *args, **kwargs):
        with quiet_progress_bars():
            out = super().save_pretrained(save_directory, *args, **kwargs)
        # safetensors >= 0.8 writes through a temporary file created 0600 (safetensors#782), so weights saved for a
        # Space, a container or a colleague were readable by their owner only: give them the mode config.json got
        mode = (Path(save_directory) / "config.json").stat().st_mode & 0o777
        for weights in Path(save_directory).glob("*.safetensors"):
            os.chmod(weights, mode)
        return out

    def push_to_hub(self, repo_id: str, **kwargs):
        """Push config, weights, hf-dgm's model card and the code for trust_remote_code. Where hf-dgm is not
        installed (this file loaded as remote code), transformers' push_to_hub is used."""
        try:
            from hf_dgm.hub import push_model_to_hub
        except ImportError:
            return super().push_to_hub(repo_id, **kwargs)
        return push_model_to_hub(self, repo_id, **kwargs)
