"""What the GAN and VAE pipelines share: the steps of ``__call__``, latent paths, loading (from a pipeline folder or
a model folder) and sharing. On upload this file is bundled with ``image_processing.py`` and the family's pipeline file into the one
root-level module diffusers loads with ``trust_remote_code`` (``hf_dgm.remote_code``): it may only import siblings
relatively and third-party packages.
"""

import importlib
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from .image_processing import OUTPUT_TYPES, postprocess


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
    r"""
    Base of [`GANPipeline`] and [`VAEPipeline`]: one model component (named by `component`), the steps of `__call__`
    and `interpolate` they share, and their loading and sharing. A family's pipeline adds `_sample`, which turns its
    arguments into images in [0, 1].
    """

    component = ""  # "gan" or "vae": the attribute and subfolder holding the model
    interpolation_method = "linear"  # the family's default path for `interpolate`
    # what `from_pretrained` accepts besides the path (diffusers' names; `torch_dtype` is diffusers' older `dtype`)
    loading_kwargs = (
        "local_files_only", "subfolder", "revision", "cache_dir", "token", "force_download", "torch_dtype", "dtype",
        "max_parameters", "max_activations",
    )  # fmt: skip

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        class_labels=None,
        output_type: str = "pil",
        return_dict: bool = True,
        **kwargs,
    ):
        r"""
        The call function to the pipeline for generation.

        Args:
            batch_size (`int`, *optional*, defaults to 1):
                The number of images to generate (ignored when `latents` is given).
            generator (`torch.Generator`, *optional*):
                A [`torch.Generator`](https://pytorch.org/docs/stable/generated/torch.Generator.html) that makes the
                draw deterministic: the same seed gives the same pixels on one device type.
            latents (`torch.Tensor` of shape `(batch_size, latent_dim)`, *optional*):
                Latents to use instead of drawing them from the prior.
            class_labels (`int`, `list[int]` or `torch.Tensor`, *optional*):
                For class-conditional models: one class for every image, or one per image, or class weights
                `(N, num_classes)` (non-negative, rows summing to 1) that mix the classes' embeddings.
            output_type (`str`, *optional*, defaults to `"pil"`):
                `"pil"` (a list of `PIL.Image.Image`), `"np"` (a float array `(N, H, W, C)` in [0, 1]) or `"pt"` (a
                float tensor `(N, C, H, W)` in [0, 1]).
            return_dict (`bool`, *optional*, defaults to `True`):
                Whether to return an [`~pipelines.ImagePipelineOutput`] instead of a plain tuple.
            kwargs:
                The family's own arguments: `truncation` ([`GANPipeline`]) or `temperature` ([`VAEPipeline`]).

        Returns:
            [`~pipelines.ImagePipelineOutput`] or `tuple`: an [`~pipelines.ImagePipelineOutput`] with the images, or
            `(images,)` when `return_dict` is `False`.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported: expected one of {OUTPUT_TYPES}.")
        images = postprocess(self._sample(batch_size, generator, latents, class_labels, **kwargs), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    def _sample(self, batch_size, generator, latents, class_labels, **kwargs) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1]: the family's sampling (its own keyword arguments after the shared ones)."""
        raise NotImplementedError

    @torch.no_grad()
    def interpolate(
        self,
        latent_start: torch.Tensor,
        latent_end: torch.Tensor,
        num_steps: int = 8,
        method: str | None = None,
        class_labels=None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        r"""
        Images along a path between two latents.

        Args:
            latent_start, latent_end (`torch.Tensor` of shape `(latent_dim,)` or `(1, latent_dim)`):
                The ends of the path.
            num_steps (`int`, *optional*, defaults to 8):
                The number of images, ends included (at least 2).
            method (`str`, *optional*):
                `"linear"` or `"spherical"` (slerp); defaults to the family's `interpolation_method` (spherical for
                GANs, linear for VAEs).
            class_labels (`int`, `list[int]` or `torch.Tensor`, *optional*):
                For class-conditional models: one class for every frame, one per frame, or class weights per frame
                (as in `__call__`: a path between two one-hot rows morphs one class into the other).
            output_type, return_dict:
                As in `__call__`.
        """
        path = interpolate_latents(latent_start, latent_end, num_steps, method or self.interpolation_method)
        return self(latents=path, class_labels=class_labels, output_type=output_type, return_dict=return_dict)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        r"""
        Load a pipeline folder (`model_index.json` and the model in a subfolder) or a model folder (`config.json` and
        `model.safetensors`: the pipeline is built around it), local or on the Hub. With hf-dgm installed the model
        is built with hf-dgm's own class (no `trust_remote_code`; only config and safetensors are downloaded, never
        code or pickles); elsewhere (this file loaded as remote code) diffusers loads it.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`):
                A local folder, or a Hub repo id such as `"owner/dcgan-mnist"`.
            local_files_only, revision, cache_dir, token, force_download (*optional*):
                As in [`~huggingface_hub.snapshot_download`], for a Hub repo id.
            subfolder (`str`, *optional*):
                The folder inside the repo or local folder that holds the pipeline or model.
            dtype (`torch.dtype`, *optional*):
                The model's dtype (`torch_dtype` is accepted too, as in diffusers).
            max_parameters, max_activations (`int`, *optional*):
                Lower or raise the size budgets the config is checked against (`hf_dgm.modeling_utils`).

        Raises `ValueError` for any other keyword argument, and `OSError` for a path that is no such folder.
        """
        try:
            model_cls = getattr(importlib.import_module("hf_dgm"), f"{cls.component.upper()}Model")
        except ImportError:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        unknown = sorted(set(kwargs) - set(cls.loading_kwargs))
        if unknown:
            raise ValueError(
                f"{cls.__name__}.from_pretrained got unsupported arguments {unknown}: expected some of "
                f"{sorted(cls.loading_kwargs)}."
            )
        path = cls._local_folder(pretrained_model_name_or_path, kwargs)
        model_kwargs = {k: kwargs[k] for k in ("max_parameters", "max_activations") if k in kwargs}
        dtype = kwargs.get("dtype") or kwargs.get("torch_dtype")
        if dtype is not None:
            model_kwargs["dtype"] = dtype
        return cls(**{cls.component: model_cls.from_pretrained(path, **model_kwargs)})

    @classmethod
    def _local_folder(cls, name_or_path, kwargs: dict) -> Path:
        """The local model folder of a pipeline folder or a model folder, downloaded first for a Hub repo id."""
        subfolder = kwargs.get("subfolder") or ""
        path = Path(name_or_path)
        if not path.is_dir() and not importlib.import_module("hf_dgm.zoo").REPO_ID.fullmatch(str(name_or_path)):
            raise OSError(
                f"{str(name_or_path)!r} is neither a pipeline folder (model_index.json), a model folder "
                "(config.json) nor a Hub repo id of the form 'owner/name'."
            )
        if not path.is_dir():
            from huggingface_hub import snapshot_download

            prefix = f"{subfolder}/" if subfolder else ""
            patterns = ["model_index.json", "config.json", "*.safetensors", f"{cls.component}/*"]
            names = ("revision", "cache_dir", "token", "local_files_only", "force_download")
            path = Path(
                snapshot_download(
                    str(name_or_path),
                    allow_patterns=[prefix + pattern for pattern in patterns],
                    ignore_patterns=["*.py"],
                    **{k: kwargs[k] for k in names if kwargs.get(k) is not None},
                )
            )
        path = path / subfolder
        if (path / "model_index.json").is_file():
            return path / cls.component
        if not (path / "config.json").is_file():
            raise OSError(
                f"{str(name_or_path)!r}{f' (subfolder {subfolder!r})' if subfolder else ''} is neither a pipeline "
                "folder (model_index.json) nor a model folder (config.json)."
            )
        return path

    def push_to_hub(self, repo_id: str, **kwargs):
        """Push the pipeline: model_index.json, the root-level pipeline code, the model (with its code) and its card."""
        try:
            hub = importlib.import_module("hf_dgm.hub")
        except ImportError:
            return super().push_to_hub(repo_id, **kwargs)
        return hub.push_pipeline_to_hub(self, repo_id, **kwargs)
