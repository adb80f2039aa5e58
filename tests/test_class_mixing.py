"""Soft class labels: class weights (N, num_classes) that mix the class embeddings of every conditional sampling
network (``modeling_utils.embed_classes``), so that an interpolation between two classes morphs (BigGAN) instead of
cutting from one class to the other."""

import numpy as np
import pytest
import torch
from conftest import tiny_gan_kwargs, tiny_vae_kwargs

from hf_dgm import GANConfig, GANModel, VAEConfig, VAEModel
from hf_dgm.image_processing import to_uint8
from hf_dgm.modeling_utils import activation_elements, class_path
from hf_dgm.sampling import generate_images

STEPS = 5


def nudged(model):
    """Every weight moved away from its init, so that the classes' rows differ (conditional BatchNorms start as the
    identity for every class)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return model.eval()


GANS = {
    "mlp": dict(architecture="mlp"),
    "dcgan": dict(architecture="dcgan"),
    "resnet": dict(architecture="resnet", image_size=32),
    "fastgan": dict(architecture="fastgan", image_size=32, num_channels=3),
}
VAES = {
    "mlp": dict(architecture="mlp"),
    "conv": dict(architecture="conv"),
    "resnet": dict(architecture="resnet"),
    "hierarchical": dict(architecture="hierarchical", latent_groups=[7], latent_dim=49),
}


def draw(model, latents, class_labels) -> torch.Tensor:
    if isinstance(model, GANModel):
        return model.generate(latents=latents, class_labels=class_labels).sample
    return model.decode(latents, class_labels=class_labels).sample


@pytest.mark.parametrize(
    "family, name",
    [("gan", name) for name in GANS] + [("vae", name) for name in VAES],
)
def test_a_class_path_starts_and_ends_on_the_integer_labels_images_and_morphs_between(family, name):
    torch.manual_seed(0)
    if family == "gan":
        model = nudged(GANModel(GANConfig(**tiny_gan_kwargs(num_classes=4, **GANS[name]))))
    else:
        model = nudged(VAEModel(VAEConfig(**tiny_vae_kwargs(num_classes=4, **VAES[name]))))
    latents = torch.randn(1, model.config.latent_dim).repeat(STEPS, 1)  # one latent: only the class moves
    morph = draw(model, latents, class_path(4, 1, 3, STEPS))
    start, end = draw(model, latents, [1] * STEPS), draw(model, latents, [3] * STEPS)
    assert torch.equal(morph[0], start[0]) and torch.equal(morph[-1], end[-1])  # bit for bit
    middle = morph[STEPS // 2]
    assert (middle - start[0]).abs().max() > 1e-3 and (middle - end[0]).abs().max() > 1e-3
    # the chunked generation (the CLI's and the app's) takes the weights a chunk at a time: here one image each
    with torch.device("meta"):
        one_image = activation_elements(type(model)(model.config).sampling_network, model.config)
    batches = []
    hook = model.sampling_network.register_forward_hook(lambda m, inputs, out: batches.append(inputs[0].shape[0]))
    chunked = generate_images(
        model.config, model.sampling_network, latents, class_path(4, 1, 3, STEPS), None, one_image
    )
    hook.remove()
    assert batches == [1] * STEPS
    images = morph if isinstance(model, VAEModel) else (morph + 1) / 2
    assert np.abs(chunked.astype(int) - to_uint8(images).astype(int)).max() <= 1


def test_class_weights_are_checked_in_one_line():
    model = GANModel(GANConfig(**tiny_gan_kwargs(num_classes=3)))
    latents = torch.randn(2, model.config.latent_dim)
    for weights, needle in [
        (torch.ones(2, 4) / 4, r"class weights have shape \(2, 4\): expected \(2, 3\), one row per image"),
        (torch.tensor([[1.5, -0.5, 0.0], [1.0, 0.0, 0.0]]), "must be finite, non-negative, and sum to 1"),
        (torch.tensor([[0.5, 0.0, 0.0], [1.0, 0.0, 0.0]]), "must be finite, non-negative, and sum to 1"),
        (torch.tensor([[float("nan"), 0.0, 1.0], [1.0, 0.0, 0.0]]), "must be finite, non-negative, and sum to 1"),
    ]:
        with pytest.raises(ValueError, match=needle):
            model.generate(latents=latents, class_labels=weights)
    # where a network reads labels as indices (training, a VAE's encoder), weights stay refused
    vae = VAEModel(VAEConfig(**tiny_vae_kwargs(num_classes=3)))
    with pytest.raises(ValueError, match="class_labels must be a 1-D sequence of ints, got dtype torch.float32"):
        vae.encode(torch.rand(2, 1, 28, 28), class_labels=torch.eye(3)[:2])
    with pytest.raises(ValueError, match="class_labels must be a 1-D sequence of ints"):
        model(latents=latents, class_labels=torch.eye(3)[:2])
