"""PSNR and SSIM, as differentiable torch functions and as BasicSR-exact image metrics.

Torch functions take ``[..., C, H, W]`` tensors and return one value per image (``[...]``).
The image functions follow BasicSR's evaluation convention exactly: images are rounded to uint8,
``crop_border`` pixels are removed on every side, optionally converted to the BT.601 luma channel
(``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` on [0, 1] input, computed in float32 like BasicSR),
then PSNR over [0, 255] and SSIM with an 11x11 Gaussian window (sigma 1.5), valid region, averaged
over channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mnemovision.vision.checks import check_int

_Y_WEIGHTS_RGB = (65.481, 128.553, 24.966)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.ndim < 3:
        raise ValueError(f"images must be [..., C, H, W], got shape {tuple(pred.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of ``[..., C, H, W]`` images -> ``[...]`` (inf where equal)."""
    _check_pair(pred, target)
    mse = (pred - target).pow(2).flatten(-3).mean(-1)
    return 10.0 * torch.log10(data_range**2 / mse)


SSIM_WINDOW = 11  # the side of SSIM's Gaussian window (Wang et al. 2004, and every table since)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian [size] centred on the middle tap (as ``cv2.getGaussianKernel``)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = SSIM_WINDOW,
    sigma: float = 1.5,
    padding: str = "valid",
) -> torch.Tensor:
    """Structural similarity of ``[..., C, H, W]`` images -> ``[...]`` (mean over pixels and channels).

    Args:
        data_range: value span (1 for [0, 1] images, 255 for [0, 255]); sets C1 = (0.01 L)^2, C2 = (0.03 L)^2.
        padding: ``valid`` (statistics only where the window fits; BasicSR, skimage, the literature
            tables) or ``same`` (zero padding; the 3D Gaussian splatting training loss).
    """
    _check_pair(pred, target)
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    h, w = pred.shape[-2:]
    if padding == "valid" and (h < window_size or w < window_size):
        raise ValueError(f"images of {h}x{w} are smaller than the {window_size}x{window_size} SSIM window; use padding='same'")
    lead = pred.shape[:-3]
    c = pred.shape[-3]
    x = pred.reshape(-1, c, h, w)
    y = target.reshape(-1, c, h, w)
    g = gaussian_window(window_size, sigma, dtype=pred.dtype).to(pred.device)
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window_size, window_size).contiguous()
    pad = window_size // 2 if padding == "same" else 0

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sigma_xx = blur(x * x) - mu_x**2
    sigma_yy = blur(y * y) - mu_y**2
    sigma_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_xx + sigma_yy + c2))
    return ssim_map.flatten(1).mean(-1).reshape(lead)


# ----------------------------------------------------------------------------------------------
# BasicSR-convention image metrics (numpy in, float out)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image [H, W, 3] given in [0, 255] -> [H, W] float64 in [16, 235].

    Computed in float32 as BasicSR's ``to_y_channel`` / MATLAB ``rgb2ycbcr``, then widened. The
    weighted sum is taken channel by channel, not as BasicSR's matmul: BLAS orders the three products
    by the array's memory layout (and the CPU), so the same pixels in a transposed or Fortran-order
    copy got luma a rounding step apart (1,606 of 8,475 pixels of a photograph on one machine) and
    scores that differed in the 10th digit.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs [H, W, 3], got {image.shape}")
    unit = image.astype(np.float32) / np.float32(255.0)
    w = np.asarray(_Y_WEIGHTS_RGB, dtype=np.float32)
    y = unit[..., 0] * w[0] + unit[..., 1] * w[1] + unit[..., 2] * w[2] + np.float32(16.0)
    return (y / np.float32(255.0) * np.float32(255.0)).astype(np.float64)


def _as_uint8(name: str, image) -> np.ndarray:
    """uint8 as given; float read as [0, 1] and rounded. NaN, and floats far outside [0, 1] (an image
    in 0-255 passed as float would be clipped to white), are errors rather than a wrong score."""
    from mnemovision.vision.io.image import to_uint8

    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.floating) and image.size:
        if not np.isfinite(image).all():
            raise ValueError(f"{name} has NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if low < -1.0 or high > 2.0:
            raise ValueError(f"{name} is float with values in {low:g}..{high:g}; float images are read as [0, 1] (pass uint8 for 0-255 images)")
    return to_uint8(image)


def _prepare(pred: np.ndarray, target: np.ndarray, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_uint8("pred", pred), _as_uint8("target", target)
    if a.shape != b.shape:
        raise ValueError(f"pred and target must have one shape, got {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3:
        raise ValueError(f"images must be [H, W] or [H, W, C], got {a.shape}")
    crop_border = check_int("crop_border", crop_border, 0)
    if 2 * crop_border >= min(a.shape[:2]):
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        if a.shape[-1] != 3:
            raise ValueError(f"y_channel=True needs RGB images, got {a.shape[-1]} channels")
        return rgb_to_y(a)[..., None], rgb_to_y(b)[..., None]
    return a.astype(np.float64), b.astype(np.float64)


def image_psnr(pred: np.ndarray, target: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of two images (uint8, or float in [0, 1] rounded to uint8 first), BasicSR convention.
    Float images with NaN, or far outside [0, 1] (below -1 or above 2), raise ValueError.

    Args:
        pred, target: [H, W, 3] RGB or [H, W] gray. crop_border: pixels removed on each side
            (super-resolution uses the scale). y_channel: measure on BT.601 luma.
    """
    a, b = _prepare(pred, target, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def image_ssim(pred: np.ndarray, target: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """SSIM of two images with the BasicSR convention (see ``image_psnr`` for the arguments)."""
    a, b = _prepare(pred, target, crop_border, y_channel)
    ta = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    tb = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1)))
    return float(ssim(ta, tb, data_range=255.0, padding="valid"))
