"""What the GAN and VAE pipelines share: latent paths, loading (from a pipeline folder or a model folder) and
sharing. On upload this file is bundled with ``image_processing.py`` and the family's pipeline file into the one
root-level module diffusers loads with ``trust_remote_code`` (``hf_dgm.remote_code``): it may only import siblings
relatively and third-party packages.
"""

import importlib
from pathlib import Path

import torch
from diffusers import DiffusionPipeline


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between vectors `a` and `b` (shape (D,)) at fractions `t` (shape (T,)) -> (T, D)."""
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.acos(cos)
    t = t[:, None]  # (T, 1)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolate_latents(a: torch.Tensor, b: torch.Tensor, num_steps: int, method: str = "linear") -> torch.Tensor:
    """(D,) or (1, D) latents -> (num_steps, D) path from a to b, "linear" or "spherical"."""
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps={num_steps!r} is invalid: expected an int >= 2.")
    if method not in ("linear", "spherical"):
        raise ValueError(f"method={method!r} is not supported: expected 'linear' or 'spherical'.")
    a, b = a.reshape(-1), b.reshape(-1)
    t = torch.linspace(0.0, 1.0, num_steps, dtype=a.dtype, device=a.device)
    if method == "linear":
        return a + t[:, None] * (b - a)  # (T, D)
    return slerp(a, b, t)


class HfDgmPipeline(DiffusionPipeline):
    """Base of GANPipeline and VAEPipeline: one model component, named by ``component``."""

    component = ""  # "gan" or "vae": the attribute and subfolder holding the model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """A pipeline folder (model_index.json + the model in a subfolder) or a model folder (config.json +
        model.safetensors: the pipeline is built around it), local or on the Hub. With hf-dgm installed, the model is
        built with hf-dgm's own class (no trust_remote_code); elsewhere (this file loaded as remote code) diffusers
        loads it."""
        try:
            model_cls = getattr(importlib.import_module("hf_dgm"), f"{cls.component.upper()}Model")
        except ImportError:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir() and not importlib.import_module("hf_dgm.zoo").REPO_ID.fullmatch(str(path)):
            raise OSError(
                f"{str(pretrained_model_name_or_path)!r} is neither a pipeline folder (model_index.json), a model "
                "folder (config.json) nor a Hub repo id of the form 'owner/name'."
            )
        if not path.is_dir():
            from huggingface_hub import snapshot_download

            path = Path(
                snapshot_download(
                    str(pretrained_model_name_or_path),
                    revision=kwargs.pop("revision", None),
                    token=kwargs.pop("token", None),
                    cache_dir=kwargs.pop("cache_dir", None),
                    allow_patterns=["model_index.json", "config.json", "*.safetensors", f"{cls.component}/*"],
                    ignore_patterns=["*.py"],
                )
            )
        if (path / "model_index.json").is_file():
            path = path / cls.component
        elif not (path / "config.json").is_file():
            raise OSError(
                f"{str(pretrained_model_name_or_path)!r} is neither a pipeline folder (model_index.json) nor a model "
                "folder (config.json)."
            )
        dtype = kwargs.pop("torch_dtype", None) or kwargs.pop("dtype", None)
        model_kwargs = {k: kwargs.pop(k) for k in ("max_parameters", "max_activations") if k in kwargs}
        if dtype is not None:
            model_kwargs["dtype"] = dtype
        return cls(**{cls.component: model_cls.from_pretrained(path, **model_kwargs)})

    def push_to_hub(self, repo_id: str, **kwargs):
        """Push the pipeline: model_index.json, the root-level pipeline code, the model (with its code) and its card."""
        try:
            hub = importlib.import_module("hf_dgm.hub")
        except ImportError:
            return super().push_to_hub(repo_id, **kwargs)
        return hub.push_pipeline_to_hub(self, repo_id, **kwargs)
