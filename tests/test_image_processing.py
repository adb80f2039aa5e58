import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from hf_dgm.image_processing import make_grid, mnist_preprocess, postprocess, to_uint8


def stroke(size=(200, 200), mode="RGB", ink="black", paper="white", box=(90, 30, 110, 170)):
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return image


def test_mnist_preprocess_matches_the_mnist_recipe():
    digit = mnist_preprocess(stroke())
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    ys, xs = np.nonzero(digit)
    assert ys.max() - ys.min() + 1 <= 20 and xs.max() - xs.min() + 1 <= 20  # fits the 20x20 box
    assert ys.max() - ys.min() + 1 >= 19  # the long side is scaled to 20
    total = digit.sum()
    cy, cx = (np.arange(28) @ digit.sum(1)) / total, (np.arange(28) @ digit.sum(0)) / total
    assert abs(cy - 14) < 1.0 and abs(cx - 14) < 1.0  # centred by centre of mass
    assert digit[0].max() == 0 and digit.max() > 200  # white ink on black


@pytest.mark.parametrize("variant", ["rgba", "palette", "16bit", "huge", "white_on_black", "numpy"])
def test_mnist_preprocess_input_variants(variant):
    reference = mnist_preprocess(stroke())
    if variant == "rgba":
        image = stroke(mode="RGBA", ink=(0, 0, 0, 255), paper=(255, 255, 255, 0))  # transparent paper
    elif variant == "palette":
        image = stroke().convert("P")
    elif variant == "16bit":
        image = Image.fromarray(np.asarray(stroke().convert("L"), np.uint16) * 257)
        assert image.mode.startswith("I")
    elif variant == "huge":
        image = stroke(size=(4000, 4000), box=(1800, 600, 2200, 3400))
    elif variant == "white_on_black":
        image = stroke(ink="white", paper="black")
    else:
        image = np.asarray(stroke().convert("L"))
    digit = mnist_preprocess(image)
    assert digit.shape == (28, 28)
    assert np.abs(digit.astype(int) - reference.astype(int)).mean() < 20  # the same digit, whatever the encoding


def test_mnist_preprocess_blank_and_bad_input():
    with pytest.raises(ValueError, match="blank"):
        mnist_preprocess(Image.new("L", (50, 50), 255))
    with pytest.raises(ValueError, match="blank"):
        mnist_preprocess(Image.new("RGBA", (50, 50), (0, 0, 0, 0)))
    with pytest.raises(ValueError, match="expected an image"):
        mnist_preprocess("not an image")


def test_grid_and_postprocess():
    images = torch.linspace(0, 1, 5 * 3 * 4 * 4).view(5, 3, 4, 4)
    grid = make_grid(to_uint8(images), nrow=3, padding=1)
    assert grid.mode == "RGB" and grid.size == (1 + 3 * 5, 1 + 2 * 5)
    with pytest.raises(ValueError, match="output_type='jpg'"):
        postprocess(images, "jpg")
    with pytest.raises(ValueError, match="uint8 array"):
        make_grid(images.numpy())
