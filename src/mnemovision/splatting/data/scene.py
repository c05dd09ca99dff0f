"""Posed-image scenes for splatting: NeRF/instant-ngp ``transforms.json`` folders and COLMAP folders.

``load_scene(folder)`` detects the format, undistorts images whose cameras have k1 k2 p1 p2,
composites alpha channels over a chosen background, downscales by an integer-or-float factor, skips
frames whose image file is missing (with a warning), and splits every ``test_every``-th image into
the test set (the convention of the literature: every 8th).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnemovision.vision.cameras import Cameras, model_to_cameras, read_model, read_transforms
from mnemovision.vision.checks import check_real
from mnemovision.vision.errors import FileFormatError
from mnemovision.vision.io import composite_alpha, read_image, read_ply, to_float


@dataclass
class View:
    """One posed image: image [H, W, 3] float32 in [0, 1], viewmat [4, 4], K [3, 3]."""

    name: str
    image: torch.Tensor
    viewmat: torch.Tensor
    K: torch.Tensor


@dataclass
class SceneData:
    """Train and test views of one scene, an optional point cloud, and the scene's extent."""

    train: list[View]
    test: list[View]
    points: torch.Tensor | None  # [P, 3]
    colors: torch.Tensor | None  # [P, 3] in [0, 1]
    extent: float  # radius of the camera centres' bounding sphere x 1.1 (3DGS's normalisation)
    width: int
    height: int
    source: str


def _undistort(image: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.undistort(image, K, dist.astype(np.float64), None, K)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _load_views(cams: Cameras, paths: list[Path], downscale: float, background: tuple[float, float, float]) -> tuple[list[View], Cameras]:
    scaled = cams.scaled(downscale) if downscale != 1 else cams
    views = []
    for i, path in enumerate(paths):
        if not path.exists():
            warnings.warn(f"{path}: image missing, frame skipped", stacklevel=3)
            continue
        raw = read_image(path, mode="keep")
        if raw.shape[1] != cams.width or raw.shape[0] != cams.height:
            raise ValueError(f"{path}: image is {raw.shape[1]}x{raw.shape[0]}, its camera says {cams.width}x{cams.height}")
        image = composite_alpha(raw, background) if raw.ndim == 3 and raw.shape[-1] == 4 else to_float(raw if raw.ndim == 3 else np.repeat(raw[..., None], 3, -1))
        if np.any(cams.dist[i] != 0):
            image = _undistort(image, cams.Ks[i], cams.dist[i])
        image = _resize(image, scaled.width, scaled.height)
        views.append(View(path.name, torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), torch.from_numpy(scaled.viewmats[i]).float(), torch.from_numpy(scaled.Ks[i]).float()))
    return views, scaled


def camera_extent(viewmats: np.ndarray) -> float:
    """1.1 x the largest distance of a camera centre from their mean (3DGS's scene radius)."""
    centers = np.linalg.inv(viewmats)[:, :3, 3]
    return float(1.1 * np.max(np.linalg.norm(centers - centers.mean(0), axis=1)) + 1e-6)


@dataclass
class SceneCameras:
    """What a scene folder says without reading its images: cameras, image paths, the point cloud."""

    cameras: Cameras
    image_paths: list[Path]
    points: torch.Tensor | None  # [P, 3]
    colors: torch.Tensor | None  # [P, 3] in [0, 1]
    source: str


def read_scene_cameras(folder: str | Path) -> SceneCameras:
    """The cameras of a transforms.json scene (plus ``points3d.ply`` when present) or of a COLMAP
    scene (``sparse/0``, ``sparse`` or the folder itself, with ``images/``)."""
    folder = Path(folder)
    if (folder / "transforms.json").exists() or folder.suffix == ".json":
        path = folder if folder.suffix == ".json" else folder / "transforms.json"
        frames = read_transforms(path)
        points = colors = None
        ply = path.parent / "points3d.ply"
        if ply.exists():
            props = read_ply(ply)
            missing = [name for name in ("x", "y", "z") if name not in props]
            if missing:
                raise FileFormatError(ply, "vertex properties", "x y z (and optionally red green blue)", f"missing {missing}")
            points = torch.from_numpy(np.stack([props["x"], props["y"], props["z"]], -1).astype(np.float32))
            if all(name in props for name in ("red", "green", "blue")):
                colors = torch.from_numpy(np.stack([props["red"], props["green"], props["blue"]], -1).astype(np.float32) / 255.0)
        return SceneCameras(frames.cameras, list(frames.image_paths), points, colors, "transforms.json")
    sparse = next((p for p in (folder / "sparse" / "0", folder / "sparse", folder) if (p / "cameras.bin").exists() or (p / "cameras.txt").exists()), None)
    if sparse is None:
        raise FileNotFoundError(f"{folder}: neither transforms.json nor a COLMAP model (sparse/0, sparse) found")
    model = read_model(sparse)
    cams = model_to_cameras(model)
    points = torch.from_numpy(model.points.xyz.astype(np.float32))
    colors = torch.from_numpy(model.points.rgb.astype(np.float32) / 255.0)
    return SceneCameras(cams, [folder / "images" / name for name in cams.names], points, colors, "colmap")


def load_scene(folder: str | Path, downscale: float = 1.0, test_every: int = 8, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> SceneData:
    """Load a transforms.json scene or a COLMAP scene (``sparse/0`` or ``sparse`` plus ``images/``)."""
    folder = Path(folder)
    check_real("downscale", downscale, 1)  # images are only made smaller: upsampling photos adds memory, no detail
    found = read_scene_cameras(folder)
    cams, paths, points, colors, source = found.cameras, found.image_paths, found.points, found.colors, found.source
    views, scaled = _load_views(cams, paths, downscale, background)
    if not views:
        raise FileNotFoundError(f"{folder}: no frame has its image file")
    order = sorted(range(len(views)), key=lambda i: views[i].name)
    views = [views[i] for i in order]
    test = [v for i, v in enumerate(views) if test_every and i % test_every == 0]
    train = [v for i, v in enumerate(views) if not (test_every and i % test_every == 0)]
    if not train:
        raise ValueError(f"{folder}: {len(views)} view(s) with images, all held out for testing (every {test_every}th view is); a scene needs at least 2")
    extent = camera_extent(np.stack([v.viewmat.double().numpy() for v in views]))
    return SceneData(train, test, points, colors, extent, scaled.width, scaled.height, source)
