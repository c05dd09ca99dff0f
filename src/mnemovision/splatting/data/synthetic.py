"""The bundled default scene: textured objects on a ground plane, ray-cast on the CPU.

Deterministic and offline: the textures are the real photographs scikit-image ships (astronaut,
coffee, chelsea, rocket, and the grayscale brick texture for the ground). Objects (a sphere, a
rotated box, a cylinder, a second sphere) sit on a finite ground square; one directional light with
Lambertian shading, hard shadows and an ambient term. Rays that miss everything are transparent
(alpha 0), as in the NeRF-synthetic scenes, so loaders composite them on a chosen background.
Cameras sit on a hemisphere (a Fibonacci spiral of elevations 15-70 degrees) looking at the centre.

``make_scene(out_dir)`` writes ``images/*.png`` (RGBA), ``transforms.json`` (NeRF layout) and
``points3d.ply``: coloured surface points back-projected from a few views, an SfM-like cloud for
initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnemovision.vision.cameras import Cameras, intrinsics_matrix, look_at, write_transforms
from mnemovision.vision.checks import check_int, check_real
from mnemovision.vision.io import write_image, write_ply

LIGHT_DIR = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])
AMBIENT = 0.35
GROUND_HALF = 2.6


@dataclass(frozen=True)
class SceneSpec:
    """Options of the bundled scene (every field changes the output deterministically)."""

    n_views: int = 50
    size: int = 128
    radius: float = 4.2
    fov_deg: float = 50.0
    n_points: int = 6000
    supersample: int = 3  # rays per pixel side, box-filtered (anti-aliasing, like a rendered dataset)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("n_views", 1), ("size", 1), ("n_points", 1), ("supersample", 1), ("seed", 0)):
            check_int(f"SceneSpec.{name}", getattr(self, name), low)
        check_real("SceneSpec.radius", self.radius, 0, low_open=True)
        check_real("SceneSpec.fov_deg", self.fov_deg, 0, 180, low_open=True, high_open=True)


def _texture(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)().astype(np.float32) / 255.0
    if img.ndim == 2:
        img = np.stack([img * 0.85, img * 0.7, img * 0.55], -1)  # warm stone tint for grayscale
    return img[..., :3]


def _sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest texel at (u, v) in [0, 1) (wrapped)."""
    h, w = tex.shape[:2]
    x = np.floor((u % 1.0) * w).astype(np.int64).clip(0, w - 1)
    y = np.floor((v % 1.0) * h).astype(np.int64).clip(0, h - 1)
    return tex[y, x]


