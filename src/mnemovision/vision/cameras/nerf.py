"""NeRF / instant-ngp ``transforms.json`` camera files.

Intrinsics come from ``fl_x, fl_y, cx, cy, w, h`` or from ``camera_angle_x`` (and optionally
``camera_angle_y``), at the top level or per frame; distortion from ``k1 k2 p1 p2``. Frame poses
(``transform_matrix``) are camera-to-world in OpenGL/Blender axes and are returned as OpenCV
world-to-camera ``viewmats``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnemovision.vision.cameras.camera import (
    Cameras,
    focal_from_fov,
    fov_from_focal,
    intrinsics_matrix,
    invert_pose,
    opencv_to_opengl,
    opengl_to_opencv,
)
from mnemovision.vision.errors import FileFormatError, read_utf8

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


@dataclass(frozen=True)
class NerfFrames:
    """Cameras of a transforms.json file and the image file of each frame (in file order)."""

    cameras: Cameras
    image_paths: tuple[Path, ...]


def _resolve_image(root: Path, file_path: str) -> Path:
    """The image a frame names; NeRF-synthetic files omit the extension (``./train/r_0``)."""
    path = (root / file_path).resolve()
    if path.suffix in _IMAGE_SUFFIXES or path.exists():
        return path
    for suffix in _IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return candidate
    return path.with_name(path.name + ".png")


def _finite_number(x) -> bool:
    """A JSON number that is finite as a float (JSON integers can have any number of digits)."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


def _number(source: dict, key: str, path: Path, where: str) -> float | None:
    value = source.get(key)
    if value is None:
        return None
    if not _finite_number(value):
        raise FileFormatError(path, f"{where}.{key}", "a finite number", repr(value)[:80])
    return float(value)


def _frame_intrinsics(meta: dict, frame: dict, path: Path, index: int, size: tuple[int, int] | None):
    """(K, dist, w, h) of one frame; frame-level fields override the top-level ones."""
    where = f"frames[{index}]"

    def get(key: str) -> float | None:
        value = _number(frame, key, path, where)
        return value if value is not None else _number(meta, key, path, "top level")

    w, h = get("w"), get("h")
    if w is None or h is None:
        if size is None:
            raise FileFormatError(path, f"{where}.w/h", "image size fields w and h (or a readable image)", "neither")
        w, h = size
    if not (round(w) >= 1 and round(h) >= 1):
        raise FileFormatError(path, f"{where}.w/h", "an image size of at least 1x1 pixel", f"{w}x{h}")
    fx, fy = get("fl_x"), get("fl_y")
    angle_x, angle_y = get("camera_angle_x"), get("camera_angle_y")
    for key, value in (("fl_x", fx), ("fl_y", fy)):
        if value is not None and not value > 0:
            raise FileFormatError(path, f"{where}.{key}", "a positive focal length in pixels", repr(value))
    for key, value in (("camera_angle_x", angle_x), ("camera_angle_y", angle_y)):
        if value is not None and not 0 < value < math.pi:
            raise FileFormatError(path, f"{where}.{key}", "a field of view in radians, in (0, pi)", repr(value))
    if fx is None and angle_x is not None:
        fx = focal_from_fov(angle_x, w)
    if fy is None and angle_y is not None:
        fy = focal_from_fov(angle_y, h)
    if fx is None and fy is None:
        raise FileFormatError(path, f"{where} intrinsics", "fl_x/fl_y or camera_angle_x", "none of them")
    fx = fx if fx is not None else fy
    fy = fy if fy is not None else fx
    cx, cy = get("cx"), get("cy")
    cx = w / 2.0 if cx is None else cx
    cy = h / 2.0 if cy is None else cy
    dist = np.array([get(k) or 0.0 for k in ("k1", "k2", "p1", "p2")])
    return intrinsics_matrix(fx, fy, cx, cy), dist, int(round(w)), int(round(h))


def _image_size(image_path: Path) -> tuple[int, int] | None:
    """(W, H) of a frame's image, None when it is missing; an unreadable one is a FileFormatError."""
    if not image_path.exists():
        return None
    from mnemovision.vision.io.image import load_pillow

    return load_pillow(image_path, "image", "an image Pillow can decode").size


