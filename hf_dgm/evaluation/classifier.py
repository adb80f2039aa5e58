"""The domain feature extractor: a small CNN digit classifier trained by `scripts/train_classifier.py`.

FID with ImageNet-Inception features is widely considered meaningless on MNIST (pytorch-fid #12, TTUR #24); the
accepted substitute is a classifier trained on the domain. Reports name the result "classifier-feature FID".
Input: images (N, 1, 28, 28) in [0, 1]. `features` are the 128-d penultimate activations; `logits` the 10 classes.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput


class MNISTClassifierConfig(PretrainedConfig):
    r"""
    Args:
        num_channels (`int`, defaults to 1): input channels.
        image_size (`int`, defaults to 28): input height and width.
        num_classes (`int`, defaults to 10): output classes.
        feature_dim (`int`, defaults to 128): size of the penultimate feature layer used for FID/KID/PR.
        dropout (`float`, defaults to 0.3): dropout before the last layer (training only).
    """

    model_type = "hf_dgm_classifier"

    num_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    feature_dim: int = 128
    dropout: float = 0.3


@dataclass
class ClassifierOutput(ModelOutput):
    logits: torch.FloatTensor | None = None
    features: torch.FloatTensor | None = None


class MNISTClassifier(PreTrainedModel):
    config_class = MNISTClassifierConfig
    main_input_name = "pixel_values"

    def __init__(self, config: MNISTClassifierConfig):
        super().__init__(config)

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.net = nn.Sequential(
            *block(config.num_channels, 32),
            *block(32, 32),
            nn.MaxPool2d(2),  # (N, 32, 14, 14)
            *block(32, 64),
            *block(64, 64),
            nn.MaxPool2d(2),  # (N, 64, 7, 7)
            nn.Flatten(),
            nn.Linear(64 * (config.image_size // 4) ** 2, config.feature_dim, bias=False),
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
