"""Compare a prediction with a reference: every image metric at once, for images and videos."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from mnemovision.vision.metrics.psnr_ssim import image_psnr, image_ssim


@dataclass(frozen=True)
class VideoComparison:
    """Per-frame metrics of two videos (compared over their common length)."""

    psnr: list[float]
    ssim: list[float]
    frames: int
    fps: float
    extra: dict = field(default_factory=dict)

    @property
    def mean_psnr(self) -> float:
        finite = [v for v in self.psnr if np.isfinite(v)]
        return float(np.mean(finite)) if finite else float("inf")

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))


def compare_images(pred: np.ndarray, target: np.ndarray, crop_border: int = 0, lpips_model=None) -> dict[str, float]:
    """PSNR and SSIM on RGB and on BT.601 Y (BasicSR convention), plus LPIPS when a model is given.

    Args:
        pred, target: [H, W, 3] uint8 (or float in [0, 1]) of one size.
        lpips_model: an ``LPIPS`` module (from local weights) or None.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and reference {target.shape} differ in size")
    if pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"images must be [H, W, 3] RGB, got {pred.shape}")
    out = {
        "psnr": image_psnr(pred, target, crop_border),
        "ssim": image_ssim(pred, target, crop_border),
        "psnr_y": image_psnr(pred, target, crop_border, y_channel=True),
        "ssim_y": image_ssim(pred, target, crop_border, y_channel=True),
    }
    if lpips_model is not None:
        import torch

        from mnemovision.vision.io.image import to_float

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(to_float(x).transpose(2, 0, 1)).unsqueeze(0)

        with torch.no_grad():
            out["lpips"] = float(lpips_model(tensor(pred), tensor(target))[0])
    return out


def compare_videos(pred_path: str | os.PathLike, target_path: str | os.PathLike, max_frames: int | None = None) -> VideoComparison:
    """Per-frame RGB PSNR and SSIM of two videos of one frame size, over their common length."""
    from mnemovision.vision.io.video import iter_video, video_fps

    psnrs, ssims = [], []
    for index, (a, b) in enumerate(zip(iter_video(pred_path), iter_video(target_path))):
        if a.shape != b.shape:
            raise ValueError(f"{pred_path}: frame {index} is {a.shape[1]}x{a.shape[0]}, but {target_path} has {b.shape[1]}x{b.shape[0]}")
        psnrs.append(image_psnr(a, b))
        ssims.append(image_ssim(a, b))
        if max_frames is not None and len(psnrs) >= max_frames:
            break
    if not psnrs:
        raise ValueError(f"{pred_path} / {target_path}: no frames to compare")
    return VideoComparison(psnr=psnrs, ssim=ssims, frames=len(psnrs), fps=video_fps(target_path))
