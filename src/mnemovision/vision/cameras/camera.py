"""Pinhole cameras: intrinsics, poses and axis conventions.

Conventions (see the package glossary): ``viewmats [..., V, 4, 4]`` are world-to-camera in OpenCV axes
(x right, y down, z forward); ``Ks [..., V, 3, 3]`` are pixel intrinsics with the pixel centre at
+0.5 (``cx = W / 2`` for a centred principal point). OpenGL/Blender camera axes are x right, y up,
z backward; the two differ by flipping the camera's y and z axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mnemovision.vision.checks import check_real

# Diagonal that maps OpenCV camera axes to OpenGL/Blender camera axes (and back: it is its own inverse).
_CV_GL_FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def focal_from_fov(fov_rad: float, size_px: float) -> float:
    """Focal length in pixels of a field of view ``fov_rad`` spanning ``size_px`` pixels."""
    if not 0.0 < fov_rad < math.pi:
        raise ValueError(f"fov_rad must be in (0, pi), got {fov_rad}")
    return 0.5 * size_px / math.tan(0.5 * fov_rad)


def fov_from_focal(focal_px: float, size_px: float) -> float:
    """Field of view in radians of a focal length ``focal_px`` over ``size_px`` pixels."""
    if focal_px <= 0:
        raise ValueError(f"focal_px must be positive, got {focal_px}")
    return 2.0 * math.atan(0.5 * size_px / focal_px)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """3x3 pixel intrinsics ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` as float64."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Invert rigid transforms ``[..., 4, 4]`` (world-to-camera <-> camera-to-world) exactly.

    Uses ``R^T`` rather than a general inverse, so orthonormality is kept.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape[-2:] != (4, 4):
        raise ValueError(f"pose must have shape [..., 4, 4], got {pose.shape}")
    rot_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    out = np.zeros_like(pose)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rot_t, pose[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def opengl_to_opencv(c2w_gl: np.ndarray) -> np.ndarray:
    """Camera-to-world ``[..., 4, 4]`` in OpenGL/Blender camera axes -> camera-to-world in OpenCV axes."""
    return np.asarray(c2w_gl, dtype=np.float64) @ _CV_GL_FLIP


def opencv_to_opengl(c2w_cv: np.ndarray) -> np.ndarray:
    """Camera-to-world ``[..., 4, 4]`` in OpenCV camera axes -> camera-to-world in OpenGL/Blender axes."""
    return np.asarray(c2w_cv, dtype=np.float64) @ _CV_GL_FLIP


@dataclass(frozen=True)
class Cameras:
    """A set of V pinhole cameras sharing one image size.

    Attributes:
        viewmats: [V, 4, 4] float64 world-to-camera, OpenCV axes.
        Ks: [V, 3, 3] float64 pixel intrinsics.
        width, height: image size in pixels.
        dist: [V, 4] float64 OpenCV distortion ``k1 k2 p1 p2`` (zeros for an ideal pinhole).
        names: V image names (file names or ids), for bookkeeping.
    """

    viewmats: np.ndarray
    Ks: np.ndarray
    width: int
    height: int
    dist: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        v = self.viewmats.shape[0] if self.viewmats.ndim == 3 else -1
        if self.viewmats.shape != (v, 4, 4):
            raise ValueError(f"viewmats must have shape [V, 4, 4], got {self.viewmats.shape}")
        if self.Ks.shape != (v, 3, 3):
            raise ValueError(f"Ks must have shape [{v}, 3, 3], got {self.Ks.shape}")
        if self.dist.shape == (0, 4):
            object.__setattr__(self, "dist", np.zeros((v, 4)))
        if self.dist.shape != (v, 4):
            raise ValueError(f"dist must have shape [{v}, 4], got {self.dist.shape}")
        if self.names and len(self.names) != v:
            raise ValueError(f"names must have {v} entries, got {len(self.names)}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be positive, got {self.width}x{self.height}")
        for name in ("viewmats", "Ks", "dist"):
            bad = np.flatnonzero(~np.isfinite(getattr(self, name)).all(axis=(1, 2) if name != "dist" else 1))
            if bad.size:
                which = self.names[bad[0]] if self.names else f"index {bad[0]}"
                raise ValueError(f"{name} must be finite; camera {which} has a NaN or infinite entry")

    def __len__(self) -> int:
        return int(self.viewmats.shape[0])

    @property
    def c2w(self) -> np.ndarray:
        """[V, 4, 4] camera-to-world in OpenCV axes."""
        return invert_pose(self.viewmats)

    @property
    def centers(self) -> np.ndarray:
        """[V, 3] camera centres in world coordinates."""
        return self.c2w[:, :3, 3]

    def scaled(self, factor: float) -> "Cameras":
        """The same cameras for images downscaled by ``factor`` (size rounded down, K scaled)."""
        check_real("factor", factor, 0, low_open=True)
        w, h = int(self.width // factor), int(self.height // factor)
        if w < 1 or h < 1:
            raise ValueError(f"factor {factor} leaves no pixel of {self.width}x{self.height} images ({w}x{h})")
        ks = self.Ks.copy()
        ks[:, 0, :] *= w / self.width
        ks[:, 1, :] *= h / self.height
        return Cameras(self.viewmats.copy(), ks, w, h, self.dist.copy(), self.names)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points [N, 3] into every camera (no distortion).

        Returns:
            uv: [V, N, 2] pixel coordinates; depth: [V, N] camera-space z.
        """
        pts = np.asarray(points, dtype=np.float64)
        cam = np.einsum("vij,nj->vni", self.viewmats[:, :3, :3], pts) + self.viewmats[:, None, :3, 3]
        depth = cam[..., 2]
        pix = np.einsum("vij,vnj->vni", self.Ks, cam)
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = pix[..., :2] / pix[..., 2:3]
        return uv, depth