def _matrix(value) -> np.ndarray | None:
    """[4, 4] or [3, 4] float64 of a JSON value, or None where it is not such a matrix of finite numbers."""
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        return None
    if not all(_finite_number(x) for row in value for x in row):
        return None
    if {len(row) for row in value} != {4} or len(value) not in (3, 4):
        return None
    return np.array(value, dtype=np.float64)


def read_transforms(path: str | Path) -> NerfFrames:
    """Read a ``transforms.json`` file.

    Args:
        path: the JSON file. Relative ``file_path`` entries resolve against its folder.

    Returns:
        NerfFrames with V cameras (OpenCV world-to-camera) and V image paths. Image files are not
        required to exist (a dataset decides what to do with missing ones), except that when the file
        gives no ``w``/``h`` the size is read from the first frame's image.

    Raises:
        FileFormatError: invalid JSON, missing ``frames``, a bad ``transform_matrix``, missing
            intrinsics, or frames of different image sizes.
    """
    path = Path(path)
    try:
        meta = json.loads(read_utf8(path))
    except json.JSONDecodeError as err:
        raise FileFormatError(path, "JSON", "valid JSON", f"a syntax error at line {err.lineno}") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        found = type(meta.get("frames") if isinstance(meta, dict) else meta).__name__
        raise FileFormatError(path, "frames", "a non-empty list of frames", found)
    root = path.parent
    frames = meta["frames"]
    image_paths = []
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise FileFormatError(path, f"frames[{i}].file_path", "a string", repr(frame.get("file_path") if isinstance(frame, dict) else frame))
        image_paths.append(_resolve_image(root, frame["file_path"]))
    size = None
    if ("w" not in meta or "h" not in meta) and any("w" not in f or "h" not in f for f in frames):
        size = next((s for s in map(_image_size, image_paths) if s is not None), None)
    c2ws, ks, dists, sizes = [], [], [], set()
    for i, frame in enumerate(frames):
        matrix = _matrix(frame.get("transform_matrix"))
        if matrix is None:
            raise FileFormatError(path, f"frames[{i}].transform_matrix", "a 4x4 (or 3x4) matrix of numbers", repr(frame.get("transform_matrix"))[:80])
        if matrix.shape == (3, 4):
            matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
        k, dist, w, h = _frame_intrinsics(meta, frame, path, i, size)
        c2ws.append(opengl_to_opencv(matrix))
        ks.append(k)
        dists.append(dist)
        sizes.add((w, h))
    if len(sizes) != 1:
        raise FileFormatError(path, "w/h", "one image size for all frames", f"sizes {sorted(sizes)}")
    (width, height), = sizes
    cameras = Cameras(
        viewmats=invert_pose(np.stack(c2ws)),
        Ks=np.stack(ks),
        width=width,
        height=height,
        dist=np.stack(dists),
        names=tuple(p.name for p in image_paths),
    )
    return NerfFrames(cameras=cameras, image_paths=tuple(image_paths))


def write_transforms(path: str | Path, cameras: Cameras, file_paths: list[str], extra: dict | None = None) -> None:
    """Write ``cameras`` as a ``transforms.json`` with per-frame ``fl_x fl_y cx cy`` and shared ``w h``.

    Also writes ``camera_angle_x`` of the first camera, so readers that only know the NeRF-synthetic
    fields still work. ``extra`` adds top-level fields (``aabb_scale``, ...).
    """
    if len(file_paths) != len(cameras):
        raise ValueError(f"file_paths must have {len(cameras)} entries, got {len(file_paths)}")
    c2w_gl = opencv_to_opengl(cameras.c2w)
    frames = []
    for i, name in enumerate(file_paths):
        k, d = cameras.Ks[i], cameras.dist[i]
        frame = {"file_path": name, "transform_matrix": c2w_gl[i].tolist()}
        frame.update(fl_x=float(k[0, 0]), fl_y=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]))
        if np.any(d != 0):
            frame.update(k1=float(d[0]), k2=float(d[1]), p1=float(d[2]), p2=float(d[3]))
        frames.append(frame)
    meta = {
        "camera_angle_x": fov_from_focal(float(cameras.Ks[0, 0, 0]), cameras.width),
        "w": cameras.width,
        "h": cameras.height,
        **(extra or {}),
        "frames": frames,
    }
    from mnemovision.vision.checkpoints import atomic_write

    with atomic_write(path, "w") as handle:
        json.dump(meta, handle, indent=2)
