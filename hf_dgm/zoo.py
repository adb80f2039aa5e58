"""Where the shipped model zoo lives. One location, used by the CLI and the Space.

A source checkout carries the zoo as Hub-repo-shaped folders in ``<repo>/zoo/<name>``; ``$HF_DGM_ZOO`` overrides
the folder. Where the package is installed without the repository, a zoo name resolves to its Hub repo id
``hf-dgm/<name>``.
"""

import os
import re
from pathlib import Path

HUB_NAMESPACE = "hf-dgm"
DEFAULT_MODEL = "dcgan-mnist"
GENERATIVE_MODELS = (
    "dcgan-mnist",
    "cdcgan-mnist",
    "scgan-mnist",
    "vae-mnist",
    "cvae-mnist",
    "mlp-gan-mnist",
    "mlp-vae-mnist",
    "vae2d-mnist",
    "gan-emoji",
    "vae-emoji",
    "hvae-emoji",
)
CLASSIFIERS = ("mnist-classifier", "emoji-classifier")  # the feature spaces of `hf-dgm evaluate`, not samplers
ZOO_MODELS = GENERATIVE_MODELS + CLASSIFIERS


# a Hub repo id: owner/name, letters, digits, "-", "_" and "." (the Hub's own rule, 96 characters a part)
REPO_ID = re.compile(r"[\w][\w.-]{0,95}/[\w][\w.-]{0,95}")
MAX_NAME_LENGTH = 255


def check_model_name(name: str) -> None:
    """One clear error for a name no folder or repo can have (the OS would say "File name too long")."""
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(
            f"A model name of {len(name)} characters can't be a folder or a Hub repo id: expected at most "
            f"{MAX_NAME_LENGTH} (a repo id is owner/name, 96 characters a part)."
        )


def zoo_dir() -> Path:
    """The zoo folder: ``$HF_DGM_ZOO`` or ``zoo/`` beside the package in a source checkout."""
    env = os.environ.get("HF_DGM_ZOO")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "zoo"


def hub_repo_id(name: str) -> str:
    return f"{HUB_NAMESPACE}/{name}"


def resolve_model(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """A local model folder, a zoo name, or a Hub repo id -> a local folder holding config.json.

    Repo ids are downloaded with ``huggingface_hub.snapshot_download`` (config, weights, card and grid only; never
    code or pickles).
    """
    check_model_name(str(name_or_path))
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{str(path)!r} is a folder but holds no config.json: not a model folder.")
        return path
    name = str(name_or_path)
    if name in ZOO_MODELS and (zoo_dir() / name / "config.json").is_file():
        return zoo_dir() / name
    repo_id = hub_repo_id(name) if name in ZOO_MODELS else name
    if not REPO_ID.fullmatch(repo_id):
        raise FileNotFoundError(
            f"{name!r} is neither a model folder, a zoo model ({', '.join(ZOO_MODELS)}) nor a Hub repo id "
            "of the form 'owner/name'."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=["config.json", "*.safetensors", "README.md", "*.png", "*.json"],
            )
        )
    except Exception as err:  # not found, private, offline, a server error: one line that names the repo
        if not isinstance(err, OSError) and type(err).__module__.split(".")[0] not in ("huggingface_hub", "httpx"):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"Could not get the model {repo_id!r} from the Hub: {type(err).__name__}: {reason}") from None
