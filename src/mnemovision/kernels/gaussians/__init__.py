"""Differentiable tile-based Gaussian rasterizer.

``rasterize_gaussians`` is built from visible stages that can be called alone (``ref``):
``quat_scale_to_covar`` -> ``project_gaussians`` -> ``spherical_harmonics`` -> ``isect_tiles`` ->
``composite``. The PyTorch path (``ref``) runs everywhere and is the reference; the brute-force
``ref.composite_dense`` is the test oracle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from mnemovision.kernels._args import is_int
from mnemovision.kernels._backend import resolve_backend
from mnemovision.kernels.gaussians import analytic, ref
from mnemovision.kernels.gaussians.ref import isect_tiles, project_gaussians, quat_scale_to_covar, spherical_harmonics

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
MAX_CHANNELS = 512


@dataclass
class AbsGrad:
    """Filled by the backward pass when ``absgrad=True``: the sum over pixels of |dL/d means2d|,
    shaped like ``info["means2d"]`` ([..., V, N, 2]), the statistic densification uses."""

    value: torch.Tensor | None = None
    shape: tuple = field(default_factory=tuple)


class RasterInfo(dict):
    """The ``info`` dict of ``rasterize_gaussians``. ``visible`` (from the radii) and ``visible_ids``
    are computed on first access: ``torch.nonzero`` waits for the GPU, and each is a launch that a
    render which never reads them should not pay."""

    def __missing__(self, key):
        if key == "visible":
            radii = self["radii"]
            self[key] = (radii > 0).all(-1)
        elif key == "visible_ids":
            self[key] = torch.nonzero(self["visible"])
        else:
            raise KeyError(key)
        return self[key]

    def get(self, key, default=None):
        return self[key] if key in self or key in ("visible", "visible_ids") else default


def _as(t: torch.Tensor, shape: tuple) -> torch.Tensor:
    """``t`` reshaped to ``shape``, or ``t`` itself when it has that shape already (unbatched calls:
    each view costs the host about as much as launching a small kernel on a GPU)."""
    return t if t.shape == shape else t.reshape(shape)


def _check(name: str, t, shape: tuple, expected: str | None = None) -> None:
    """``t`` must be a floating tensor of ``shape`` (None: any size there); ``expected`` describes it
    in the error (default: ``shape`` written out; messages are built only on failure)."""
    if isinstance(t, torch.Tensor) and t.is_floating_point() and t.ndim == len(shape) and all(s is None or a == s for a, s in zip(t.shape, shape)):
        return
    expected = expected or "[" + ", ".join("?" if s is None else str(s) for s in shape) + "]"
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor {expected}, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point {expected}, got {t.dtype}")
    raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")


def _check_options(width, height, near: float, far: float, tile_size) -> tuple[int, int]:
    """The scalar options: image size, clipping planes, tile size. Returns (width, height) as ints."""
    if not (is_int(width) and is_int(height) and width > 0 and height > 0):
        raise ValueError(f"width and height must be positive ints, got {width!r} x {height!r}")
    if not 0 < near < far:  # also false for NaN
        raise ValueError(f"near and far must satisfy 0 < near < far, got near={near!r}, far={far!r}")
    if not (is_int(tile_size) and tile_size > 0):
        raise ValueError(f"tile_size must be a positive int, got {tile_size!r}")
    return int(width), int(height)


def _validate(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree, render_mode, backgrounds):
    _check("means", means, (*means.shape[:-1], 3) if isinstance(means, torch.Tensor) and means.ndim >= 2 else (None, 3), "[..., N, 3]")
    batch, n = means.shape[:-2], means.shape[-2]
    _check("quats", quats, (*batch, n, 4))
    _check("scales", scales, (*batch, n, 3))
    _check("opacities", opacities, (*batch, n))
    _check("viewmats", viewmats, (*batch, viewmats.shape[-3] if isinstance(viewmats, torch.Tensor) and viewmats.ndim >= 3 else None, 4, 4), "[..., V, 4, 4]")
    v = viewmats.shape[-3]
    _check("Ks", Ks, (*batch, v, 3, 3))
    if sh_degree is None:
        _check("colors", colors, (*batch, n, colors.shape[-1] if isinstance(colors, torch.Tensor) and colors.ndim else None), "[..., N, C]")
        c = colors.shape[-1]
    else:
        if not (is_int(sh_degree) and 0 <= sh_degree <= 3):
            raise ValueError(f"sh_degree must be an int in 0..3, got {sh_degree!r}")
        _check("colors", colors, (*batch, n, colors.shape[-2] if isinstance(colors, torch.Tensor) and colors.ndim >= 2 else None, 3), "[..., N, K, 3] SH coefficients")
        if colors.shape[-2] < (sh_degree + 1) ** 2:
            raise ValueError(f"colors has {colors.shape[-2]} SH coefficients; sh_degree={sh_degree} needs {(sh_degree + 1) ** 2}")
        c = 3
    if not 1 <= c <= MAX_CHANNELS:
        raise ValueError(f"colors must have 1..{MAX_CHANNELS} channels, got {c}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if backgrounds is not None:
        _check("backgrounds", backgrounds, (*batch, v, c))
    dtypes = {t.dtype for t in (means, quats, scales, opacities, colors, viewmats, Ks, *([] if backgrounds is None else [backgrounds]))}
    if len(dtypes) != 1:
        raise ValueError(f"all inputs must share one dtype, got {sorted(map(str, dtypes))}")
    return batch, n, v, c


def _project(means, quats, scales, viewmats, Ks, b, width, height, near, far, antialiased, fused):
    """Projection of [..., N] Gaussians into [..., V] views (B = prod(...) batches): (means2d, conics,
    depths, radii, compensations) [B*V, N, ...], by the fused Triton kernel or the PyTorch stages."""
    if fused:
        from mnemovision.kernels.gaussians import triton_project

        return triton_project.project(means, quats, scales, viewmats, Ks, width, height, near, far, antialiased)
    n, v = means.shape[-2], viewmats.shape[-3]
    means, quats, scales = means.reshape(b, n, 3), quats.reshape(b, n, 4), scales.reshape(b, n, 3)
    viewmats, Ks = viewmats.reshape(b, v, 4, 4), Ks.reshape(b, v, 3, 3)
    # the same stages with closed-form backward passes (a fraction of autograd's CPU time), unless
    # the cameras need gradients
    if viewmats.requires_grad or Ks.requires_grad:
        projected = [
            project_gaussians(means[i], quat_scale_to_covar(quats[i], scales[i]), viewmats[i], Ks[i], width, height, near, far, antialiased)
            for i in range(means.shape[0])
        ]
    else:
        projected = [analytic.project_gaussians(means[i], quats[i], scales[i], viewmats[i], Ks[i], width, height, near, far, antialiased) for i in range(means.shape[0])]
    if len(projected) == 1:  # no copies, and no concatenation nodes in the backward
        return projected[0]
    return tuple(torch.cat([p[j] for p in projected]) for j in range(5))


def _feature_rows(colors, sh_degree, means, viewmats, b: int):
    """(values, shared_features) for [..., N] Gaussians in [..., V] views, B = prod(...): with SH, one
    colour row per (view, Gaussian) pair [B*V*N, 3] and None; else the colours themselves [..., N, C]
    (rows b N + g once flattened) shared by the views and (V N, N): pair b V N + v N + g reads row b N + g."""
    n, v = means.shape[-2], viewmats.shape[-3]
    if sh_degree is None:
        return colors, (v * n, n)
    centers = torch.linalg.inv(viewmats.reshape(b, v, 4, 4))[..., :3, 3]  # [B, V, 3]
    dirs = means.reshape(b, 1, n, 3) - centers[:, :, None]  # [B, V, N, 3]
    return spherical_harmonics(sh_degree, dirs, colors.reshape(b, 1, n, *colors.shape[-2:])).reshape(b * v * n, 3), None


def rasterize_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    *,
    near: float = 0.01,
    far: float = 1e10,
    sh_degree: int | None = None,
    backgrounds: torch.Tensor | None = None,
    render_mode: str = "RGB",
    antialiased: bool = False,
    absgrad: bool = False,
    tile_size: int = ref.TILE_SIZE,
    backend: str = "auto",
):
    """Render Gaussians into V cameras.

    Args:
        means [..., N, 3]; quats [..., N, 4] wxyz (unnormalised is fine); scales [..., N, 3];
        opacities [..., N] in [0, 1]; colors [..., N, C] (any C in 1..512, rendered in one pass) or,
        with ``sh_degree``, SH coefficients [..., N, K, 3]; viewmats [..., V, 4, 4] world-to-camera
        (OpenCV axes); Ks [..., V, 3, 3]; backgrounds [..., V, C] added where transmittance remains.
        render_mode: RGB (C channels), D (accumulated depth sum w z), ED (expected depth D / alpha),
        RGB+D, RGB+ED (depth as the last channel).
        antialiased: opacity compensation for the 0.3 px low-pass (Mip-Splatting's 2-D filter).
        absgrad: also accumulate |dL/d means2d| per pixel into ``info["absgrad"].value``.
        backend: ``torch`` computes in the inputs' dtype (float64: the oracle's precision, tile lists
            ordered at it); ``triton`` computes in float32 whatever the inputs' dtype and returns
            outputs and gradients in it; ``auto`` is triton for CUDA tensors where it is installed.

    Returns:
        render [..., V, H, W, C'], alpha [..., V, H, W, 1], info dict with ``means2d``
        [..., V, N, 2] (its gradient is retained: ``info["means2d"].grad`` after backward, the
        densification statistic),
        ``absgrad`` (AbsGrad), ``radii`` [..., V, N, 2], ``depths`` [..., V, N], ``visible``
        [..., V, N] bool and ``visible_ids`` [K, ndim] (indices of the visible (..., view, Gaussian)
        pairs), both computed when first read, ``conics``, ``n_isects``, ``tile_size``, ``backend``.
    """
    width, height = _check_options(width, height, near, far, tile_size)
    batch, n, v, c = _validate(means, quats, scales, opacities, colors, viewmats, Ks, sh_degree, render_mode, backgrounds)
    chosen = resolve_backend(backend, means.device.type)
    if chosen == "triton":
        if tile_size != 16:
            raise ValueError(f"backend='triton' composites 16x16 tiles, got tile_size={tile_size}")
        from mnemovision.kernels.gaussians import triton_impl as impl
    else:
        impl = ref
    b = math.prod(batch)
    # The fused Triton projection differentiates means, quats and scales; camera gradients take PyTorch's.
    fused = chosen == "triton" and not (viewmats.requires_grad or Ks.requires_grad)
    # Per-Gaussian inputs keep the caller's shapes where they can: the Triton kernels index them
    # flat, and each reshape costs a view op and, under autograd, a node of the backward (host time
    # per call on a GPU). The stages below take any leading shape that flattens to their rows.
    means2d, conics, depths, radii, comps = _project(means, quats, scales, viewmats, Ks, b, width, height, near, far, antialiased, fused)
    opac_v = opacities if v == 1 else opacities.reshape(b, 1, n).expand(b, v, n).reshape(b * v, n)
    if antialiased:
        opac_v = _as(opac_v, comps.shape) * comps
    values, shared_features = _feature_rows(colors, sh_degree, means, viewmats, b)
    want_rgb = render_mode.startswith("RGB")
    want_depth = render_mode != "RGB"
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    if not want_rgb:
        values = values[..., :0]
    if fused:
        from mnemovision.kernels.gaussians import triton_project

        # also drops the (tile, Gaussian) entries no pixel of which reaches alpha 1/255: same render;
        # and orders the tiles longest list first where the compositor launches one program per tile
        ordered = impl.wants_tile_order(values.shape[-1])
        tile_keys, flat_ids, offsets, *order = triton_project.isect_tiles(means2d, radii, depths, conics, opac_v, width, height, order=ordered)
        tile_order = order[0] if ordered else None
    else:
        tile_order = None
        tile_keys, flat_ids, offsets = isect_tiles(means2d, radii, depths, width, height, tile_size)
        tile_keys, flat_ids, offsets = ref.drop_unseen(tile_keys, flat_ids, means2d, conics, opac_v.reshape(-1), b * v, tiles_x * tiles_y, tiles_x, tile_size)
    if shared_features is None:
        feature_ids = flat_ids
    elif chosen == "torch":
        feature_ids = torch.div(flat_ids, v * n, rounding_mode="floor") * n + flat_ids % n
    else:
        feature_ids = None  # the Triton compositor derives the rows from meta["shared_features"]
    holder = AbsGrad(shape=(*batch, v, n, 2))
    meta = {
        "views": b * v, "height": height, "width": width, "tile_size": tile_size,
        "tiles_x": tiles_x, "tiles_y": tiles_y,
        # The PyTorch compositor walks chunks of tiles, "block" Gaussians a step; "chunk_elems" bounds
        # a chunk's per-step tensors (tiles x block x pixels). On CPU about 128k elements: large
        # enough to amortise each op's overhead over long lists, small enough to stay in cache. On a
        # GPU few large chunks (each chunk costs host syncs).
        "block": 64, "chunk_elems": 1 << 17 if means.device.type == "cpu" else 1 << 22,
        "absgrad": absgrad, "absgrad_holder": holder, "shared_features": shared_features,
        "tile_order": tile_order,  # the Triton compositor's program -> (view, tile), or None: in index order
    }
    bg = _as(backgrounds, (b * v, c)) if (backgrounds is not None and want_rgb) else None
    means2d_out = _as(means2d, (*batch, v, n, 2))
    if means2d_out.requires_grad:
        means2d_out.retain_grad()  # densification reads info["means2d"].grad after backward
    render, alpha = impl.composite(means2d_out, conics, opac_v, values, depths if want_depth else None, bg, flat_ids, feature_ids, offsets, meta)
    if render_mode in ("ED", "RGB+ED"):
        expected = render[..., -1:] / alpha.clamp_min(1e-10)
        render = torch.cat([render[..., :-1], torch.where(alpha > 0, expected, torch.zeros_like(expected))], -1)
    info = RasterInfo({
        "means2d": means2d_out,
        "absgrad": holder,
        "radii": _as(radii, (*batch, v, n, 2)),
        "depths": _as(depths, (*batch, v, n)),
        "conics": _as(conics, (*batch, v, n, 3)),
        "n_isects": int(flat_ids.numel()),
        "tile_size": tile_size,
        "backend": chosen,
    })
    return _as(render, (*batch, v, height, width, render.shape[-1])), _as(alpha, (*batch, v, height, width, 1)), info


__all__ = [
    "AbsGrad",
    "RENDER_MODES",
    "RasterInfo",
    "isect_tiles",
    "project_gaussians",
    "quat_scale_to_covar",
    "rasterize_gaussians",
    "spherical_harmonics",
]
