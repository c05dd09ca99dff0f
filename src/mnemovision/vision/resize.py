"""MATLAB-compatible ``imresize`` (bicubic, antialiased when shrinking): how the LR images of the SR
benchmarks (Set5, Set14, DIV2K ``LR_bicubic``) were made, and the bicubic baseline of every SR table.

MATLAB's algorithm, restated: for each output index x (1-based) along a dimension, the source
position is ``u = x / s + (1 - 1 / s) / 2``; taps run over ``floor(u - w / 2) + 0 .. ceil(w) + 1``
with the Keys cubic (a = -0.5), stretched to width ``w = 4 / s`` and scaled by ``s`` when ``s < 1``
(antialiasing); weights are normalised to sum to one and indices past an edge are mirrored
(symmetric padding). Dimensions are resized one at a time, the one with the smaller scale first
(rows first on ties); uint8 images are rounded back to uint8 after each pass, as MATLAB does.
"""

from __future__ import annotations

import math

import numpy as np

from mnemovision.vision.checks import check_int


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def contributions(in_len: int, out_len: int, scale: float, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Weights [out_len, P] and 0-based source indices [out_len, P] of one resized dimension."""
    width = 4.0
    if scale < 1 and antialias:
        kernel = lambda t: scale * cubic(scale * t)  # noqa: E731
        width /= scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    used = np.any(weights != 0, axis=0)
    return weights[:, used], indices[:, used]


def _resize_axis(image: np.ndarray, axis: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    weights, indices = contributions(image.shape[axis], out_len, scale, antialias)
    moved = np.moveaxis(image.astype(np.float64, copy=False), axis, 0)
    out = np.zeros((out_len, *moved.shape[1:]), dtype=np.float64)
    extra = (slice(None),) + (None,) * (moved.ndim - 1)
    for j in range(weights.shape[1]):
        out += weights[:, j][extra] * moved[indices[:, j]]
    return np.moveaxis(out, 0, axis)


def imresize(image: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None, antialias: bool = True) -> np.ndarray:
    """Bicubic resize exactly as MATLAB's ``imresize(image, scale)`` / ``imresize(image, [h, w])``.

    Args:
        image: [H, W] or [H, W, C]; uint8 (result rounded to uint8, per pass, like MATLAB) or float
            (result float64, unclipped).
        scale: factor for both sides (output side ``ceil(side * scale)``); or ``size`` = (out_h, out_w).

    Raises:
        ValueError: neither or both of scale/size given, non-positive values, an empty image.
    """
    image = np.asarray(image)
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale and size")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"imresize: image must be [H, W] or [H, W, C] and non-empty, got {list(image.shape)}")
    h, w = image.shape[:2]
    if scale is not None:
        if not 0 < scale < math.inf:  # also refuses NaN
            raise ValueError(f"imresize: scale must be a positive finite number, got {scale}")
        scales, out = (float(scale), float(scale)), (math.ceil(h * scale), math.ceil(w * scale))
    else:
        out = (int(size[0]), int(size[1]))
        if min(out) <= 0:
            raise ValueError(f"imresize: size must be positive, got {size}")
        scales = (out[0] / h, out[1] / w)
    is_uint8 = image.dtype == np.uint8
    result = image
    for axis in sorted((0, 1), key=lambda a: scales[a]):  # stable: rows first on ties
        result = _resize_axis(result, axis, out[axis], scales[axis], antialias)
        if is_uint8:
            result = np.clip(np.round(result), 0, 255).astype(np.uint8)
    return result


def bicubic_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark LR image of ``hr`` [H, W, C] uint8 at integer ``scale``: ``hr`` cropped to a
    multiple of ``scale`` (returned too, as the ground truth), then ``imresize(1 / scale)``."""
    check_int("bicubic_lr: scale", scale, 1)
    if hr.shape[0] < scale or hr.shape[1] < scale:
        raise ValueError(f"bicubic_lr: image {hr.shape[1]}x{hr.shape[0]} is smaller than the scale {scale}")
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    gt = hr[:h, :w]
    return imresize(gt, 1.0 / scale), gt
