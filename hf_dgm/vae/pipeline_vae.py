"""VAEPipeline: sample, reconstruct and interpolate with a VAEModel through the diffusers pipeline API.

``__call__``, ``interpolate``, loading and sharing are those of every hf-dgm pipeline
(``hf_dgm.pipeline_utils.HfDgmPipeline``); this file adds the VAE's sampling, encoding and reconstruction."""

import torch

from ..modeling_utils import eval_mode
from ..pipeline_utils import HfDgmPipeline


class VAEPipeline(HfDgmPipeline):
    r"""
    Pipeline for a [`VAEModel`]: decode prior samples, reconstruct images, interpolate between latents.

    This model inherits from [`DiffusionPipeline`]. Check the superclass documentation for the generic methods
    implemented for all pipelines (downloading, saving, running on a particular device, etc.).

    Args:
        vae ([`VAEModel`]):
            The VAE.

    Call arguments: those of [`HfDgmPipeline.__call__`], and
        temperature (`float` or `list[float]`, *optional*, defaults to 1.0):
            Prior samples are z ~ N(0, temperature^2 I). Positive. For a hierarchical VAE, each latent group's prior
            standard deviation is multiplied by it, or by one temperature per group (a list, coarse to fine). A VAE
            with a fitted prior (`hf-dgm fit-prior`) draws from it instead, each draw's deviation from its mixture
            component's mean multiplied so.

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

    def _sample(self, batch_size, generator, latents, class_labels, temperature: float | list[float] = 1.0):
        return self.vae.generate(
            batch_size, generator=generator, latents=latents, class_labels=class_labels, temperature=temperature
        ).sample

    def _posterior(self, images: torch.Tensor, class_labels=None):
        """q(z | x) of images (N, C, H, W) in [0, 1], encoded in eval mode."""
        with eval_mode(self.vae):
            images = images.to(device=self.vae.device, dtype=self.vae.dtype)
            return self.vae.encode(images, class_labels=class_labels).latent_dist

    @torch.no_grad()
    def encode(self, images: torch.Tensor, class_labels=None) -> torch.Tensor:
        r"""
        Args:
            images (`torch.Tensor` of shape `(N, C, H, W)`):
                Images in [0, 1].
            class_labels (`int` or `list[int]`, *optional*):
                For conditional models: one class for every image, or one per image.

        Returns:
            `torch.Tensor` of shape `(N, latent_dim)`: the posterior means.
        """
        return self._posterior(images, class_labels).mode()

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
        r"""
        Encode and decode images.

        Args:
            images (`torch.Tensor` of shape `(N, C, H, W)`):
                Images in [0, 1].
            class_labels (`int` or `list[int]`, *optional*):
                For conditional models: one class for every image, or one per image.
            generator (`torch.Generator`, *optional*):
                Draws the posterior sample (and, with a pixel context, the decoded pixels).
            sample_posterior (`bool`, *optional*, defaults to `False`):
                Decode a posterior sample instead of the posterior mean.
            output_type, return_dict:
                As in `__call__`.
        """
        posterior = self._posterior(images, class_labels)
        z = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self(latents=z, class_labels=class_labels, output_type=output_type, return_dict=return_dict)
