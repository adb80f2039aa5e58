"""Sharing on the Hugging Face Hub: push models, trained model folders and pipelines with a complete card.

What lands in a model repo: `config.json`, `model.safetensors`, the modeling code (`configuration_*.py`,
`networks_*.py`, `modeling_*.py`: `trust_remote_code` loading works without hf-dgm), `README.md` (our card, never
the libraries' template) and, when present in the folder, `samples.png`, `training_args.json`, `eval_results.json`.
A pipeline repo adds `model_index.json` and the pipeline code at its root, the model in a subfolder.

Tokens: the `token` argument, else `HF_TOKEN`, else the login cache (huggingface_hub's own order). A token is never
written to a file, a card, a log line or an exception message by this module.
"""

import shutil
import tempfile
from pathlib import Path

MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "configuration_gan.py",
    "networks_gan.py",
    "modeling_gan.py",
    "configuration_vae.py",
    "networks_vae.py",
    "modeling_vae.py",
    "samples.png",
    "training_args.json",
    "eval_results.json",
)


def _stage_model_folder(model_dir: Path, stage: Path, repo_id: str):
    from .model_card import write_model_card

    stage.mkdir(parents=True, exist_ok=True)
    if not (model_dir / "config.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{str(model_dir)!r} is not a model folder: it needs config.json and model.safetensors."
        )
    for name in MODEL_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, stage / name)
    write_model_card(stage, repo_id=repo_id)


def _upload(
    stage: Path,
    repo_id: str,
    *,
    repo_type="model",
    private=None,
    revision=None,
    commit_message=None,
    token=None,
    create_pr=False,
):
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    extra = {"space_sdk": "gradio"} if repo_type == "space" else {}
    url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
    repo_id = url.repo_id
    if revision is not None and revision != "main":
        api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(stage),
        repo_type=repo_type,
        revision=revision,
        commit_message=commit_message or "Upload with hf-dgm",
        create_pr=create_pr,
    )


def push_model_folder(model_dir, repo_id: str, **upload_kwargs):
    """Push a saved or trained model folder (see the module docstring for what lands). Returns the CommitInfo.
    Files in `model_dir` are only read."""
    model_dir = Path(model_dir)
    with tempfile.TemporaryDirectory(prefix="hf_dgm_push_") as tmp:
        stage = Path(tmp) / "repo"
        _stage_model_folder(model_dir, stage, repo_id)
        return _upload(stage, repo_id, **upload_kwargs)


def push_model_to_hub(model, repo_id: str, **upload_kwargs):
    """`GANModel.push_to_hub` / `VAEModel.push_to_hub`: an in-memory model pushes what it has (its card says that
    it has no training record or evaluation)."""
    upload_kwargs = _upload_kwargs(upload_kwargs)
    with tempfile.TemporaryDirectory(prefix="hf_dgm_push_") as tmp:
        model.save_pretrained(Path(tmp) / "model")
        return push_model_folder(Path(tmp) / "model", repo_id, **upload_kwargs)


def push_pipeline_to_hub(pipeline, repo_id: str, **upload_kwargs):
    """`GANPipeline.push_to_hub` / `VAEPipeline.push_to_hub`."""
    from .model_card import write_model_card

    upload_kwargs = _upload_kwargs(upload_kwargs)
    with tempfile.TemporaryDirectory(prefix="hf_dgm_push_") as tmp:
        stage = Path(tmp) / "repo"
        pipeline.save_pretrained(stage)
        component = "gan" if hasattr(pipeline, "gan") else "vae"
        write_model_card(stage / component, repo_id=repo_id)
        shutil.copy2(stage / component / "README.md", stage / "README.md")
        return _upload(stage, repo_id, **upload_kwargs)


def _upload_kwargs(kwargs: dict) -> dict:
    """Accept transformers' / diffusers' push_to_hub argument names."""
    allowed = {"private", "revision", "commit_message", "token", "create_pr"}
    out = {k: v for k, v in kwargs.items() if k in allowed}
    unknown = set(kwargs) - allowed - {"safe_serialization", "max_shard_size", "use_temp_dir"}
    if unknown:
        raise ValueError(f"Unsupported push_to_hub arguments: {sorted(unknown)}; expected some of {sorted(allowed)}.")
    return out


def deploy_space(repo_id: str, app_dir=None, carry_checkpoints: bool = False, **upload_kwargs):
    """Upload `spaces_app/` as a Gradio Space repo: its README front matter, requirements and app code, plus the
    `hf_dgm` package beside app.py. The Space loads the zoo from its Hub repo ids, or, with `carry_checkpoints`,
    from a copy of `zoo/` uploaded with it."""
    app_dir = Path(app_dir) if app_dir else Path(__file__).resolve().parent.parent / "spaces_app"
    if not (app_dir / "app.py").is_file() or not (app_dir / "README.md").is_file():
        raise FileNotFoundError(f"{str(app_dir)!r} has no app.py and README.md: not a Space folder.")
    with tempfile.TemporaryDirectory(prefix="hf_dgm_space_") as tmp:
        stage = Path(tmp) / "space"
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
        shutil.copytree(app_dir, stage, ignore=ignore)
        package = Path(__file__).resolve().parent
        shutil.copytree(package, stage / "hf_dgm", ignore=ignore)
        if carry_checkpoints:
            from .zoo import zoo_dir

            shutil.copytree(zoo_dir(), stage / "zoo", ignore=ignore)
        return _upload(stage, repo_id, repo_type="space", **upload_kwargs)
