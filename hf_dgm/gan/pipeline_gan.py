"""GANPipeline: sample images from a GANModel with the diffusers pipeline API."""

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput

from ..image_processing import postprocess, to_unit_range
from .modeling_gan import GANModel
from .networks_gan import randn


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


class GANPipeline(DiffusionPipeline):
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

    def __init__(self, gan: GANModel):
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
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type={output_type!r} is not supported: expected 'pil', 'np' or 'pt'.")
        if latents is None and truncation is not None:
            latents = randn((batch_size, self.gan.config.latent_dim), generator=generator)
        if truncation is not None:
            if not truncation > 0:
                raise ValueError(f"truncation={truncation!r} is invalid: expected a positive number.")
            latents = latents.clamp(-truncation, truncation)
        sample = self.gan.generate(batch_size, generator=generator, latents=latents, class_labels=class_labels).sample
        images = postprocess(to_unit_range(sample, (-1.0, 1.0)), output_type)
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
