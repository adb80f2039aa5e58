"""VAEPipeline: sample, reconstruct and interpolate with a VAEModel through the diffusers pipeline API.

Loading and sharing are those of every hf-dgm pipeline (``hf_dgm.pipeline_utils.HfDgmPipeline``)."""

import torch
from diffusers import ImagePipelineOutput

from ..image_processing import OUTPUT_TYPES, postprocess
from ..pipeline_utils import HfDgmPipeline, interpolate_latents


class VAEPipeline(HfDgmPipeline):
    r"""
    Pipeline for a [`VAEModel`]: decode prior samples, reconstruct images, interpolate between latents.

    Args:
        vae ([`VAEModel`]): the VAE.

    Example:
        ```py
        >>> import torch
        >>> from hf_dgm import VAEPipeline
        >>> pipe = VAEPipeline.from_pretrained("path/to/vae-mnist")
        >>> images = pipe(batch_size=16, generator=torch.Generator().manual_seed(0)).images
        ```
    """

    model_cpu_offload_seq = "vae"
    component = "vae"

    def __init__(self, vae):
        super().__init__()
        self.register_modules(vae=vae)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        class_labels=None,
        temperature: float | list[float] = 1.0,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """
        Args:
            batch_size: number of images (ignored when `latents` is given).
            generator: a `torch.Generator`; the same seed gives the same pixels on one device type.
            latents: `(batch_size, latent_dim)` latents to decode instead of prior samples.
            class_labels: an int or one int per image, for conditional models.
            temperature: prior samples are z ~ N(0, temperature^2 I); for a hierarchical VAE, each latent group's
                prior standard deviation is multiplied by it, or by one temperature per group (a list, coarse to fine).
            output_type: "pil", "np" (float (N, H, W, C) in [0, 1]) or "pt" (float (N, C, H, W) in [0, 1]).
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r} is not supported: expected one of {OUTPUT_TYPES}.")
        sample = self.vae.generate(
            batch_size, generator=generator, latents=latents, class_labels=class_labels, temperature=temperature
        ).sample
        images = postprocess(sample, output_type)
        return ImagePipelineOutput(images=images) if return_dict else (images,)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, class_labels=None) -> torch.Tensor:
        """Posterior means of images (N, C, H, W) in [0, 1]."""
        was_training = self.vae.training
        self.vae.eval()
        try:
            images = images.to(device=self.vae.device, dtype=self.vae.dtype)
            return self.vae.encode(images, class_labels=class_labels).latent_dist.mode()
        finally:
            self.vae.train(was_training)

    @torch.no_grad()
    def reconstruct(
        self,
        images: torch.Tensor,
        class_labels=None,
        generator: torch.Generator | None = None,
        sample_posterior: bool = False,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Encode and decode images (N, C, H, W) in [0, 1]: with the posterior mean, or a posterior sample."""
        was_training = self.vae.training
        self.vae.eval()
        try:
            images = images.to(device=self.vae.device, dtype=self.vae.dtype)
            posterior = self.vae.encode(images, class_labels=class_labels).latent_dist
            z = posterior.sample(generator) if sample_posterior else posterior.mode()
        finally:
            self.vae.train(was_training)
        return self(latents=z, class_labels=class_labels, output_type=output_type, return_dict=return_dict)

    @torch.no_grad()
    def interpolate(
        self,
        latent_start: torch.Tensor,
        latent_end: torch.Tensor,
        num_steps: int = 8,
        method: str = "linear",
        class_labels=None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        """Decode `num_steps` latents on a linear or spherical path from `latent_start` to `latent_end`."""
        path = interpolate_latents(latent_start, latent_end, num_steps, method)
        return self(latents=path, class_labels=class_labels, output_type=output_type, return_dict=return_dict)
