"""DiffAugment (hf_dgm/training/augment.py): shapes, determinism, differentiability and what each policy does."""

import pytest
import torch

from hf_dgm.training.augment import cutout, diff_augment, parse_policy, translation


def images(n=4, size=16):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_policy_parsing():
    assert parse_policy("") == () and parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(ValueError, match="unknown \\['blur'\\]"):
        parse_policy("color,blur")


def test_seeded_differentiable_and_shape_preserving():
    policy = parse_policy("color,translation,cutout")
    x = images().requires_grad_(True)
    a = diff_augment(x, policy, torch.Generator().manual_seed(1))
    b = diff_augment(x, policy, torch.Generator().manual_seed(1))
    c = diff_augment(x, policy, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the images (and so G)


def test_translation_shifts_content_and_pads_with_zeros():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0  # one bright pixel
    moved = translation(x, torch.Generator().manual_seed(0))
    positions = moved[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 16, positions % 16
    assert (moved.sum(dim=(1, 2, 3)) == 1).all()  # the pixel stays inside (shifts of at most 2 = 16 / 8)
    assert (rows - 8).abs().max() <= 2 and (cols - 8).abs().max() <= 2 and len(set(positions.tolist())) > 5
    edge = torch.ones(64, 1, 16, 16)
    assert (translation(edge, torch.Generator().manual_seed(0)) == 0).any()  # zero padding where it moved


def test_cutout_zeroes_a_square_of_half_the_size():
    out = cutout(torch.ones(32, 1, 16, 16), torch.Generator().manual_seed(0))
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 8 * 8).all() and (zeros == 64).any()  # clipped at the borders
