import numpy as np
import pytest

from mnemovision.vision.photos import as_rgb_uint8


def test_grey_rgb_and_rgba_become_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    want = np.repeat(grey[..., None], 3, -1)
    np.testing.assert_array_equal(as_rgb_uint8(grey, "x"), want)
    np.testing.assert_array_equal(as_rgb_uint8(grey[..., None], "x"), want)  # [H, W, 1]: refused before
    rgba = np.dstack([want, np.full((3, 4), 9, np.uint8)])
    np.testing.assert_array_equal(as_rgb_uint8(rgba, "x"), want)
    assert as_rgb_uint8(rgba, "x").flags.c_contiguous  # torch.from_numpy and image writers get plain rows


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((0, 5, 3), np.uint8), r"lr.png: expected an image with pixels, got shape \[0, 5, 3\]"),  # an EDSR conv failed before
        (np.zeros((4, 5, 2), np.uint8), "lr.png: expected a grey, RGB or RGBA image"),
        (np.zeros((4, 5, 3), np.float32), "lr.png: expected an 8-bit image, got dtype float32"),
    ],
)
def test_other_images_are_refused_naming_the_source(image, message):
    with pytest.raises(ValueError, match=message):
        as_rgb_uint8(image, "lr.png")
