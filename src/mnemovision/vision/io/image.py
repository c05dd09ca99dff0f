"""Images: reading with EXIF orientation applied, writing, and uint8 <-> float conversions.

Arrays are ``[H, W, 3]`` (or ``[H, W, 4]`` with alpha) in RGB order; uint8 in [0, 255] or float32 in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnemovision.vision.errors import FileFormatError


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]. Float input is returned as float32 unchanged."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise ValueError(f"image must be uint8 or float, got dtype {image.dtype}")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 by clipping and rounding half to even (``(x * 255).round()``, as BasicSR's
    ``tensor2img``). uint8 input is returned unchanged; NaN is refused (it would be written as black)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be uint8 or float, got dtype {image.dtype}")
    if np.isnan(image).any():
        raise ValueError(f"image holds NaN in {int(np.isnan(image).sum())} of {image.size} values")
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def load_pillow(path: Path, kind: str, expected: str, exif: bool = False):
    """The decoded Pillow image at ``path``, with its EXIF orientation applied when ``exif``.

    Raises:
        FileNotFoundError: ``<path>: <kind> not found``. FileFormatError: data Pillow cannot decode;
            it raises UnidentifiedImageError, OSError, SyntaxError (a misread PNG chunk) or
            ValueError ("Truncated IHDR chunk") for those.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path.exists():
        raise FileNotFoundError(f"{path}: {kind} not found")
    try:
        with Image.open(path) as img:
            if exif:
                img = ImageOps.exif_transpose(img)
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise FileFormatError(path, "image data", expected, str(err)) from err
    return img


def read_image(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """Read an image file as uint8, with its EXIF orientation applied.

    Args:
        path: any format Pillow reads (PNG, JPEG, ...).
        mode: ``RGB`` ([H, W, 3]), ``RGBA`` ([H, W, 4]), ``L`` ([H, W]) or ``keep`` (as stored:
            RGB, RGBA or L; palette images become RGB/RGBA). 16-bit grayscale is scaled to 8 bits.

    Raises:
        FileNotFoundError: no such file. FileFormatError: not a readable image.
    """
    path = Path(path)
    img = load_pillow(path, "image", "an image Pillow can decode", exif=True)
    if img.mode.startswith("I") or img.mode == "F":
        img = _gray_to_eight_bits(path, img)
    if mode == "keep":
        if img.mode == "P":
            mode = "RGBA" if "transparency" in img.info else "RGB"
        elif img.mode in ("RGB", "RGBA", "L"):
            mode = img.mode
        elif img.mode in ("LA",):
            mode = "RGBA"
        else:
            mode = "RGB"
    if mode not in ("RGB", "RGBA", "L"):
        raise ValueError(f"mode must be RGB, RGBA, L or keep, got {mode!r}")
    return np.asarray(img.convert(mode))


def _gray_to_eight_bits(path: Path, img):
    """An ``L`` image of a 16-bit grayscale one, scaled (v / 257, rounded) rather than clipped at 255
    as Pillow's own conversion does. Float images and integers beyond 16 bits have no 8-bit range."""
    from PIL import Image

    values = np.asarray(img)
    if img.mode == "F" or values.min() < 0 or values.max() > 65535:
        raise FileFormatError(path, "mode", "an 8- or 16-bit image", f"{img.mode} with values {values.min()}..{values.max()}")
    return Image.fromarray(np.round(values.astype(np.float64) / 257.0).astype(np.uint8))


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Write ``[H, W]``, ``[H, W, 3]`` or ``[H, W, 4]`` uint8 (or float [0, 1]) to PNG/JPEG, atomically.

    Raises:
        ValueError: ``<path>: ...`` for a shape, dtype, NaN, suffix or alpha the file cannot hold.
    """
    from PIL import Image

    from mnemovision.vision.checkpoints import atomic_write

    path = Path(path)
    try:
        array = to_uint8(np.asarray(image))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"{path}: image must be [H, W], [H, W, 3] or [H, W, 4], got {list(array.shape)}")
    if array.size == 0:
        raise ValueError(f"{path}: image is empty, shape {list(array.shape)}")
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported image suffix {path.suffix!r} (png, jpg, jpeg, webp, bmp)")
    if fmt in ("JPEG", "BMP") and array.ndim == 3 and array.shape[-1] == 4:
        raise ValueError(f"{path}: {fmt} has no alpha channel; write RGBA as .png or .webp, or drop the alpha")
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_write(path, "wb") as handle:
        Image.fromarray(array).save(handle, format=fmt, **kwargs)


def composite_alpha(rgba: np.ndarray, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Composite ``[H, W, 4]`` RGBA (uint8 or float) over a constant ``background`` -> float32 [H, W, 3]."""
    rgba = to_float(rgba)
    if rgba.ndim != 3 or rgba.shape[-1] != 4:
        raise ValueError(f"rgba must be [H, W, 4], got {rgba.shape}")
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)
