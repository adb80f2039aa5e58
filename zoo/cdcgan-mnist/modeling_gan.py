"""GANModel: a generator, a discriminator and (optionally) an EMA copy of the generator in one
`PreTrainedModel`, so one repository holds one resumable GAN.

The networks are the plain torch modules of `networks_gan.py`; this file adds the Hugging Face shell:
config handling, weight init, `save_pretrained` / `from_pretrained` (with a strict weight check), outputs.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_gan import GANConfig
from .networks_gan import (
    MinibatchDiscrimination,
    build_discriminator,
    build_generator,
    check_class_labels,
    check_latents,
    sample_latents,
)


@dataclass
class GeneratorOutput(ModelOutput):
    """
    Args:
        sample (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            Generated images in [-1, 1].
    """

    sample: torch.FloatTensor | None = None


@dataclass
class DiscriminatorOutput(ModelOutput):
    """
    Args:
        logits (`torch.FloatTensor` of shape `(batch_size,)`):
            Discriminator logits (no sigmoid): large means "real".
        features (`torch.FloatTensor` of shape `(batch_size, num_features)`):
            The last hidden layer of D, used by feature matching.
    """

    logits: torch.FloatTensor | None = None
    features: torch.FloatTensor | None = None


@dataclass
class GANOutput(ModelOutput):
    """
    Args:
        sample (`torch.FloatTensor` of shape `(batch_size, num_channels, image_size, image_size)`):
            Images from the (training) generator, in [-1, 1].
        logits_fake (`torch.FloatTensor` of shape `(batch_size,)`):
            D's logits on `sample`.
        logits_real (`torch.FloatTensor` of shape `(batch_size,)`, *optional*):
            D's logits on `pixel_values`, when given.
    """

    sample: torch.FloatTensor | None = None
    logits_fake: torch.FloatTensor | None = None
    logits_real: torch.FloatTensor | None = None


class GANModel(PreTrainedModel):
    config_class = GANConfig
    base_model_prefix = "gan"
    main_input_name = "latents"

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        self.generator_ema = None
        if config.use_ema:
            # The EMA copy must not draw from the global RNG: a run with EMA then trains exactly like one without
            # (EMA only reads the generator's weights; tested). Its weights are copied from the generator below.
            with torch.random.fork_rng(devices=[]):
                self.generator_ema = build_generator(config)
        self.post_init()
        if self.generator_ema is not None:
            self.reset_ema()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module):
        if self.generator_ema is not None and any(module is m for m in self.generator_ema.modules()):
            return  # copied from the generator (reset_ema), without drawing random numbers
        if self.config.architecture == "dcgan":
            # Radford et al.: all weights from N(0, 0.02); BatchNorm scales from N(1, 0.02).
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                weight = (
                    module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
                )
                nn.init.normal_(weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            module.reset_parameters()  # PyTorch's defaults for the article's MLPs
        if isinstance(module, MinibatchDiscrimination):
            nn.init.normal_(module.T, 0.0, 0.1)

    @torch.no_grad()
    def reset_ema(self):
        """Copy the generator's weights and buffers into `generator_ema`."""
        if self.generator_ema is None:
            raise ValueError("This model has no generator_ema (config.use_ema is false).")
        if any(p.is_meta for p in self.generator.parameters()):
            return  # from_pretrained builds on the meta device, then loads the saved EMA weights
        self.generator_ema.load_state_dict(self.generator.state_dict())

    @property
    def sampling_generator(self) -> nn.Module:
        """The network used for sampling: the EMA generator when present."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def generate(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        class_labels=None,
        return_dict: bool = True,
    ):
        """Sample images in [-1, 1] from the EMA generator (if any), always in eval mode."""
        if latents is None:
            if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
                raise ValueError(f"batch_size={batch_size!r} is invalid: expected a positive int.")
            latents = sample_latents(self.config, batch_size, generator, device=self.device, dtype=self.dtype)
        else:
            check_latents(self.config, latents)
            latents = latents.to(device=self.device, dtype=self.dtype)
        labels = check_class_labels(self.config, class_labels, latents.shape[0], device=self.device)
        net = self.sampling_generator
        was_training = net.training
        net.eval()
        try:
            sample = net(latents, labels)  # (N, C, H, W)
        finally:
            net.train(was_training)
        return GeneratorOutput(sample=sample) if return_dict else (sample,)

    def discriminate(self, pixel_values: torch.Tensor, class_labels=None, return_dict: bool = True):
        """D's logits (no sigmoid) and last features for images in [-1, 1]."""
        self._check_pixel_values(pixel_values)
        labels = check_class_labels(self.config, class_labels, pixel_values.shape[0], device=pixel_values.device)
        logits, features = self.discriminator(pixel_values, labels)
        return DiscriminatorOutput(logits=logits, features=features) if return_dict else (logits, features)

    def forward(
        self,
        latents: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        class_labels=None,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
        return_dict: bool = True,
    ):
        """One pass of the game: G(latents) -> D; and D on real `pixel_values` when given (training networks)."""
        if latents is None:
            n = pixel_values.shape[0] if pixel_values is not None else (batch_size or 1)
            latents = sample_latents(self.config, n, generator, device=self.device, dtype=self.dtype)
        check_latents(self.config, latents)
        labels = check_class_labels(self.config, class_labels, latents.shape[0], device=self.device)
        sample = self.generator(latents, labels)
        logits_fake, _ = self.discriminator(sample, labels)
        logits_real = None
        if pixel_values is not None:
            self._check_pixel_values(pixel_values)
            logits_real, _ = self.discriminator(pixel_values, labels)
        if not return_dict:
            return tuple(t for t in (sample, logits_fake, logits_real) if t is not None)
        return GANOutput(sample=sample, logits_fake=logits_fake, logits_real=logits_real)

    def _check_pixel_values(self, pixel_values):
        c, s = self.config.num_channels, self.config.image_size
        if not isinstance(pixel_values, torch.Tensor) or not pixel_values.is_floating_point():
            raise ValueError(
                f"pixel_values must be a floating-point tensor, got {getattr(pixel_values, 'dtype', type(pixel_values))}."
            )
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (c, s, s):
            raise ValueError(
                f"pixel_values have shape {tuple(pixel_values.shape)}, expected (batch_size, {c}, {s}, {s})."
            )

    def push_to_hub(self, repo_id: str, **kwargs):
        """Push config, weights, modeling code and hf-dgm's model card (not transformers' template card).
        Where hf-dgm is not installed (this file loaded as remote code), transformers' push_to_hub is used."""
        try:
            from hf_dgm.hub import push_model_to_hub
        except ImportError:
            return super().push_to_hub(repo_id, **kwargs)
        return push_model_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, but weights that don't match the config raise instead of being
        silently re-initialised (transformers 5 only prints a load report)."""
        want_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("use_safetensors", True)  # never fall back to a pickled pytorch_model.bin
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        except Exception as err:  # safetensors raises its own type for a truncated or corrupt file
            if "safetensor" in type(err).__name__.lower() or "deserializ" in str(err).lower():
                raise OSError(
                    f"The weights in {pretrained_model_name_or_path!r} can't be read: model.safetensors is "
                    f"truncated or corrupt ({err})."
                ) from err
            if "mismatched_sizes" in str(err):  # transformers 5: tensors whose shapes differ from the config's
                raise ValueError(
                    f"The weights in {pretrained_model_name_or_path!r} don't match its config "
                    f"({cls.config_class.__name__}): some tensor shapes differ (see the load report above)."
                ) from err
            raise
        problems = {k: sorted(info[k]) for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)}
        if problems:
            raise ValueError(
                f"The weights in {pretrained_model_name_or_path!r} don't match its config "
                f"({cls.config_class.__name__}): {problems}"
            )
        return (model, info) if want_info else model


GANConfig.register_for_auto_class()
GANModel.register_for_auto_class("AutoModel")
