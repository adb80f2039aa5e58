"""GANPipeline: sample images from a GANModel with the diffusers pipeline API.

Loading and sharing are those of every hf-dgm pipeline (``hf_dgm.pipeline_utils.HfDgmPipeline``)."""

import torch
from diffusers import ImagePipelineOutput

from ..image_processing import OUTPUT_TYPES, postprocess
from ..pipeline_utils import HfDgmPipeline, interpolate_latents


class GANPipeline(HfDgmPipeline):
    r"""
    Pipeline for image generation with a [`GANModel`] (its EMA generator when present).

    Args:
        gan ([`GANModel`]): the GAN. (In diffusers, `generator` always means a `torch.Generator`.)

    Example:
        ```py
        >>> import torch
        >>> from hf_dgm import GANPipeline
        >>> pipe = GANPipeline.from_pretrained("path/to/dcgan-mnist")
        >>> images = pipe(batch_size=16, generator=torch.Generator().manual_seed(0)).images
        ```
    """

    model_cpu_offload_seq = "gan"
    component = "gan"

    def __init__(self, gan):
        super().__init__()
        self.register_modules(gan=gan)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        class_labels=None,
        truncation: float | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """
        Args:
            batch_size: number of images (ignored when `latents` is given).
            generator: a `torch.Generator`; the same seed gives the same pixels on one device type.
            latents: `(batch_size, latent_dim)` latents to use instead of drawing them.
            class_labels: an int or one int per image, for class-conditional models.
            truncation: if set, latents are clamped to [-truncation, truncation] (the truncation trick).
            output_type: "pil", "np" (float (N, H, W, C) in [0, 1]) or "pt" (float (N, C, H, W) in [0, 1]).
        Returns:
            [`ImagePipelineOutput`] with `images`, or a tuple `(images,)`.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported: expected one of {OUTPUT_TYPES}.")
        if latents is None and truncation is not None:
            gen_device = generator.device if generator is not None else torch.device("cpu")
            latents = torch.randn((batch_size, self.gan.config.latent_dim), generator=generator, device=gen_device)
        if truncation is not None:
            if not truncation > 0:
                raise ValueError(f"truncation={truncation!r} is invalid: expected a positive number.")
            latents = latents.clamp(-truncation, truncation)
        sample = self.gan.generate(batch_size, generator=generator, latents=latents, class_labels=class_labels).sample
        images = postprocess(((sample + 1.0) / 2.0).clamp(0.0, 1.0), output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def interpolate(
        self,
        latent_start: torch.Tensor,
        latent_end: torch.Tensor,
        num_steps: int = 8,
        method: str = "spherical",
        class_labels=None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Images along a linear or spherical path between two latents (class labels per frame, or one int)."""
        path = interpolate_latents(latent_start, latent_end, num_steps, method)
        return self(latents=path, class_labels=class_labels, output_type=output_type, return_dict=return_dict)
