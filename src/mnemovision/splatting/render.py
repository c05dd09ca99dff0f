"""Rendering a Gaussian scene along a camera path (orbit videos of any 3DGS PLY, orbit frames)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from mnemovision.splatting.gaussians.model import GaussianModel
from mnemovision.vision.cameras import intrinsics_matrix, orbit, orbit_from_cameras
from mnemovision.vision.checks import check_real


def auto_orbit(model: GaussianModel, n_frames: int, elevation_deg: float = 25.0, up: tuple[float, float, float] = (0.0, 0.0, 1.0), start_deg: float = 0.0):
    """An orbit around the robust centre of the Gaussians (median), at 2.2x their 90th-percentile radius."""
    if len(model) == 0:
        raise ValueError("the model has no Gaussians to orbit around; give the scene's cameras")
    means = model.means.detach().double().cpu().numpy()
    center = np.median(means, axis=0)
    radius = 2.2 * float(np.percentile(np.linalg.norm(means - center, axis=1), 90)) + 1e-6
    return orbit(center, radius, n_frames, elevation_deg=elevation_deg, up=np.asarray(up), start_deg=start_deg)


def orbit_path(model: GaussianModel, n_frames: int, cameras: np.ndarray | None = None, start_deg: float = 0.0) -> np.ndarray:
    """World-to-camera [n_frames, 4, 4]: the orbit of the scene's ``cameras`` [V, 4, 4] when given
    (the one the photos were taken on), else one around the Gaussians (PLY files have no cameras)."""
    if cameras is not None and len(cameras) >= 2:
        return orbit_from_cameras(np.asarray(cameras), n_frames, start_deg=start_deg)
    return auto_orbit(model, n_frames, start_deg=start_deg)


@torch.no_grad()
def render_path(model: GaussianModel, viewmats: np.ndarray, size: tuple[int, int] = (256, 256), fov_deg: float = 50.0, background=(1.0, 1.0, 1.0), progress: bool = True) -> np.ndarray:
    """Render [F, H, W, 3] uint8 frames along world-to-camera ``viewmats`` [F, 4, 4] (OpenCV axes)."""
    from mnemovision.vision.progress import track

    width, height = size
    check_real("fov_deg", fov_deg, 0, 180, low_open=True, high_open=True)
    if len(background) != 3:
        raise ValueError(f"background must be 3 values (RGB), got {background!r}")
    focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    K = torch.from_numpy(intrinsics_matrix(focal, focal, width / 2, height / 2)).float()
    bg = torch.tensor(background, dtype=torch.float32)[None]
    frames = []
    for viewmat in track(list(viewmats), "rendering frames") if progress else viewmats:
        rgb, _, _ = model.render(torch.from_numpy(viewmat).float()[None], K[None], width, height, background=bg)
        frames.append((rgb[0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
    return np.stack(frames)


def orbit_frame(model: GaussianModel, angle_deg: float, size: tuple[int, int] = (256, 256), cameras: np.ndarray | None = None) -> np.ndarray:
    """One [H, W, 3] uint8 frame of the orbit, ``angle_deg`` degrees around it."""
    return render_path(model, orbit_path(model, 1, cameras, start_deg=angle_deg), size, progress=False)[0]


def render_orbit_video(model: GaussianModel, out: str | Path, n_frames: int = 60, size: tuple[int, int] = (256, 256), fps: float = 30.0, cameras: np.ndarray | None = None) -> Path:
    """Write an H.264 orbit video of ``model`` to ``out`` (.mp4); returns the path."""
    from mnemovision.vision.io import write_video

    frames = render_path(model, orbit_path(model, n_frames, cameras), size)
    write_video(out, frames, fps=fps)
    return Path(out)
