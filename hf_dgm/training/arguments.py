"""Training arguments: one dataclass per trainer, every field a ``--dashed-flag`` of ``hf-dgm train`` with its help,
default and choices (dataclass field metadata, as transformers' ``HfArgumentParser`` reads it).

The model flags are not a hand-kept mirror of the config: :func:`with_model_fields` copies the config class's own
fields (type, default) onto the arguments class, with the help text of the config's docstring and the choices of
its registries (``field_choices``). A new config field is a new flag.
"""

import argparse
import inspect
import math
import re
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from ..data import MNIST_ID, check_holdout_fraction
from ..help_formatter import HelpFormatter

LR_SCHEDULES = ("constant", "cosine", "linear")


def arg(default, help: str, group: str, choices=None):
    """A dataclass field with its command-line help, argument group and choices."""
    metadata = {"help": help, "group": group, "choices": tuple(choices) if choices else None}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainingArguments:
    """Arguments shared by both trainers."""

    output_dir: str = arg("outputs/run", "folder of the run: checkpoints, logs, sample grids, the final model", "run")
    init_from: str | None = arg(
        None, "start from this model folder instead of building one from the model flags", "model"
    )
    conditional: bool = arg(False, "condition on --label-column (num_classes: the labels' class count)", "model")
    dataset: str = arg(MNIST_ID, "Hub dataset id or local folder (parquet/arrow/imagefolder)", "data")
    split: str = arg("train", "dataset split", "data")
    image_column: str = arg("image", "column holding the images", "data")
    label_column: str | None = arg("label", "column holding class labels ('none' for no labels)", "data")
    max_samples: int | None = arg(
        None, "use only the first N images (the tiny-data switch for CI and smoke tests)", "data"
    )
    holdout_fraction: float = arg(
        0.0,
        "share of the split kept out of training, drawn at random with a fixed seed (hf-dgm evaluate measures a VAE's "
        "NLL on it)",
        "data",
    )
    on_bad_image: str = arg(
        "skip", "an undecodable image: skip it (and count it) or stop with its index", "data", ("skip", "error")
    )
    streaming: bool | None = arg(
        None, "stream the split instead of decoding it into memory; none: when it exceeds --max-memory-gb", "data"
    )
    max_memory_gb: float = arg(8.0, "the decoded split's size above which it is streamed", "data")
    batch_size: int = arg(128, "images per step (per process)", "schedule")
    max_steps: int = arg(1000, "optimisation steps in all (resuming continues up to this step)", "schedule")
    lr_schedule: str = arg("constant", "learning-rate schedule after warm-up", "schedule", LR_SCHEDULES)
    warmup_steps: int = arg(0, "steps of linear learning-rate warm-up", "schedule")
    seed: int = arg(0, "seed of weights, data order and noise", "schedule")
    device: str = arg(
        "auto", "auto: CUDA or MPS when available, else the CPU", "hardware", ("auto", "cpu", "cuda", "mps")
    )
    mixed_precision: str = arg(
        "no",
        "automatic mixed precision (bf16 also speeds up CPUs with bf16 instructions)",
        "hardware",
        ("no", "bf16", "fp16"),
    )
    allow_tf32: bool = arg(False, "TF32 matmuls and convolutions on Ampere and newer GPUs", "hardware")
    channels_last: bool = arg(False, "channels-last memory format", "hardware")
    compile: bool = arg(False, "torch.compile the networks", "hardware")
    log_every: int = arg(50, "log metrics every N steps (logs/metrics.jsonl and the tracker)", "logging")
    sample_every: int = arg(500, "write a sample grid every N steps (samples/)", "logging")
    num_grid_images: int = arg(64, "images per sample grid (fixed, seeded latents)", "logging")
    report_to: str = arg("tensorboard", "an accelerate tracker, 'all' or 'none'", "logging")
    progress_bar: bool = arg(True, "show a progress bar", "logging")
    checkpoint_every: int = arg(500, "save a resumable checkpoint every N steps", "checkpoints")
    keep_checkpoints: int = arg(2, "checkpoints kept (older ones are deleted)", "checkpoints")
    resume_from: str | None = arg(None, "'latest' or a checkpoint folder to continue from", "checkpoints")
    on_nonfinite: str = arg(
        "stop", "a NaN/inf loss: stop (the last good checkpoint stays) or skip the step and count it", "checkpoints",
        ("stop", "skip"),
    )  # fmt: skip
    overwrite_output_dir: bool = arg(
        False, "start afresh in a folder that holds another run's checkpoints or trained model (they are replaced)",
        "checkpoints",
    )  # fmt: skip
    push_to_hub: bool = arg(
        False, "push the final model to --hub-model-id (token: HF_TOKEN or the login cache)", "sharing"
    )
    card_note: str = arg(
        "", "a sentence for the model card, shown under its description (e.g. why this recipe)", "sharing"
    )
    hub_model_id: str | None = arg(None, "Hub repo id, e.g. user/dcgan-mnist", "sharing")
    hub_private: bool = arg(False, "create the Hub repo as private", "sharing")
    hub_checkpoint_branch: str | None = arg(None, "also push each checkpoint's model to this branch", "sharing")

    def validate(self):
        """Every check that needs no data, so bad arguments fail before anything is loaded."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"--{f.name.replace('_', '-')} {value!r} is invalid: expected a finite number.")
        if Path(self.output_dir).exists() and not Path(self.output_dir).is_dir():
            raise ValueError(
                f"--output-dir {self.output_dir!r} is a file: expected a folder (a new one, or a run's to resume)."
            )
        for name in ("batch_size", "max_steps", "log_every", "sample_every", "checkpoint_every", "num_grid_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} {value!r} is invalid: expected a positive int.")
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(
                    f"--{f.name.replace('_', '-')} {getattr(self, f.name)!r} is invalid: expected one of {choices}."
                )
        if (self.push_to_hub or self.hub_checkpoint_branch) and not self.hub_model_id:
            raise ValueError("--push-to-hub and --hub-checkpoint-branch need --hub-model-id (e.g. user/dcgan-mnist).")
        check_holdout_fraction(self.holdout_fraction, "--holdout-fraction")
        if self.warmup_steps < 0 or self.keep_checkpoints < 0:
            raise ValueError("--warmup-steps and --keep-checkpoints must be >= 0.")
        if self.init_from is None:
            check_model_flags_apply(self)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------------
# Model flags from the config class
# ----------------------------------------------------------------------------------------------------------------------


def config_field_docs(config_class) -> dict[str, str]:
    """Each argument's description in a config's docstring (its ``Args:`` block): the first sentence, or all of it for
    an optional field (the rest says what unset means)."""
    docs, name = {}, None
    for line in inspect.getdoc(config_class).split("Args:", 1)[-1].splitlines():
        match = re.match(r"^    (\w+) \(`", line)
        if match:
            name = match.group(1)
            docs[name] = ""
        elif name and line.startswith("        "):
            docs[name] = f"{docs[name]} {line.strip()}".strip()
    optional = {f.name for f in fields(config_class) if f.default is None}
    return {k: v.rstrip(".") if k in optional else v.split(". ")[0].rstrip(".") for k, v in docs.items()}


def model_field_names(config_class, exclude=()) -> list[str]:
    """The config class's own fields (not PretrainedConfig's), in declaration order."""
    return [name for name in inspect.get_annotations(config_class) if name not in exclude]


def with_model_fields(config_class, exclude=()):
    """Class decorator (apply below ``@dataclass``): add the config's fields as model arguments."""
    config_fields = {f.name: f for f in fields(config_class)}
    docs = config_field_docs(config_class)
    choices = getattr(config_class, "field_choices", {})

    def decorate(cls):
        annotations = {}
        for name in model_field_names(config_class, exclude):
            source = config_fields[name]
            default = source.default_factory() if source.default is MISSING else source.default
            annotations[name] = inspect.get_annotations(config_class)[name]
            setattr(cls, name, arg(default, docs.get(name, ""), "model", choices.get(name)))
        cls.__annotations__ = {**annotations, **inspect.get_annotations(cls)}
        cls.model_fields = tuple(annotations)
        cls.model_config_class = config_class
        return cls

    return decorate


