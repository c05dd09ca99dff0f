"""Camera paths: look-at poses and orbits, as world-to-camera matrices in OpenCV axes."""

from __future__ import annotations

import numpy as np

from mnemovision.vision.cameras.camera import invert_pose
from mnemovision.vision.checks import check_int, check_real


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """World-to-camera [4, 4] (OpenCV axes) of a camera at ``eye`` looking at ``target``.

    Args:
        eye: [3] camera centre. target: [3] point on the optical axis. up: [3] world up direction;
            the image's "up" (-y in OpenCV axes) is aligned with it.

    Raises:
        ValueError: eye equals target, or the viewing direction is parallel to ``up``.
    """
    eye = np.asarray(eye, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    forward = target - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-12:
        raise ValueError(f"look_at: eye {eye} and target {target} coincide")
    forward /= norm
    right = np.cross(forward, up)
    rnorm = np.linalg.norm(right)
    if rnorm < 1e-9:
        raise ValueError(f"look_at: viewing direction {forward} is parallel to up {up}")
    right /= rnorm
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return invert_pose(c2w)


def orbit(
    center: np.ndarray,
    radius: float,
    n_views: int,
    elevation_deg: float = 20.0,
    up: np.ndarray = (0.0, 0.0, 1.0),
    start_deg: float = 0.0,
) -> np.ndarray:
    """World-to-camera [n_views, 4, 4] of cameras circling ``center`` and looking at it.

    The cameras sit on a circle of the given ``radius`` at ``elevation_deg`` above the plane
    orthogonal to ``up``, evenly spaced in azimuth starting at ``start_deg`` (the circle is open:
    the last view does not repeat the first).
    """
    check_int("n_views", n_views, 1)
    check_real("radius", radius, 0, low_open=True)
    check_real("elevation_deg", elevation_deg)
    check_real("start_deg", start_deg)
    center = np.asarray(center, dtype=np.float64)
    up = np.asarray(up, dtype=np.float64)
    if center.shape != (3,) or up.shape != (3,) or not (np.isfinite(center).all() and np.isfinite(up).all()) or not np.linalg.norm(up) > 0:
        raise ValueError(f"center and up must be finite 3-vectors (up non-zero), got {center.tolist()} and {up.tolist()}")
    up = up / np.linalg.norm(up)
    # An orthonormal basis (a, b) of the plane orthogonal to up.
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = np.cross(up, helper)
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    elev = np.deg2rad(elevation_deg)
    poses = []
    for azim in np.deg2rad(start_deg) + np.linspace(0.0, 2.0 * np.pi, n_views, endpoint=False):
        offset = radius * (np.cos(elev) * (np.cos(azim) * a + np.sin(azim) * b) + np.sin(elev) * up)
        poses.append(look_at(center + offset, center, up))
    return np.stack(poses)


def orbit_from_cameras(viewmats: np.ndarray, n_views: int, start_deg: float = 0.0) -> np.ndarray:
    """An orbit like the one a set of cameras was taken on: world-to-camera [n_views, 4, 4].

    The orbit centre is the point closest (least squares) to all the cameras' optical axes, ``up``
    the mean of their image-up directions, the radius their mean distance to the centre and the
    elevation their mean elevation above the plane orthogonal to ``up``.

    Args:
        viewmats: [V, 4, 4] world-to-camera matrices (OpenCV axes), V >= 2 with non-parallel axes.
    """
    viewmats = np.asarray(viewmats, dtype=np.float64)
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or len(viewmats) < 2:
        raise ValueError(f"viewmats must be [V >= 2, 4, 4], got {list(viewmats.shape)}")
    if not np.isfinite(viewmats).all():
        raise ValueError("viewmats must be finite, got NaN or infinity")
    c2w = np.linalg.inv(viewmats)
    eyes, forwards, ups = c2w[:, :3, 3], c2w[:, :3, 2], -c2w[:, :3, 1]
    # sum_i (I - f_i f_i^T) (x - e_i) = 0: the point nearest every optical axis.
    proj = np.eye(3)[None] - forwards[:, :, None] * forwards[:, None, :]
    center = np.linalg.lstsq(proj.sum(0), np.einsum("vij,vj->i", proj, eyes), rcond=None)[0]
    up = ups.mean(0)
    up /= np.linalg.norm(up)
    offsets = eyes - center
    radius = float(np.linalg.norm(offsets, axis=1).mean())
    elevation = float(np.degrees(np.arcsin(np.clip((offsets @ up) / np.linalg.norm(offsets, axis=1), -1, 1))).mean())
    return orbit(center, radius, n_views, elevation_deg=elevation, up=up, start_deg=start_deg)