class _Scene:
    """Analytic objects; ``intersect`` returns per-ray hit distance, normal and albedo."""

    def __init__(self) -> None:
        self.tex = {name: _texture(name) for name in ("astronaut", "coffee", "chelsea", "rocket", "brick")}
        self.spheres = [(np.array([0.85, 0.45, 0.62]), 0.62, "astronaut"), (np.array([0.2, -1.15, 0.38]), 0.38, "chelsea")]
        self.box_center, self.box_half, self.box_angle = np.array([-0.85, -0.35, 0.45]), np.array([0.45, 0.45, 0.45]), math.radians(28.0)
        self.cyl_center, self.cyl_radius, self.cyl_height = np.array([-0.35, 1.15]), 0.33, 1.25

    def intersect(self, origins: np.ndarray, dirs: np.ndarray):
        n = origins.shape[0]
        t_best = np.full(n, np.inf)
        normal = np.zeros((n, 3))
        albedo = np.zeros((n, 3))

        def take(t, nrm, col):
            better = t < t_best
            t_best[better] = t[better]
            normal[better] = nrm[better]
            albedo[better] = col[better]

        # ground square z = 0
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -origins[:, 2] / dirs[:, 2]
        p = origins + np.where(np.isfinite(t), t, 0)[:, None] * dirs  # rays parallel to the plane never meet it
        hit = np.isfinite(t) & (t > 1e-6) & (np.abs(p[:, 0]) <= GROUND_HALF) & (np.abs(p[:, 1]) <= GROUND_HALF)
        t = np.where(hit, t, np.inf)
        take(t, np.tile([0.0, 0.0, 1.0], (n, 1)), _sample(self.tex["brick"], p[:, 0] / 1.3, p[:, 1] / 1.3))
        # spheres (equirectangular texture)
        for center, radius, name in self.spheres:
            oc = origins - center
            b = np.einsum("ij,ij->i", oc, dirs)
            c = np.einsum("ij,ij->i", oc, oc) - radius**2
            disc = b * b - c
            t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
            t = np.where(t > 1e-6, t, np.inf)
            p = origins + np.where(np.isfinite(t), t, 0)[:, None] * dirs
            nrm = (p - center) / radius
            u = 0.5 + np.arctan2(nrm[:, 1], nrm[:, 0]) / (2 * np.pi)
            v = 0.5 - np.arcsin(np.clip(nrm[:, 2], -1, 1)) / np.pi
            take(t, nrm, _sample(self.tex[name], u, v))
        # rotated box (slab test in the box frame)
        ca, sa = math.cos(self.box_angle), math.sin(self.box_angle)
        rot = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
        o_local = (origins - self.box_center) @ rot
        d_local = dirs @ rot
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-self.box_half - o_local) / d_local
            t2 = (self.box_half - o_local) / d_local
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        t = np.where((t_near <= t_far) & (t_near > 1e-6), t_near, np.inf)
        p_local = o_local + np.where(np.isfinite(t), t, 0)[:, None] * d_local
        axis = np.argmax(np.abs(p_local) / self.box_half, axis=1)
        nrm_local = np.zeros((n, 3))
        nrm_local[np.arange(n), axis] = np.sign(p_local[np.arange(n), axis])
        uv = p_local / (2 * self.box_half) + 0.5
        u = np.where(axis == 0, uv[:, 1], uv[:, 0])
        v = np.where(axis == 2, uv[:, 1], 1.0 - uv[:, 2])
        take(t, nrm_local @ rot.T, _sample(self.tex["coffee"], u, v))
        # vertical cylinder (side only, with a flat top)
        oc = origins[:, :2] - self.cyl_center
        a = np.einsum("ij,ij->i", dirs[:, :2], dirs[:, :2])
        b = np.einsum("ij,ij->i", oc, dirs[:, :2])
        c = np.einsum("ij,ij->i", oc, oc) - self.cyl_radius**2
        disc = b * b - a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
        z = origins[:, 2] + np.where(np.isfinite(t), t, 0) * dirs[:, 2]
        t = np.where((t > 1e-6) & (z >= 0) & (z <= self.cyl_height), t, np.inf)
        p = origins + np.where(np.isfinite(t), t, 0)[:, None] * dirs
        nrm = np.concatenate([(p[:, :2] - self.cyl_center) / self.cyl_radius, np.zeros((n, 1))], 1)
        u = 0.5 + np.arctan2(nrm[:, 1], nrm[:, 0]) / (2 * np.pi)
        take(t, nrm, _sample(self.tex["rocket"], u, 1.0 - p[:, 2] / self.cyl_height))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.cyl_height - origins[:, 2]) / dirs[:, 2]
        p = origins + np.where(np.isfinite(t), t, 0)[:, None] * dirs
        inside = np.sum((p[:, :2] - self.cyl_center) ** 2, 1) <= self.cyl_radius**2
        t = np.where((t > 1e-6) & inside, t, np.inf)
        take(t, np.tile([0.0, 0.0, 1.0], (n, 1)), _sample(self.tex["rocket"], p[:, 0], p[:, 1]) * 0.8)
        return t_best, normal, albedo


def _render(scene: _Scene, viewmat: np.ndarray, K: np.ndarray, size: int):
    """(image [H, W, 4] RGBA float in [0, 1], alpha 0 where rays miss; depth [H, W] camera z, inf there)."""
    c2w = np.linalg.inv(viewmat)
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    cam = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], -1).reshape(-1, 3)
    dirs = cam @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origins = np.broadcast_to(c2w[:3, 3], dirs.shape).copy()
    t, normal, albedo = scene.intersect(origins, dirs)
    hit = np.isfinite(t)
    points = origins + np.where(hit, t, 0)[:, None] * dirs
    shadow_t, _, _ = scene.intersect(points + normal * 1e-4, np.broadcast_to(LIGHT_DIR, points.shape).copy())
    lit = ~np.isfinite(shadow_t)
    diffuse = np.clip(normal @ LIGHT_DIR, 0, 1) * lit
    color = albedo * (AMBIENT + (1 - AMBIENT) * diffuse)[:, None]
    rgba = np.concatenate([np.where(hit[:, None], np.clip(color, 0, 1), 0.0), hit[:, None].astype(np.float64)], -1)
    depth = np.where(hit, np.einsum("ij,j->i", points - c2w[:3, 3], c2w[:3, 2]), np.inf)
    return rgba.reshape(size, size, 4), depth.reshape(size, size)


