"""Where the shipped model zoo lives. One location, used by the CLI and the Space.

A source checkout carries the zoo as Hub-repo-shaped folders in ``<repo>/zoo/<name>``; ``$HF_DGM_ZOO`` overrides
the folder. Where the package is installed without the repository, a zoo name resolves to its Hub repo id
``hf-dgm/<name>``.
"""

import os
from pathlib import Path

HUB_NAMESPACE = "hf-dgm"
DEFAULT_MODEL = "dcgan-mnist"
ZOO_MODELS = (
    "dcgan-mnist",
    "cdcgan-mnist",
    "vae-mnist",
    "cvae-mnist",
    "mlp-gan-mnist",
    "mlp-vae-mnist",
    "vae2d-mnist",
    "mnist-classifier",
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
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{str(path)!r} is a folder but holds no config.json: not a model folder.")
        return path
    name = str(name_or_path)
    if name in ZOO_MODELS and (zoo_dir() / name / "config.json").is_file():
        return zoo_dir() / name
    repo_id = hub_repo_id(name) if name in ZOO_MODELS else name
    if repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
        raise FileNotFoundError(
            f"{name!r} is neither a model folder, a zoo model ({', '.join(ZOO_MODELS)}) nor a Hub repo id "
            "of the form 'owner/name'."
        )
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo_id, revision=revision, allow_patterns=["config.json", "*.safetensors", "README.md", "*.png", "*.json"]
        )
    )