def check_model_flags_apply(args) -> None:
    """Refuse a model flag set away from its default that the chosen entry of a registry does not read (for example
    --generator-hidden-dims, an `mlp` width, with --architecture dcgan): it would be accepted and ignored."""
    registries = getattr(getattr(args, "model_config_class", None), "field_registries", {})
    defaults = {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(args)}
    for selector, registry in registries.items():
        chosen = registry.get(getattr(args, selector))
        if chosen is None:
            continue  # an unknown choice: the choices check names it
        for name in dict.fromkeys(name for entry in registry.values() for name in entry.fields):
            if name not in chosen.fields and getattr(args, name) != defaults[name]:
                readers = [key for key, entry in registry.items() if name in entry.fields]
                raise ValueError(
                    f"--{name.replace('_', '-')} applies to --{selector.replace('_', '-')} {' or '.join(readers)}, "
                    f"not {getattr(args, selector)!r}: drop it, or choose one of those."
                )


# ----------------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    pass


def _none_or(kind):
    def convert(text):
        return None if text.lower() == "none" else kind(text)

    convert.__name__ = kind.__name__
    return convert


def build_parser(cls, prog: str, description: str) -> argparse.ArgumentParser:
    """One ``--dashed-flag`` per field of ``cls``, grouped, with help, default and choices (bools as --x/--no-x)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter)
    groups = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        group_name = f.metadata.get("group", "other")
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        flags = ["--" + f.name.replace("_", "-")] + (["--resolution"] if f.name == "image_size" else [])
        hint = hints[f.name]
        optional = type(None) in typing.get_args(hint)
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
        default = f.default_factory() if f.default is MISSING else f.default
        kwargs = dict(dest=f.name, default=default, help=f.metadata.get("help") or " ")
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is list:
            kwargs.update(type=typing.get_args(base)[0], nargs="+")
        else:
            kwargs.update(type=_none_or(base) if optional else base, choices=f.metadata.get("choices"))
        groups[group_name].add_argument(*flags, **kwargs)
    return parser


def parse_arguments(cls, argv, prog: str, description: str):
    namespace = build_parser(cls, prog, description).parse_args(argv)
    return cls(**{f.name: getattr(namespace, f.name) for f in fields(cls)})