def _box_filter(rgba: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of premultiplied RGBA -> [H / f, W / f, 4] straight RGBA."""
    if factor == 1:
        return rgba
    h, w = rgba.shape[0] // factor, rgba.shape[1] // factor
    pre = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], -1)
    mean = pre.reshape(h, factor, w, factor, 4).mean((1, 3))
    alpha = mean[..., 3:]
    color = np.where(alpha > 0, mean[..., :3] / np.maximum(alpha, 1e-12), 0.0)
    return np.concatenate([color, alpha], -1)


def hemisphere_cameras(spec: SceneSpec) -> Cameras:
    """``n_views`` cameras on a Fibonacci spiral over elevations 15-70 degrees, looking at the centre."""
    golden = math.pi * (3.0 - math.sqrt(5.0))
    target = np.array([0.0, 0.0, 0.45])
    viewmats = []
    for i in range(spec.n_views):
        frac = (i + 0.5) / spec.n_views
        elev = math.radians(15.0 + 55.0 * frac)
        azim = i * golden
        eye = target + spec.radius * np.array([math.cos(elev) * math.cos(azim), math.cos(elev) * math.sin(azim), math.sin(elev)])
        viewmats.append(look_at(eye, target, up=(0.0, 0.0, 1.0)))
    focal = 0.5 * spec.size / math.tan(math.radians(spec.fov_deg) / 2)
    k = intrinsics_matrix(focal, focal, spec.size / 2, spec.size / 2)
    return Cameras(np.stack(viewmats), np.repeat(k[None], spec.n_views, 0), spec.size, spec.size, names=tuple(f"r_{i:03d}.png" for i in range(spec.n_views)))


def make_scene(out_dir: str | Path, spec: SceneSpec = SceneSpec()) -> Path:
    """Render the bundled scene into ``out_dir``; returns the transforms.json path."""
    from mnemovision.vision.progress import track

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    scene = _Scene()
    cams = hemisphere_cameras(spec)
    rng = np.random.default_rng(spec.seed)
    pts, cols = [], []
    per_view = spec.n_points // spec.n_views + 1
    ss = max(1, spec.supersample)
    for i in track(range(len(cams)), "rendering the bundled scene"):
        k = cams.Ks[i].copy()
        k[:2] *= ss
        fine, depth = _render(scene, cams.viewmats[i], k, spec.size * ss)
        write_image(out_dir / "images" / cams.names[i], _box_filter(fine, ss))
        ys, xs = np.nonzero(np.isfinite(depth))
        pick = rng.choice(len(ys), size=min(per_view, len(ys)), replace=False)
        ys, xs = ys[pick], xs[pick]
        z = depth[ys, xs]
        cam_pts = np.stack([(xs + 0.5 - k[0, 2]) / k[0, 0] * z, (ys + 0.5 - k[1, 2]) / k[1, 1] * z, z], -1)
        c2w = np.linalg.inv(cams.viewmats[i])
        pts.append(cam_pts @ c2w[:3, :3].T + c2w[:3, 3])
        cols.append(fine[ys, xs, :3])
    pts_all, cols_all = np.concatenate(pts)[: spec.n_points], np.concatenate(cols)[: spec.n_points]
    colors_u8 = np.round(cols_all * 255).astype(np.uint8)
    write_ply(out_dir / "points3d.ply", {"x": pts_all[:, 0], "y": pts_all[:, 1], "z": pts_all[:, 2], "red": colors_u8[:, 0], "green": colors_u8[:, 1], "blue": colors_u8[:, 2]})
    path = out_dir / "transforms.json"
    write_transforms(path, cams, [f"images/{name}" for name in cams.names], extra={"generator": "mnemovision bundled scene", "seed": spec.seed})
    return path
