"""The real photographs scikit-image ships (no download): training material for the bundled recipes
(SR patches, synthetic VOS clips, the splatting scene's textures), as RGB uint8."""

from __future__ import annotations

import numpy as np

# scikit-image's bundled photographs that load without a download (grey ones are used as RGB).
SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
    "camera", "coins", "moon", "grass", "gravel", "brick", "clock",
)


def as_rgb_uint8(image: np.ndarray, source: str) -> np.ndarray:
    """[H, W] or [H, W, 1] grey, [H, W, 3] RGB or [H, W, 4] RGBA (alpha dropped) uint8 -> [H, W, 3] uint8.

    Raises:
        ValueError: another dtype or channel count, or no pixels (the message names ``source``).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"{source}: expected an 8-bit image, got dtype {image.dtype}")
    if image.ndim >= 2 and 0 in image.shape[:2]:
        raise ValueError(f"{source}: expected an image with pixels, got shape {list(image.shape)}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return np.ascontiguousarray(image[..., :3])
    raise ValueError(f"{source}: expected a grey, RGB or RGBA image, got shape {list(image.shape)}")


def skimage_photos(names: tuple[str, ...] = SKIMAGE_PHOTOS) -> list[tuple[str, np.ndarray]]:
    """(name, [H, W, 3] uint8) for scikit-image's bundled photographs (no network)."""
    import skimage.data

    return [(name, as_rgb_uint8(getattr(skimage.data, name)(), f"skimage.data.{name}")) for name in names]
