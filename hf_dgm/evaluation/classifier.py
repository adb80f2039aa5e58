"""Domain classifiers: small CNNs trained by `scripts/train_classifier.py` whose penultimate layer is a feature space
for FID/KID and precision/recall, and whose logits give the conditional accuracy and the classifier Inception Score.

FID with ImageNet-Inception features is widely considered meaningless on MNIST (pytorch-fid #12, TTUR #24) and can
be lowered without real gains by a model trained against ImageNet features (Kynkäänniemi et al., ICLR 2023); the
accepted substitute is a classifier trained on the domain. Reports name the result "classifier-feature FID".
Shipped: zoo/mnist-classifier (28x28 grey digits) and zoo/emoji-classifier (the 9 emoji groups at 32x32 RGB).

Input: images (N, num_channels, image_size, image_size) in [0, 1]. `features` are the `feature_dim` penultimate
activations; `logits` the classes. Each stage of `channels` is two 3x3 conv layers (BatchNorm, ReLU) and a 2x2
max-pool; `pool_size` average-pools the last map to pool_size x pool_size before the feature layer (None: flatten
it whole, as mnist-classifier does).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


class ImageClassifierConfig(PretrainedConfig):
    r"""
    Args:
        num_channels (`int`, defaults to 1): input channels.
        image_size (`int`, defaults to 28): input height and width.
        num_classes (`int`, defaults to 10): output classes (names in `id2label`).
        channels (`list[int]`, defaults to `[32, 64]`): conv widths, one stage (two convs and a max-pool) each.
        pool_size (`int`, *optional*): average-pool the last map to this size before the feature layer.
        feature_dim (`int`, defaults to 128): size of the penultimate feature layer used for FID/KID/PR.
        dropout (`float`, defaults to 0.3): dropout before the last layer (training only).
        dataset_name (`str`, *optional*): the dataset it was trained on (its folder or repo name, e.g. "emoji"):
            `hf-dgm evaluate` picks a zoo classifier by it.
    """

    model_type = "hf_dgm_classifier"

    num_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    channels: list[int] | None = None
    pool_size: int | None = None
    feature_dim: int = 128
    dropout: float = 0.3
    dataset_name: str | None = None

    def __post_init__(self, **kwargs):
        self.channels = list(self.channels or [32, 64])
        super().__post_init__(**kwargs)
        if self.image_size % 2 ** len(self.channels):
            raise ValueError(
                f"image_size {self.image_size} is not divisible by 2**{len(self.channels)} (one max-pool per stage "
                f"of channels={self.channels})."
            )


@dataclass
class ClassifierOutput(ModelOutput):
    logits: torch.FloatTensor | None = None
    features: torch.FloatTensor | None = None


class ImageClassifier(PreTrainedModel):
    config_class = ImageClassifierConfig
    main_input_name = "pixel_values"

    def __init__(self, config: ImageClassifierConfig):
        super().__init__(config)

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        layers, cin = [], config.num_channels
        for width in config.channels:
            layers += [*block(cin, width), *block(width, width), nn.MaxPool2d(2)]
            cin = width
        side = config.image_size // 2 ** len(config.channels)
        if config.pool_size:
            layers.append(nn.AdaptiveAvgPool2d(config.pool_size))
            side = config.pool_size
        self.net = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(cin * side**2, config.feature_dim, bias=False),
            nn.BatchNorm1d(config.feature_dim),
            nn.ReLU(inplace=True),  # (N, feature_dim): the features
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.num_classes)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)):
            module.reset_parameters()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True):
        c, s = self.config.num_channels, self.config.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (c, s, s):
            raise ValueError(f"pixel_values have shape {tuple(pixel_values.shape)}, expected (batch, {c}, {s}, {s}).")
        features = self.net(pixel_values * 2.0 - 1.0)
        logits = self.head(self.dropout(features))
        return ClassifierOutput(logits=logits, features=features) if return_dict else (logits, features)

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        model, info = super().from_pretrained(path, *args, output_loading_info=True, **kwargs)
        problems = {k: sorted(info[k]) for k in ("missing_keys", "unexpected_keys", "mismatched_keys") if info.get(k)}
        if problems:
            raise ValueError(f"The weights in {str(path)!r} don't match the classifier config: {problems}")
        return model.eval()


# the names of hf-dgm 0.x, when the only classifier was MNIST's (the Space and saved code import them)
MNISTClassifierConfig = ImageClassifierConfig
MNISTClassifier = ImageClassifier
