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

from ..modeling_utils import (
    HfDgmModelMixin,
    check_class_labels,
    check_latents,
    check_pixel_values,
    conv_schedule,
    eval_mode,
    sample_latents,
)
from .configuration_gan import GANConfig
from .networks_gan import (
    ARCHITECTURES,
    DISCRIMINATORS,
    MinibatchDiscrimination,
    ReconstructionDecoder,
    build_discriminator,
    build_generator,
    network_labels,
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
        logits (`torch.FloatTensor` of shape `(batch_size,)`, or `(batch_size, num_patches)` for the projected D):
            Discriminator logits (no sigmoid): large means "real". The projected D gives one per patch of each of its
            4 scales; the losses average over them.
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


class GANModel(HfDgmModelMixin, PreTrainedModel):
    config_class = GANConfig
    base_model_prefix = "gan"
    main_input_name = "latents"

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        # FastGAN's self-supervised D: trained with D on its real features, outside D's forward (networks_gan)
        self.discriminator_decoder = (
            ReconstructionDecoder(config, self.discriminator.feature_channels)
            if config.discriminator_reconstruction
            else None
        )
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
        discriminator = DISCRIMINATORS[self.config.discriminator]
        if discriminator is not None and any(module is m for m in self.discriminator.modules()):
            discriminator.init_weights(module)  # a D of its own (e.g. projected): its own init
            return
        ARCHITECTURES[self.config.architecture].init_weights(module)
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

    @torch.no_grad()
    def grow_from(self, smaller: "GANModel") -> int:
        """Progressive growing (Karras et al., 2018): start this DCGAN from a trained one at a lower resolution. The
        coarse layers are the same networks at both sizes, so they are copied: G's from its input on, D's from its
        logit back, each pair while their shapes agree; the layers at the new resolutions (G's last, D's first) keep
        their initialisation. The class embedding, D's head and D's reconstruction decoder (it reads the coarsest map;
        where it makes the same image size) are copied with them; the EMA generator grows from the smaller EMA
        generator. With ``config.fade_in_steps``, the smaller model's output and input layers are copied into the
        networks' fade-ins (``networks_gan.FadeIn``): at alpha = 0 this model draws and judges as the smaller one,
        its images upsampled. Returns the number of tensors copied."""
        check_growable(self.config, smaller.config)
        networks = [
            (self.generator, smaller.generator, "label_embedding"),
            (self.discriminator, smaller.discriminator, "head"),
        ]
        if self.generator_ema is not None:
            networks.append((self.generator_ema, smaller.generator_ema, "label_embedding"))
        copied = 0
        for big, small, coarse_end in networks:
            big_layers, small_layers = _stateful_layers(big.net), _stateful_layers(small.net)
            if big is self.discriminator:  # D's coarse layers are its last
                big_layers, small_layers = big_layers[::-1], small_layers[::-1]
            for target, source in zip(big_layers, small_layers):
                if not _same_state_shapes(target, source):
                    break  # the first layer of a new resolution
                target.load_state_dict(source.state_dict())
                copied += len(source.state_dict())
            if getattr(small, coarse_end) is not None:  # same shapes: check_growable compared what sets them
                getattr(big, coarse_end).load_state_dict(getattr(small, coarse_end).state_dict())
                copied += len(getattr(small, coarse_end).state_dict())
        big, small = self.discriminator_decoder, smaller.discriminator_decoder
        if small is not None and _same_state_shapes(big, small):  # else it makes a larger image: kept fresh
            big.load_state_dict(small.state_dict())
            copied += len(small.state_dict())
        if self.config.fade_in_steps:  # the smaller model's output and input layers, blended with the new ones
            faded = [(self.generator, smaller.generator.net[-2]), (self.discriminator, smaller.discriminator.net[0])]
            if self.generator_ema is not None:
                faded.append((self.generator_ema, smaller.generator_ema.net[-2]))
            for network, layer in faded:
                network.fade.layer.load_state_dict(layer.state_dict())
                copied += len(layer.state_dict())
        return copied

    def finish_fade_in(self) -> bool:
        """After a fade-in (``config.fade_in_steps``; alpha at 1 in every network): drop the smaller model's layers,
        which no longer contribute, and set fade_in_steps to 0, so that the model is the plain DCGAN. Returns whether
        it did; a model whose fade-in is not over keeps them."""
        networks = [n for n in (self.generator, self.generator_ema, self.discriminator) if getattr(n, "fade", None)]
        if not networks or any(n.fade.alpha < 1 for n in networks):
            return False
        for network in networks:
            network.fade = None
        self.config.fade_in_steps = 0
        return True

    @property
    def sampling_network(self) -> nn.Module:
        """The network that turns latents into images: the EMA generator when present."""
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
        """Sample images in [-1, 1] from the EMA generator (if any), always in eval mode. `class_labels`: ints, or
        class weights (N, num_classes) that mix the classes' embeddings (``modeling_utils.embed_classes``)."""
        latents = self.prepare_latents(batch_size, generator, latents)
        labels = check_class_labels(self.config, class_labels, latents.shape[0], device=self.device, mixing=True)
        labels = network_labels(self.config, latents, labels)
        with eval_mode(self.sampling_network) as net:
            sample = net(latents, labels)  # (N, C, H, W)
        return GeneratorOutput(sample=sample) if return_dict else (sample,)

    def _check_judges_real_images(self) -> None:
        if self.config.cluster_frequencies:
            raise ValueError(
                "This GAN is self-conditioned (cluster_frequencies): its D judges a real image under the cluster the "
                "trainer gave it, which the model does not keep, so D runs on real images in training only."
            )

    def discriminate(self, pixel_values: torch.Tensor, class_labels=None, return_dict: bool = True):
        """D's logits (no sigmoid) and last features for images in [-1, 1]."""
        check_pixel_values(self.config, pixel_values)
        self._check_judges_real_images()
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
        fake_labels = network_labels(self.config, latents, labels)
        sample = self.generator(latents, fake_labels)
        logits_fake, _ = self.discriminator(sample, fake_labels)
        logits_real = None
        if pixel_values is not None:
            check_pixel_values(self.config, pixel_values)
            self._check_judges_real_images()
            logits_real, _ = self.discriminator(pixel_values, labels)
        if not return_dict:
            return tuple(t for t in (sample, logits_fake, logits_real) if t is not None)
        return GANOutput(sample=sample, logits_fake=logits_fake, logits_real=logits_real)


def check_growable(config: GANConfig, smaller: GANConfig) -> None:
    """Refuse, with one line, to grow a model of `config` from one of `smaller` (see GANModel.grow_from): both DCGANs
    with their own D, the same inputs and D head, a smaller image size, and the same coarse layers (start size, G's
    first width, D's last width), so that the copy reaches past the class embeddings."""
    for cfg in (config, smaller):
        if cfg.architecture != "dcgan" or cfg.discriminator != "architecture":
            raise ValueError(
                f"Cannot grow a GAN with architecture={cfg.architecture!r}, discriminator={cfg.discriminator!r}: "
                "expected the dcgan architecture with its own discriminator on both sides (growing copies a DCGAN's "
                "coarse layers)."
            )
    fields = ("num_channels", "latent_dim", "num_classes", "cluster_frequencies", "cluster_classes",
              "class_embed_dim", "spectral_norm",
              "use_ema", "minibatch_std", "minibatch_discrimination_kernels", "discriminator_reconstruction")  # fmt: skip
    for name in fields:
        if getattr(smaller, name) != getattr(config, name):
            raise ValueError(
                f"Cannot grow this GAN from a model with {name}={getattr(smaller, name)!r}: expected "
                f"{name}={getattr(config, name)!r}, as in the model being grown."
            )
    if smaller.image_size >= config.image_size:
        raise ValueError(
            f"Cannot grow a {config.image_size} px GAN from a {smaller.image_size} px one: expected a smaller image "
            "size (to continue at the same size, use --init-from)."
        )
    if config.fade_in_steps and smaller.image_size * 2 != config.image_size:
        raise ValueError(
            f"Cannot fade a {config.image_size} px GAN in from a {smaller.image_size} px one: fade_in_steps needs a "
            f"model of half the size ({config.image_size // 2} px)."
        )
    (start, stages), (small_start, small_stages) = conv_schedule(config.image_size), conv_schedule(smaller.image_size)
    if start != small_start:
        raise ValueError(
            f"Cannot grow a {config.image_size} px GAN from a {smaller.image_size} px one: their networks start at "
            f"{start} and {small_start} px; expected sizes that differ by a power of two."
        )
    extra = 2 ** (stages - small_stages)  # the coarse widths are equal when the channels shrink by this factor
    expected = {"generator_channels": smaller.generator_channels // extra,
                "discriminator_channels": smaller.discriminator_channels // extra}  # fmt: skip
    for name, value in expected.items():
        if getattr(config, name) != value or getattr(smaller, name) % extra:
            raise ValueError(
                f"Cannot grow with {name}={getattr(config, name)!r} from a model with {name}="
                f"{getattr(smaller, name)!r}: expected --{name.replace('_', '-')} {value} (the coarse layers keep their "
                f"widths: {extra}x fewer channels at {extra}x the size)."
            )


def _stateful_layers(net: nn.Sequential) -> list[nn.Module]:
    return [layer for layer in net if layer.state_dict()]  # convolutions and BatchNorms, not activations


def _same_state_shapes(a: nn.Module, b: nn.Module) -> bool:
    """Same tensor names and shapes (a convolution and a BatchNorm differ in names; spectral norm's parametrized
    classes are made per module, so their types are not compared)."""
    state_a, state_b = a.state_dict(), b.state_dict()
    return state_a.keys() == state_b.keys() and all(state_a[k].shape == state_b[k].shape for k in state_a)
