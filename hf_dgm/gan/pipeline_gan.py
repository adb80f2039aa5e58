"""GANPipeline: sample images from a GANModel with the diffusers pipeline API.

``__call__``, ``interpolate``, loading and sharing are those of every hf-dgm pipeline
(``hf_dgm.pipeline_utils.HfDgmPipeline``); this file adds the GAN's sampling and its truncation trick."""

from ..modeling_utils import check_batch_size, sample_latents
from ..pipeline_utils import HfDgmPipeline, interpolate_latents

__all__ = ["GANPipeline", "interpolate_latents"]  # interpolate_latents: the tutorial's path to it


class GANPipeline(HfDgmPipeline):
    r"""
    Pipeline for image generation with a [`GANModel`] (its EMA generator when present).

    This model inherits from [`DiffusionPipeline`]. Check the superclass documentation for the generic methods
    implemented for all pipelines (downloading, saving, running on a particular device, etc.).

    Args:
        gan ([`GANModel`]):
            The GAN. (In diffusers, `generator` always means a `torch.Generator`.)

    Call arguments: those of [`HfDgmPipeline.__call__`], and
        truncation (`float`, *optional*):
            If set, the latents are clamped to [-truncation, truncation] (the truncation trick): less variety, more
            typical images. Positive.

    Example:
        ```py
        >>> import torch
        >>> from hf_dgm import GANPipeline

        >>> pipe = GANPipeline.from_pretrained("path/to/dcgan-mnist")
        >>> images = pipe(batch_size=16, generator=torch.Generator().manual_seed(0), truncation=0.7).images
        ```
    """

    model_cpu_offload_seq = "gan"
    component = "gan"
    interpolation_method = "spherical"

    def __init__(self, gan):
        super().__init__()
        self.register_modules(gan=gan)

    def _sample(self, batch_size, generator, latents, class_labels, truncation: float | None = None):
        if truncation is not None:
            if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not truncation > 0:
                raise ValueError(f"truncation={truncation!r} is invalid: expected a positive number.")
            if latents is None:
                check_batch_size(batch_size)
                latents = sample_latents(self.gan.config, batch_size, generator)  # drawn as GANModel.generate does
            latents = latents.clamp(-truncation, truncation)
        sample = self.gan.generate(batch_size, generator=generator, latents=latents, class_labels=class_labels).sample
        return ((sample + 1.0) / 2.0).clamp(0.0, 1.0)  # [-1, 1] -> [0, 1]
