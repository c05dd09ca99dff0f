"""DAVIS-style masks: indexed-palette PNGs where pixel value k is object k (0 = background).

Reading also accepts binary masks (grayscale 0/1/255: any value > 0 is object 1) and RGB masks
coloured with the DAVIS palette.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnemovision.vision.checks import check_real
from mnemovision.vision.errors import FileFormatError


def davis_palette(n: int = 256) -> np.ndarray:
    """The DAVIS / PASCAL VOC palette [n, 3] uint8 (0 black, 1 red, 2 green, 3 yellow, ...).

    Colour k takes bit b of k's bit-groups into channel (b mod 3), filling bits from the most
    significant end, which is the standard VOC colour map.
    """
    palette = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        value, rgb = index, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[index] = rgb
    return palette


def read_mask(path: str | os.PathLike, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as [H, W] uint8 object indices.

    Args:
        path: a palette ("P") PNG, a grayscale PNG (binary, values in {0, 1, 255}: > 0 becomes 1;
            other 8- or 16-bit grayscale is taken as indices, which must be below 256), or an RGB PNG
            in the DAVIS palette.
        expected_shape: (H, W) the mask must have, e.g. its frame's size.

    Raises:
        FileFormatError: unreadable file, unknown colours, or a size other than ``expected_shape``.
    """
    from mnemovision.vision.io.image import load_pillow

    path = Path(path)
    img = load_pillow(path, "mask", "a PNG mask")
    mode, array = img.mode, np.asarray(img)
    if mode == "P":
        mask = array.astype(np.uint8)
    elif mode in ("L", "1", "I", "I;16"):
        array = array.astype(np.int64)
        values = np.unique(array)
        if set(values.tolist()) <= {0, 1, 255}:  # also every 1-bit image (read as 0/1)
            mask = (array > 0).astype(np.uint8)
        elif values.max() < 256:
            mask = array.astype(np.uint8)
        else:
            raise FileFormatError(path, "pixel values", "indices below 256", f"max {values.max()}")
    elif mode in ("RGB", "RGBA"):
        mask = _rgb_to_indices(path, array[..., :3])
    else:
        raise FileFormatError(path, "mode", "P, L or RGB", mode)
    if expected_shape is not None and tuple(mask.shape) != tuple(expected_shape):
        raise FileFormatError(path, "size", f"{expected_shape[1]}x{expected_shape[0]} (W x H) like its frame", f"{mask.shape[1]}x{mask.shape[0]}")
    return mask


def _rgb_to_indices(path: Path, rgb: np.ndarray) -> np.ndarray:
    palette = davis_palette().astype(np.int64)
    codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(c): i for i, c in enumerate(codes)}  # the 256 colours are distinct
    pixels = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    unique, inverse = np.unique(pixels, return_inverse=True)
    unknown = [int(u) for u in unique if int(u) not in lookup]
    if unknown:
        shown = ", ".join(f"#{u:06x}" for u in unknown[:5])
        raise FileFormatError(path, "colours", "colours of the DAVIS palette", shown)
    return np.array([lookup[int(u)] for u in unique], dtype=np.uint8)[inverse].reshape(rgb.shape[:2])


def mask_ids(mask) -> np.ndarray:
    """``mask`` as [H, W] uint8 object ids (bool, integer or whole-valued float input).

    Raises:
        ValueError: not [H, W], or values that are not whole numbers in 0..255 (which a cast to
            uint8 would truncate or wrap into other ids).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W] ids, got shape {list(mask.shape)}")
    if mask.dtype != bool and (mask.dtype.kind not in "uif" or (mask.size and not (np.all(mask == np.round(mask)) and 0 <= mask.min() and mask.max() <= 255))):
        low, high = (mask.min(), mask.max()) if mask.size and mask.dtype.kind in "uif" else (None, None)
        raise ValueError(f"mask must hold whole-number ids in 0..255, got dtype {mask.dtype} with values from {low} to {high}")
    return mask.astype(np.uint8)


def write_mask(path: str | os.PathLike, mask: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write [H, W] integer object indices (0..255) as an indexed-palette PNG, atomically."""
    from PIL import Image

    from mnemovision.vision.checkpoints import atomic_write

    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"{path}: write_mask writes palette PNGs (.png); a lossy format would change the ids")
    mask = mask_ids(mask)
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette((davis_palette() if palette is None else np.asarray(palette, dtype=np.uint8)).reshape(-1).tolist())
    with atomic_write(path, "wb") as handle:
        img.save(handle, format="PNG")


def overlay_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend palette colours of ``mask`` [H, W] onto ``image`` [H, W, 3] uint8 (background untouched)."""
    image, mask = np.asarray(image), mask_ids(mask)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3] uint8, got shape {list(image.shape)} dtype {image.dtype}")
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} sizes differ")
    check_real("alpha", alpha, 0, 1)
    colours = davis_palette()[mask].astype(np.float32)
    out = image.astype(np.float32)
    fg = mask > 0
    out[fg] = (1.0 - alpha) * out[fg] + alpha * colours[fg]
    return np.round(out).astype(np.uint8)
