"""Gaussian splatting in PyTorch: the CPU path of the rasterizer and its readable reference.

Stages (each callable on its own, each differentiable through plain autograd except compositing,
which has its own memory-bounded backward):

1. ``quat_scale_to_covar``: Sigma = R S S^T R^T from wxyz quaternions (normalised here) and scales.
2. ``project_gaussians``: EWA splatting (Zwicker et al. 2002) as in 3D Gaussian Splatting: camera
   transform, perspective Jacobian (with the off-screen clamp of 1.3x the half field of view),
   Sigma_2D = J W Sigma W^T J^T + 0.3 I (the low-pass filter), and with ``antialiased`` the opacity
   compensation sqrt(det(Sigma_2D) / det(Sigma_2D + 0.3 I)) (Mip-Splatting style); conics, per-axis
   radii ceil(3.33 sigma), culling by near/far planes and by the image rectangle.
3. ``spherical_harmonics``: degree 0-3 real SH, rgb = SH(view direction) + 0.5, clamped at 0.
4. ``isect_tiles``: 16x16 tiles, one entry per (view, tile, Gaussian) overlap, sorted by view and
   tile then by depth (one int64 key: tile in the high bits, the float32 depth's bits in the low);
   ``drop_unseen`` then removes the entries whose tile no pixel centre of can reach alpha 1/255
   (``rasterize_gaussians`` applies it: same render, about a fifth fewer entries on real scenes).
5. ``composite``: per tile, front to back: alpha = min(0.99, o exp(-q/2)), skipped below 1/255,
   stopped once transmittance would fall below 1e-4; C = sum w c + T_final * background.

Shapes (flattened batch): V views, N Gaussians, C channels, H x W image, I intersections.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

TILE_SIZE = 16
ALPHA_MAX = 0.99
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4
EPS_2D = 0.3
RADIUS_SIGMAS = 3.33
# The PyTorch compositor takes exp(-sigma) with sigma capped at SIGMA_CAP: CPUs take a slow path, about
# 14x slower, for exponents whose result is subnormal (float32: below -87.3), which is most of a
# Gaussian's far pixels in a tile. o exp(-80) < 1/255 for any opacity below 1e32, so every term that
# counts, and so the render and its gradients, stays the same.
SIGMA_CAP = 80.0
# The PyTorch compositor works on sub-tiles this many pixels wide (``split_tiles``): a Gaussian a few
# pixels across then costs a fraction of a 16x16 tile's pixel evaluations. On the bundled scene's
# final model a training step took 0.6x the time of compositing whole 16x16 tiles, and the garden view
# 0.8x (8 is best on both; 4 adds as much per-step overhead as it saves).
COMPOSITE_TILE = 8

# Real spherical-harmonics constants (degrees 0-3), the standard normalisation used by 3DGS.
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """[..., 4] wxyz (any norm) -> [..., 3, 3] rotation matrices."""
    return unit_quat_to_rotmat(torch.nn.functional.normalize(quats, dim=-1))


def unit_quat_to_rotmat(unit: torch.Tensor) -> torch.Tensor:
    """[..., 4] unit wxyz -> [..., 3, 3] rotation matrices."""
    w, x, y, z = unit.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*unit.shape[:-1], 3, 3)


def quat_scale_to_covar(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[..., N, 4], [..., N, 3] -> world covariances [..., N, 3, 3]."""
    return covar_terms(quats, scales)[-1]


def covar_terms(quats: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(unit quaternions [..., N, 4], their rotations R [..., N, 3, 3], M = R diag(s), Sigma = M M^T)."""
    unit = torch.nn.functional.normalize(quats, dim=-1)
    rot = unit_quat_to_rotmat(unit)
    m = rot * scales[..., None, :]
    return unit, rot, m, m @ m.transpose(-1, -2)


def project_gaussians(
    means: torch.Tensor,
    covars: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 1e10,
    antialiased: bool = False,
):
    """EWA projection of N Gaussians into V cameras.

    Args:
        means: [N, 3]; covars: [N, 3, 3]; viewmats: [V, 4, 4] world-to-camera; Ks: [V, 3, 3].

    Returns:
        means2d [V, N, 2] pixels; conics [V, N, 3] (a, b, c of the inverse 2-D covariance);
        depths [V, N] camera z; radii [V, N, 2] int32 (0 = not visible); compensations [V, N]
        (ones unless ``antialiased``).
    """
    return projection_terms(means, covars, viewmats, Ks, width, height, near, far, antialiased)[0]


def projection_terms(means, covars, viewmats, Ks, width, height, near=0.01, far=1e10, antialiased=False) -> tuple[tuple, SimpleNamespace]:
    """(``project_gaussians``' outputs (means2d, conics, z, radii, compensations), the intermediate
    terms that a hand-derived backward reads (``analytic``)): rot [V, 1, 3, 3], camera coordinates
    x, y, z_safe (1 where the depth is invalid), valid_depth, the clamped tx, ty and whether each was
    clamped, fx, fy [V, 1], the Jacobian, cov_cam [V, N, 3, 3], a, b, c (2-D covariance, low-pass
    added), det_orig (its determinant before the low-pass), det, det_safe and valid [V, N]."""
    rot = viewmats[:, None, :3, :3]  # [V, 1, 3, 3]
    cam = (rot @ means[None, :, :, None]).squeeze(-1) + viewmats[:, None, :3, 3]  # [V, N, 3]
    x, y, z = cam.unbind(-1)
    fx, fy = Ks[:, 0, 0][:, None], Ks[:, 1, 1][:, None]
    cx, cy = Ks[:, 0, 2][:, None], Ks[:, 1, 2][:, None]
    valid_depth = (z > near) & (z < far)
    z_safe = torch.where(valid_depth, z, torch.ones_like(z))
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
    u, w = x / z_safe, y / z_safe
    tx = z_safe * torch.minimum(torch.maximum(u, -lim_x_neg), lim_x_pos)
    ty = z_safe * torch.minimum(torch.maximum(w, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(z_safe)
    jac = torch.stack([fx / z_safe, zero, -fx * tx / z_safe**2, zero, fy / z_safe, -fy * ty / z_safe**2], -1).reshape(*z.shape, 2, 3)
    cov_cam = rot @ covars[None] @ rot.transpose(-1, -2)  # [V, N, 3, 3]
    cov2d = jac @ cov_cam @ jac.transpose(-1, -2)  # [V, N, 2, 2]
    a, b, c = cov2d[..., 0, 0], cov2d[..., 0, 1], cov2d[..., 1, 1]
    det_orig = a * c - b * b
    a, c = a + EPS_2D, c + EPS_2D
    det = a * c - b * b
    compensations = torch.sqrt(torch.clamp(det_orig / det.clamp_min(1e-20), min=0.0)) if antialiased else torch.ones_like(det)
    valid = valid_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], -1)
    with torch.no_grad():
        rx = torch.ceil(RADIUS_SIGMAS * torch.sqrt(a.clamp_min(0)))
        ry = torch.ceil(RADIUS_SIGMAS * torch.sqrt(c.clamp_min(0)))
        mx, my = means2d[..., 0], means2d[..., 1]
        inside = (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        keep = valid & inside & torch.isfinite(mx) & torch.isfinite(my)
        radii = torch.stack([torch.where(keep, rx, 0), torch.where(keep, ry, 0)], -1).to(torch.int32)
        x_free = (u > -lim_x_neg) & (u < lim_x_pos)
        y_free = (w > -lim_y_neg) & (w < lim_y_pos)
    terms = SimpleNamespace(
        rot=rot, x=x, y=y, z_safe=z_safe, valid_depth=valid_depth, tx=tx, ty=ty, x_free=x_free, y_free=y_free,
        fx=fx, fy=fy, jac=jac, cov_cam=cov_cam, a=a, b=b, c=c, det_orig=det_orig, det=det, det_safe=det_safe, valid=valid,
    )
    return (means2d, conics, z, radii, compensations), terms


def sh_basis(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Real SH basis values [..., (degree + 1)^2] of view directions [..., 3] (need not be unit
    length), degree 0-3, in the 3DGS order and normalisation."""
    if degree == 0:
        return torch.full((*dirs.shape[:-1], 1), SH_C0, dtype=dirs.dtype, device=dirs.device)
    x, y, z = torch.nn.functional.normalize(dirs, dim=-1).unbind(-1)
    terms = [torch.full_like(x, SH_C0), -SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        terms += [SH_C2[0] * xy, SH_C2[1] * yz, SH_C2[2] * (2.0 * zz - xx - yy), SH_C2[3] * xz, SH_C2[4] * (xx - yy)]
        if degree >= 3:
            terms += [
                SH_C3[0] * y * (3.0 * xx - yy), SH_C3[1] * xy * z, SH_C3[2] * y * (4.0 * zz - xx - yy),
                SH_C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy), SH_C3[4] * x * (4.0 * zz - xx - yy),
                SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3.0 * yy),
            ]
    return torch.stack(terms, -1)


def spherical_harmonics(degree: int, dirs: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """Evaluate real SH of ``degree`` (0-3) for view directions.

    Args:
        dirs: [..., 3] (need not be unit length); coeffs: [..., K, 3] with K >= (degree + 1)^2.

    Returns:
        [..., 3] colours: SH value + 0.5, clamped at 0 (the 3DGS convention).
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"sh_degree must be in 0..3, got {degree}")
    if coeffs.shape[-2] < (degree + 1) ** 2:
        raise ValueError(f"SH degree {degree} needs {(degree + 1) ** 2} coefficients, got {coeffs.shape[-2]}")
    # one product with the basis instead of a term per coefficient: autograd then gives the
    # coefficients one gradient tensor, where a term per coefficient made each term's backward fill
    # a zero tensor of all the coefficients (16 a call at degree 3)
    out = (sh_basis(degree, dirs)[..., :, None] * coeffs[..., : (degree + 1) ** 2, :]).sum(-2)
    out = out.expand(*torch.broadcast_shapes(dirs.shape[:-1], out.shape[:-1]), out.shape[-1])
    return torch.clamp_min(out + 0.5, 0.0)


def isect_tiles(means2d: torch.Tensor, radii: torch.Tensor, depths: torch.Tensor, width: int, height: int, tile_size: int = TILE_SIZE):
    """Bin visible Gaussians into tiles, sorted by (view, tile) then depth.

    Args:
        means2d: [V, N, 2]; radii: [V, N, 2] int (0 = culled); depths: [V, N].

    Returns:
        tile_keys [I] int64 (view * n_tiles + tile, sorted), flat_ids [I] int64 (index into V*N),
        offsets [V * n_tiles + 1] int64: the intersections of (view, tile) t are
        ``offsets[t]:offsets[t + 1]``, front to back.
    """
    v, n = depths.shape
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    n_tiles = tiles_x * tiles_y
    with torch.no_grad():
        mx, my = means2d[..., 0].reshape(-1), means2d[..., 1].reshape(-1)
        rx, ry = radii[..., 0].reshape(-1).to(mx.dtype), radii[..., 1].reshape(-1).to(mx.dtype)
        visible = (radii[..., 0].reshape(-1) > 0) & (radii[..., 1].reshape(-1) > 0)
        x0 = torch.clamp(torch.floor((mx - rx) / tile_size), 0, tiles_x).long()
        x1 = torch.clamp(torch.ceil((mx + rx) / tile_size), 0, tiles_x).long()
        y0 = torch.clamp(torch.floor((my - ry) / tile_size), 0, tiles_y).long()
        y1 = torch.clamp(torch.ceil((my + ry) / tile_size), 0, tiles_y).long()
        w, h = (x1 - x0).clamp_min(0), (y1 - y0).clamp_min(0)
        counts = torch.where(visible, w * h, 0)
        ids = torch.nonzero(counts > 0).squeeze(-1)
        # Sorted by one key, (view, tile) << 32 | depth's float32 bits, stably: equal depths keep
        # the pairs' order. 64-bit depths do not fit beside the tile (as float32 bits, two
        # Gaussians closer than float32 resolves would tie and swap): their entries are made
        # nearest first instead, and sorted by (view, tile) alone.
        wide = depths.element_size() > 4
        if wide:
            ids = ids.index_select(0, depth_order(depths.reshape(-1).index_select(0, ids)))
        # index_select rather than tensor[index]: on CPU a fraction of the time
        counts = counts.index_select(0, ids)
        flat_ids = torch.repeat_interleave(ids, counts)
        starts = torch.cumsum(counts, 0) - counts
        local = torch.arange(flat_ids.numel(), device=depths.device) - torch.repeat_interleave(starts, counts)
        wi = w.index_select(0, flat_ids)
        tx = x0.index_select(0, flat_ids) + local % wi
        ty = y0.index_select(0, flat_ids) + torch.div(local, wi, rounding_mode="floor")
        view = torch.div(flat_ids, n, rounding_mode="floor")
        tile_keys = view * n_tiles + ty * tiles_x + tx
        key = tile_keys
        if not wide:  # positive float32 depths order like their int32 bit patterns
            key = (tile_keys << 32) | depths.reshape(-1).index_select(0, flat_ids).float().clamp_min(0).view(torch.int32).long()
        order = torch.argsort(key, stable=True)
        tile_keys, flat_ids = tile_keys.index_select(0, order), flat_ids.index_select(0, order)
    return tile_keys, flat_ids, _tile_offsets(tile_keys, v * n_tiles)


_INT_OF_SIZE = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def depth_order(depths: torch.Tensor) -> torch.Tensor:
    """Indices [M] that sort the flattened depths [M] nearest first (equal depths: by index), at the
    depths' own precision; negative depths (culled) count as 0.

    Non-negative floats order like their bit patterns read as integers of the same size, which
    PyTorch's CPU sort takes through a radix sort from some tens of thousands of elements, where a
    float argsort compares: for 138,766 depths on this project's 2-core machine, 10.4 ms as floats
    against 1.5 ms as 64-bit integers."""
    flat = depths.reshape(-1).clamp_min(0)
    return torch.argsort(flat.view(_INT_OF_SIZE[flat.element_size()]), stable=True)


def _entry_tiles(offsets: torch.Tensor) -> torch.Tensor:
    """The (view, tile) index [I] of each entry of the sorted lists that ``offsets`` delimit."""
    return torch.repeat_interleave(torch.arange(offsets.numel() - 1, device=offsets.device), offsets.diff())


def _tile_offsets(tile_keys: torch.Tensor, total_tiles: int) -> torch.Tensor:
    """offsets [total_tiles + 1]: the sorted entries of tile t are offsets[t]:offsets[t + 1]."""
    offsets = torch.zeros(total_tiles + 1, dtype=torch.long, device=tile_keys.device)
    offsets[1:] = torch.cumsum(torch.bincount(tile_keys, minlength=total_tiles), 0)
    return offsets


def _edge_min(d_fixed, lo, hi, a_fixed, b, a_free):
    """min over t in [lo, hi] of 0.5 (a_fixed d^2 + a_free t^2) + b d t (a_free > 0), elementwise."""
    t = torch.minimum(torch.maximum(-b * d_fixed / a_free, lo), hi)
    return 0.5 * (a_fixed * d_fixed * d_fixed + a_free * t * t) + b * d_fixed * t


def rect_min_sigma(mx, my, ca, cb, cc, x_lo, x_hi, y_lo, y_hi):
    """Elementwise min over the rectangle [x_lo, x_hi] x [y_lo, y_hi] of the compositor's exponent
    sigma = 0.5 (a dx^2 + c dy^2) + b dx dy (convex: 0 with the centre inside, else the least edge minimum)."""
    dxl, dxr, dyl, dyh = x_lo - mx, x_hi - mx, y_lo - my, y_hi - my
    inside = (dxl <= 0) & (dxr >= 0) & (dyl <= 0) & (dyh >= 0)
    edges = torch.stack([
        _edge_min(dxl, dyl, dyh, ca, cb, cc), _edge_min(dxr, dyl, dyh, ca, cb, cc),
        _edge_min(dyl, dxl, dxr, cc, cb, ca), _edge_min(dyh, dxl, dxr, cc, cb, ca),
    ]).amin(0)
    return torch.where(inside, torch.zeros_like(edges), edges)


def _can_show(min_sigma: torch.Tensor, opacities: torch.Tensor) -> torch.Tensor:
    """Whether alpha = o exp(-sigma) can reach 1/255 somewhere with sigma >= ``min_sigma`` (1e-3 of
    slack in the exponent for rounding), elementwise."""
    return (opacities * 255.0 >= 1.0) & (min_sigma <= torch.log((opacities * 255.0).clamp_min(1e-30)) + 1e-3)


def drop_unseen(tile_keys, flat_ids, means2d, conics, opacities, views: int, n_tiles: int, tiles_x: int, tile_size: int = TILE_SIZE):
    """Remove the (tile, Gaussian) entries of sorted lists whose tile has no pixel centre where
    alpha = o exp(-sigma) can reach 1/255 (compositing skips those pixels: the render is unchanged;
    about a fifth of a real scene's entries). The Triton binning applies the same test.

    Args:
        tile_keys [I], flat_ids [I] (``isect_tiles``); means2d [V*N, 2], conics [V*N, 3], opacities
        [V*N] (after any compensation); views V, n_tiles and tiles_x per view.

    Returns:
        tile_keys, flat_ids, offsets [V * n_tiles + 1], as ``isect_tiles`` returns them.
    """
    with torch.no_grad():
        local = tile_keys % n_tiles
        x_lo = (local % tiles_x * tile_size).to(means2d.dtype) + 0.5
        y_lo = torch.div(local, tiles_x, rounding_mode="floor").mul(tile_size).to(means2d.dtype) + 0.5
        m2, con = means2d.reshape(-1, 2).index_select(0, flat_ids), conics.reshape(-1, 3).index_select(0, flat_ids)
        opac = opacities.reshape(-1).index_select(0, flat_ids)
        sigma = rect_min_sigma(m2[:, 0], m2[:, 1], con[:, 0], con[:, 1], con[:, 2], x_lo, x_lo + (tile_size - 1), y_lo, y_lo + (tile_size - 1))
        keep = _can_show(sigma, opac)
        tile_keys, flat_ids = tile_keys[keep], flat_ids[keep]
        return tile_keys, flat_ids, _tile_offsets(tile_keys, views * n_tiles)


def _sub_tiles_seen(tx, ty, flat_ids, means2d, conics, opacities, meta: dict, sub_size: int, factor: int) -> torch.Tensor:
    """[I, factor^2] bool: whether each entry (of tile column tx, row ty [I]) can reach alpha 1/255
    at a pixel centre of each of its tile's sub-tiles (row-major within the tile) inside the image."""
    width, height = meta["width"], meta["height"]
    k = torch.arange(factor * factor, device=tx.device)
    sx = tx[:, None] * factor + k % factor  # [I, F] sub-tile columns and rows
    sy = ty[:, None] * factor + torch.div(k, factor, rounding_mode="floor")
    x_lo, y_lo = (sx * sub_size).to(means2d.dtype) + 0.5, (sy * sub_size).to(means2d.dtype) + 0.5
    x_hi, y_hi = (x_lo + (sub_size - 1)).clamp_max_(width - 0.5), (y_lo + (sub_size - 1)).clamp_max_(height - 0.5)
    m2, con, opac = means2d.index_select(0, flat_ids), conics.index_select(0, flat_ids), opacities.index_select(0, flat_ids)
    sigma = rect_min_sigma(m2[:, :1], m2[:, 1:], con[:, :1], con[:, 1:2], con[:, 2:], x_lo, x_hi, y_lo, y_hi)
    return _can_show(sigma, opac[:, None]) & (x_lo < width) & (y_lo < height)


def split_tiles(flat_ids, feature_ids, offsets, means2d, conics, opacities, meta: dict, sub_size: int, rows_per_step: int = 1 << 16):
    """The sorted lists of ``meta``'s tiles refined into lists of sub-tiles ``sub_size`` pixels wide
    (which must divide the tile size), each keeping the entries that can reach alpha 1/255 at one
    of its pixel centres inside the image (the test of ``drop_unseen``): the render is unchanged,
    and a Gaussian a few pixels wide is no longer evaluated at every pixel of its 16x16 tile.

    The visibility test runs ``rows_per_step`` entries at a time (its temporaries stay small). Entries
    of a sub-tile come from one tile, so they keep its front-to-back order; each is placed by
    counting the kept entries of its sub-tile before it, without a sort.

    Args:
        flat_ids [I], feature_ids [I] or None, offsets [V * n_tiles + 1] (``isect_tiles``); means2d
        [V*N, 2], conics [V*N, 3], opacities [V*N]; meta with views, width, height, tile_size,
        tiles_x, tiles_y.

    Returns:
        flat_ids [I'], feature_ids [I'] or None, offsets [V * n_sub + 1] and a copy of ``meta`` with
        the sub-tiles' tile_size, tiles_x and tiles_y.
    """
    factor = meta["tile_size"] // sub_size
    tiles_x, n_tiles = meta["tiles_x"], meta["tiles_x"] * meta["tiles_y"]
    sub_x, sub_y = math.ceil(meta["width"] / sub_size), math.ceil(meta["height"] / sub_size)
    device = flat_ids.device
    with torch.no_grad():
        tiles = _entry_tiles(offsets)
        view = torch.div(tiles, n_tiles, rounding_mode="floor")
        local = tiles - view * n_tiles
        tx, ty = local % tiles_x, torch.div(local, tiles_x, rounding_mode="floor")
        keep = torch.empty(tiles.numel(), factor * factor, dtype=torch.bool, device=device)
        for a in range(0, tiles.numel(), rows_per_step):
            b = a + rows_per_step
            keep[a:b] = _sub_tiles_seen(tx[a:b], ty[a:b], flat_ids[a:b], means2d, conics, opacities, meta, sub_size, factor)
        n_sub = factor * factor
        kept = keep.view(-1).nonzero().squeeze(1)  # the kept (entry, sub-tile) pairs as entry * n_sub + sub
        rows = torch.div(kept, n_sub, rounding_mode="floor")
        cols = kept - rows * n_sub
        corner = view * (sub_x * sub_y) + ty * (factor * sub_x) + tx * factor  # each tile's first sub-tile
        keys = corner.index_select(0, rows) + torch.div(cols, factor, rounding_mode="floor") * sub_x + cols % factor
        sub_offsets = _tile_offsets(keys, meta["views"] * sub_x * sub_y)
        # an entry's slot in its sub-tile's list: the kept entries of that sub-tile before it (all in its tile)
        counts = torch.zeros(tiles.numel() + 1, n_sub, dtype=torch.int32, device=device)
        torch.cumsum(keep, 0, dtype=torch.int32, out=counts[1:])  # counts[r] = kept in the rows before r
        counts = counts.view(-1)
        tile_start = offsets.index_select(0, tiles).index_select(0, rows)
        slots = sub_offsets.index_select(0, keys) + (counts.index_select(0, kept) - counts.index_select(0, tile_start * n_sub + cols))
        source = torch.empty_like(rows)
        source[slots] = rows
    sub_meta = {**meta, "tile_size": sub_size, "tiles_x": sub_x, "tiles_y": sub_y}
    pick = flat_ids.index_select(0, source), None if feature_ids is None else feature_ids.index_select(0, source)
    return *pick, sub_offsets, sub_meta


# ---------------------------------------------------------------------------------------------
# compositing


def _tile_pixels(tiles: torch.Tensor, tiles_x: int, tile_size: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates [T, P] (integers, P = tile_size^2) of tile indices within their view."""
    local = torch.arange(tile_size * tile_size, device=tiles.device)
    px = (tiles % tiles_x)[:, None] * tile_size + local % tile_size
    py = torch.div(tiles, tiles_x, rounding_mode="floor")[:, None] * tile_size + torch.div(local, tile_size, rounding_mode="floor")
    return px, py


class _Scratch:
    """Flat buffers that every depth block of one compositing pass writes its [T, P, L] intermediates
    into (``views``: one view per name, sized to the chunk; a buffer grows when a chunk needs more).

    A block makes a few dozen such intermediates, and a training step of the bundled scene walks
    about a hundred blocks. As fresh tensors, each was an allocation that the C library served
    from pages it had just returned to the system (it trims the top of its heap once more than
    twice the block's size is free there), so every block page-faulted its working set back in:
    on this project's 2-core VM about a fifth of a training step. Reused buffers are faulted in once
    per pass and stay in cache between blocks."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device, self.dtype = device, dtype
        self._flat: dict[str, torch.Tensor] = {}

    def views(self, names: tuple[str, ...], shape: tuple[int, ...]) -> SimpleNamespace:
        """A namespace of contiguous ``shape`` views, one per name, of this pass's buffers."""
        size = math.prod(shape)
        out = {}
        for name in names:
            flat = self._flat.get(name)
            if flat is None or flat.numel() < size:
                flat = self._flat[name] = torch.empty(size, dtype=self.dtype, device=self.device)
            out[name] = flat[:size].view(shape)
        return SimpleNamespace(**out)


_ALPHA_NAMES = ("sigma", "raw", "ok", "alpha")
_STEP_NAMES = _ALPHA_NAMES + ("one_minus", "t_after", "keep")


def gaussian_table(means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor) -> torch.Tensor:
    """[6, V*N] rows mx, my, a / 2, b, c / 2, o of the flattened (view, Gaussian) pairs: what the
    compositor reads per entry, gathered with one ``index_select`` a block, each row contiguous (a
    column of a [V*N, 3] tensor is strided, and broadcasting strided rows is several times slower)."""
    return torch.stack([means2d[:, 0], means2d[:, 1], 0.5 * conics[:, 0], conics[:, 1], 0.5 * conics[:, 2], opacities])


def gather_table(table: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
    """The rows of ``gaussian_table`` at entries ``pair`` [T, L] -> [6, T, L]."""
    return table.index_select(1, pair.reshape(-1)).view(6, *pair.shape)


def _block_alphas(lay: SimpleNamespace, rows, valid, s: SimpleNamespace | None = None):
    """Per pixel x Gaussian [T, P, L]: raw o exp(-sigma) (sigma = a dx^2 / 2 + b dx dy + c dy^2 / 2,
    dx and dy the pixel centre's offsets from the mean), the 0/1 mask of terms that count (valid,
    raw >= 1/255) and alpha = min(raw, 0.99) where they count, else 0.

    sigma is one batched matmul: the polynomial (1, x, y, x^2, x y, y^2) of each pixel centre
    relative to its tile's centre (``lay.moments``) times each entry's coefficients of it, its mean
    taken relative to the same centre so that the terms that cancel stay about the size of a tile.
    Seven [T, P, L] passes (offsets, products) become one matmul and a dozen [T, L] ops. Rounding
    can then take sigma just below 0 near a Gaussian's centre, where it is clamped at 0: a rounding
    error of that one term (``project_gaussians`` makes conics positive definite, so sigma < 0 has
    no other cause; the direct form's ``sigma >= 0`` test never drops a term there).

    Written into the views of ``s`` (``_Scratch.views`` with ``_ALPHA_NAMES``), fresh ones when None.
    Masks are 0/1 floats that multiply: on CPU a float comparison and a multiply each cost a few
    microseconds a block where ``torch.where`` and bool comparisons cost tens to hundreds.

    Args:
        lay: ``_chunk_layout`` (``moments`` [T, 6, P], tile centres ``x0``, ``y0`` [T, 1]);
        rows: [6, T, L] (``gather_table``); valid: [T, L] (bool or 0/1) entries that are real (not padding).
    """
    n_t, n_p, n_l = lay.moments.shape[0], lay.moments.shape[2], rows.shape[2]
    if s is None:
        s = _Scratch(rows.device, rows.dtype).views(_ALPHA_NAMES, (n_t, n_p, n_l))
    coef = torch.empty(6, n_t, n_l, dtype=rows.dtype, device=rows.device)  # the terms of 1, x, y, x^2, x y, y^2
    mx, my = torch.sub(rows[0], lay.x0), torch.sub(rows[1], lay.y0)
    coef[3:].copy_(rows[2:5])  # a / 2, b, c / 2
    torch.mul(mx, rows[2], out=coef[1]).mul_(-2.0).addcmul_(rows[3], my, value=-1.0)  # -(a mx + b my)
    torch.mul(my, rows[4], out=coef[2]).mul_(-2.0).addcmul_(rows[3], mx, value=-1.0)  # -(b mx + c my)
    torch.mul(coef[1], mx, out=coef[0]).addcmul_(coef[2], my).mul_(-0.5)  # a mx^2 / 2 + b mx my + c my^2 / 2
    sigma = torch.bmm(lay.moments.transpose(1, 2), coef.transpose(0, 1), out=s.sigma)
    raw = torch.clamp(sigma, 0.0, SIGMA_CAP, out=s.raw).neg_().exp_().mul_(rows[5][:, None, :])
    ok = torch.ge(raw, ALPHA_MIN, out=s.ok).mul_(valid[:, None, :].to(raw.dtype))
    alpha = torch.clamp_max(raw, ALPHA_MAX, out=s.alpha).mul_(ok)
    return raw, ok, alpha


def _block_transmittance(alpha, transmittance, active, s: SimpleNamespace):
    """(1 - alpha, transmittance after each Gaussian t_after, 0/1 keep) [T, P, L] of one block, from
    the transmittance [T, P] entering it; ``active`` [T, P] (0/1): pixels not stopped yet.

    A Gaussian counts only while the transmittance after it stays >= T_MIN (3DGS's early stop), on
    active pixels. t_after never increases along the block (each factor is at most 1, and a
    rounded product by a factor <= 1 does not grow), so the kept Gaussians are a prefix."""
    one_minus = torch.neg(alpha, out=s.one_minus).add_(1.0)
    t_after = torch.cumprod(one_minus, -1, out=s.t_after).mul_(transmittance[:, :, None])
    keep = torch.ge(t_after, T_MIN, out=s.keep).mul_(active[:, :, None])
    return one_minus, t_after, keep


def _block_exit(t_after, keep, transmittance):
    """(transmittance [T, P] leaving the block, pixels still active [T, P] as 0/1): the transmittance
    after the last kept Gaussian (kept ones are a prefix), unchanged where none was kept; a pixel
    stays active while it kept the whole block."""
    kept = keep.sum(-1)
    last = t_after.gather(-1, kept.long().sub_(1).clamp_min_(0)[:, :, None]).squeeze(-1)
    return torch.where(kept > 0, last, transmittance), keep[:, :, -1].clone()


def _tile_centres(tile_ids: torch.Tensor, meta: dict, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates x, y [T] of the centres of (view, tile) indices [T]."""
    tiles, size = tile_ids % (meta["tiles_x"] * meta["tiles_y"]), meta["tile_size"]
    x = ((tiles % meta["tiles_x"]) * size).to(dtype) + 0.5 * size
    return x, (torch.div(tiles, meta["tiles_x"], rounding_mode="floor") * size).to(dtype) + 0.5 * size


def _chunk_layout(tile_ids: torch.Tensor, offsets: torch.Tensor, lengths: torch.Tensor, meta: dict, dtype) -> SimpleNamespace:
    """Where a chunk of tiles reads and writes, when its tiles walk the first ``lengths``
    [V * n_tiles] entries of their lists: ``starts``, ``ends`` [T] (list positions), ``px``, ``py``
    [T, P] (pixel centres), ``x0``, ``y0`` [T, 1] (each tile's centre), ``moments`` [T, 6, P]
    (1, x, y, x^2, x y, y^2 of each pixel centre relative to its tile's centre: the same for every
    tile, an expanded view), ``block`` (the depth block's length) and ``max_len`` (longest list)."""
    size, half = meta["tile_size"], 0.5 * meta["tile_size"]
    starts = offsets[tile_ids]
    ends = starts + lengths[tile_ids]
    x0, y0 = (c[:, None] for c in _tile_centres(tile_ids, meta, dtype))
    local = torch.arange(size * size, device=tile_ids.device)
    lx, ly = (local % size).to(dtype) + (0.5 - half), torch.div(local, size, rounding_mode="floor").to(dtype) + (0.5 - half)
    moments = torch.stack([torch.ones_like(lx), lx, ly, lx * lx, lx * ly, ly * ly])
    max_len = int((ends - starts).max()) if tile_ids.numel() else 0
    return SimpleNamespace(
        starts=starts, ends=ends, px=x0 + lx, py=y0 + ly, x0=x0, y0=y0,
        moments=moments.expand(tile_ids.numel(), *moments.shape), block=max(1, min(meta["block"], max_len)), max_len=max_len,
    )


def _block_positions(starts: torch.Tensor, ends: torch.Tensor, b0: int, block: int, n_isects: int):
    """Intersection positions [T, L] of one depth block (padding points at a valid entry) and validity."""
    pos = starts[:, None] + b0 + torch.arange(block, device=starts.device)[None, :]
    valid = pos < ends[:, None]
    return torch.where(valid, pos, starts[:, None].clamp_max(max(n_isects - 1, 0))), valid


def _block_entries(starts, ends, b0: int, block: int, flat_ids, feature_ids, table, values, depths, narrow: bool):
    """What the forward and the backward read for one depth block [T, L]: list positions (padding
    points at the tile's first entry), validity, feature rows, the table's rows [6, T, L] and the
    composited values (features, plus depth as the last channel when rendered): [T, C(+1), L] when
    ``narrow`` (``_is_narrow``), else [T, L, C(+1)]."""
    pos, valid = _block_positions(starts, ends, b0, block, flat_ids.numel())
    # take / index_select: on CPU a fraction of the time of indexing with a [T, L] tensor
    pair, fid = flat_ids.take(pos), feature_ids.take(pos)
    block_values = values.index_select(0, fid.view(-1)).view(*fid.shape, values.shape[-1])
    if narrow:
        block_values = block_values.transpose(1, 2)
        block_values = block_values.contiguous() if depths is None else torch.cat([block_values, depths.take(pair)[:, None]], 1)
    elif depths is not None:
        block_values = torch.cat([block_values, depths.take(pair)[..., None]], -1)
    return pos, valid, fid, gather_table(table, pair), block_values


# Composited channels up to this many are laid out as rows ([T, C', L] block values, [T, C', P]
# outputs): CPU BLAS then runs the per-tile products weights x values and G^T x weights 2.5-4x
# faster (C' of 1-8: 14-23 against 35-52 us a [32, 64, 64] block, and 6-15 against 40-53). From
# 32 channels on the usual layout is as fast or faster, and it needs no transposed copies.
NARROW_CHANNELS = 8


def _is_narrow(values: torch.Tensor, depths: torch.Tensor | None) -> bool:
    """Whether the composited channels (features plus depth) are few enough to lay out as rows."""
    return values.shape[-1] + (depths is not None) <= NARROW_CHANNELS


def composite_tiles(tile_ids, offsets, lengths, flat_ids, feature_ids, table, values, depths, meta, scratch: _Scratch | None = None):
    """Composite a set of (view, tile) indices.

    Args:
        tile_ids: [T] global tile indices (view * n_tiles + tile). offsets, flat_ids: from
            ``isect_tiles``. feature_ids: [I] rows of ``values`` for each intersection.
        table: [6, V*N] ``gaussian_table`` of the flattened (view, Gaussian) pairs.
        values: [F, C] rows gathered through ``feature_ids``. depths: [V*N] or None; when given it
            is composited as one more channel after the C feature channels.
        lengths: [V * n_tiles] entries of each list to composite (``offsets.diff()``: all of them).
        scratch: the pass's ``_Scratch`` (a fresh one when None).

    Returns:
        colour [T, P, C(+1)], final transmittance [T, P] and walked [T]: the entries of each tile's
        list up to the block in which its last pixel stopped (the rest change nothing).
    """
    device, dtype = table.device, table.dtype
    lay = _chunk_layout(tile_ids, offsets, lengths, meta, dtype)
    starts, ends, block = lay.starts, lay.ends, lay.block
    n_t, n_p = tile_ids.numel(), meta["tile_size"] ** 2
    s = (scratch or _Scratch(device, dtype)).views(_STEP_NAMES, (n_t, n_p, block))
    transmittance = torch.ones(n_t, n_p, dtype=dtype, device=device)
    active = torch.ones(n_t, n_p, dtype=dtype, device=device)
    n_out, narrow = values.shape[-1] + (depths is not None), _is_narrow(values, depths)
    out = torch.zeros((n_t, n_out, n_p) if narrow else (n_t, n_p, n_out), dtype=dtype, device=device)
    spans, walked = ends - starts, torch.zeros_like(starts)
    for b0 in range(0, lay.max_len, block):
        going = active.amax(1)  # [T] 0/1: tiles with a pixel still going
        if not bool(going.any()):
            break
        torch.maximum(walked, spans.clamp_max(b0 + block).mul_(going.to(walked.dtype)), out=walked)
        _, valid, _, rows, block_values = _block_entries(starts, ends, b0, block, flat_ids, feature_ids, table, values, depths, narrow)
        alpha = _block_alphas(lay, rows, valid, s)[-1]
        one_minus, t_after, keep = _block_transmittance(alpha, transmittance, active, s)
        weights = torch.div(t_after, one_minus, out=one_minus).mul_(alpha).mul_(keep)  # alpha x transmittance before
        if narrow:
            out.baddbmm_(block_values, weights.transpose(1, 2))
        else:
            out.baddbmm_(weights, block_values)
        transmittance, active = _block_exit(t_after, keep, transmittance)
    return (out.transpose(1, 2) if narrow else out), transmittance, walked


def _tile_chunks(lengths: torch.Tensor, tile_ids: torch.Tensor, budget: int, block: int, pixels: int) -> list[torch.Tensor]:
    """Split tile ids into chunks whose per-step tensors hold at most ``budget`` elements (tiles x
    min(block, longest list) x pixels), at least one tile each.

    Tiles are taken in order of their number of Gaussians, so a chunk pads its lists to similar
    lengths: little work is spent on padding. A chunk of short lists takes more tiles (its steps are
    shorter), one of long lists fewer: every step's ops get about the same amount of work, so their
    fixed cost per call is amortised alike (with a budget of padded list entries instead, a tile
    with 2,000 Gaussians went alone, 64 x 256 elements a step, and the bundled scene's training
    step was about a quarter slower).

    ``lengths`` [V * n_tiles]: how many entries of each tile's list are walked."""
    lengths_t = lengths[tile_ids]
    order = torch.argsort(lengths_t, stable=True)
    chunks, current = [], []
    for tid, length in zip(tile_ids[order].tolist(), lengths_t[order].tolist()):
        if current and (len(current) + 1) * min(block, length) * pixels > budget:
            chunks.append(current)
            current = []
        current.append(tid)
    if current:
        chunks.append(current)
    return [torch.tensor(c, dtype=torch.long, device=lengths.device) for c in chunks]


def _scatter_tiles(image: torch.Tensor, tile_ids: torch.Tensor, tile_values: torch.Tensor, meta) -> None:
    """Write [T, P, C] tile values into image [V, H, W, C] (pixels past the border are dropped)."""
    n_tiles = meta["tiles_x"] * meta["tiles_y"]
    view = torch.div(tile_ids, n_tiles, rounding_mode="floor")
    px, py = _tile_pixels(tile_ids % n_tiles, meta["tiles_x"], meta["tile_size"], torch.long)
    inside = (px < meta["width"]) & (py < meta["height"])
    flat = (view[:, None] * meta["height"] + py) * meta["width"] + px
    image.view(-1, image.shape[-1])[flat[inside]] = tile_values[inside]


def _gather_tiles(image: torch.Tensor, tile_ids: torch.Tensor, meta) -> torch.Tensor:
    """Read image [V, H, W, C] at the pixels of tiles -> [T, P, C] (zeros past the border)."""
    n_tiles = meta["tiles_x"] * meta["tiles_y"]
    view = torch.div(tile_ids, n_tiles, rounding_mode="floor")
    px, py = _tile_pixels(tile_ids % n_tiles, meta["tiles_x"], meta["tile_size"], torch.long)
    inside = (px < meta["width"]) & (py < meta["height"])
    flat = (view[:, None] * meta["height"] + py.clamp_max(meta["height"] - 1)) * meta["width"] + px.clamp_max(meta["width"] - 1)
    out = image.reshape(-1, image.shape[-1])[flat]
    return torch.where(inside[..., None], out, 0.0)


def add_background(render: torch.Tensor, final_t: torch.Tensor, background: torch.Tensor | None) -> torch.Tensor:
    """render [V, H, W, C'] + final_t [V, H, W, 1] x background [V, C] on the first C channels."""
    if background is None:
        return render
    n_bg = background.shape[-1]
    return torch.cat([render[..., :n_bg] + final_t * background[:, None, None, :], render[..., n_bg:]], -1)


def background_grads(grad_render: torch.Tensor, grad_alpha: torch.Tensor, final_t: torch.Tensor, background: torch.Tensor | None):
    """(dL/d background [V, C] or None, dL/d final_t [V, H, W, 1]) given the output gradients;
    the render gets final_t x background, and alpha = 1 - final_t."""
    if background is None:
        return None, -grad_alpha
    n_bg = background.shape[-1]
    grad_bg = (grad_render[..., :n_bg] * final_t).sum((1, 2))
    grad_t = (grad_render[..., :n_bg] * background[:, None, None, :].to(grad_render.dtype)).sum(-1, keepdim=True) - grad_alpha
    return grad_bg, grad_t


def _chunks(lengths: torch.Tensor, meta: dict) -> list[torch.Tensor]:
    """The chunks (``_tile_chunks``) of the tiles with entries to walk (``lengths`` [V * n_tiles] > 0)."""
    return _tile_chunks(lengths, torch.nonzero(lengths).squeeze(-1), meta["chunk_elems"], meta["block"], meta["tile_size"] ** 2)


class _CompositeFn(torch.autograd.Function):
    """Tile compositing whose backward recomputes each chunk of tiles and differentiates it
    analytically (``_backward_tiles``), so neither pass holds per-pixel state for more than one chunk."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, values, depths, background, flat_ids, feature_ids, offsets, meta):
        v, h, w = meta["views"], meta["height"], meta["width"]
        c = values.shape[-1] + (depths is not None)
        render = torch.zeros(v, h, w, c, dtype=values.dtype, device=values.device)
        final_t = torch.ones(v, h, w, 1, dtype=values.dtype, device=values.device)
        scratch = _Scratch(values.device, values.dtype)
        table = gaussian_table(means2d, conics, opacities)
        lengths = offsets.diff()
        walked = torch.zeros_like(lengths)  # per tile: the entries before all its pixels stopped
        with torch.no_grad():
            for chunk in _chunks(lengths, meta):
                out, trans, walked[chunk] = composite_tiles(chunk, offsets, lengths, flat_ids, feature_ids, table, values, depths, meta, scratch)
                _scatter_tiles(render, chunk, out, meta)
                _scatter_tiles(final_t, chunk, trans[..., None], meta)
        ctx.meta = meta
        ctx.has_depths = depths is not None
        ctx.save_for_backward(table, values, depths, background, flat_ids, feature_ids, offsets, walked, final_t, render)
        return add_background(render, final_t, background), 1.0 - final_t

    @staticmethod
    def backward(ctx, grad_render, grad_alpha):
        table, values, depths, background, flat_ids, feature_ids, offsets, walked, final_t, render = ctx.saved_tensors
        meta = ctx.meta
        # per list entry, one index_add_ a block: dL/d sigma's pixel moments about the entry's tile
        # centre (6 rows), then the depth gradient and |d mx|, |d my| when rendered / asked for
        n_extra = ctx.has_depths + 2 * meta["absgrad"]
        entry_grads = torch.zeros(6 + n_extra, flat_ids.numel(), dtype=table.dtype, device=table.device)
        grad_values = torch.zeros_like(values)
        grad_bg, grad_final_t = background_grads(grad_render, grad_alpha, final_t, background)
        scratch = _Scratch(values.device, values.dtype)
        # the entries after a tile's pixels all stopped have zero gradients: the backward walks only
        # those before, and groups its chunks by that length (fewer blocks where pixels stop early)
        for chunk in _chunks(walked, meta):
            _backward_tiles(
                chunk, offsets, walked, flat_ids, feature_ids, table, values, depths, meta,
                _gather_tiles(grad_render, chunk, meta), _gather_tiles(grad_final_t * final_t, chunk, meta)[..., 0],
                _gather_tiles(render, chunk, meta), entry_grads, grad_values, scratch,
            )
        pair_grads = _pair_grads(entry_grads, flat_ids, offsets, table, meta)
        if meta["absgrad"]:
            holder = meta["absgrad_holder"]
            holder.value = pair_grads[-2:].t().reshape(holder.shape)
        grad_depths = pair_grads[6] if ctx.has_depths else None
        return pair_grads[:2].t(), pair_grads[2:5].t(), pair_grads[5], grad_values, grad_depths, grad_bg, None, None, None, None


def _pair_grads(entry_grads: torch.Tensor, flat_ids: torch.Tensor, offsets: torch.Tensor, table: torch.Tensor, meta: dict) -> torch.Tensor:
    """[K, V*N] gradients of the (view, Gaussian) pairs, rows mx, my, a, b, c, opacity (the table's
    order) and then ``entry_grads``' extra rows, from the per-entry sums [K, I] of the backward
    (``_conic_mean_opacity_grads`` turns each entry's moments into its six gradients, once for all
    entries instead of once a block)."""
    x0, y0 = _tile_centres(_entry_tiles(offsets), meta, table.dtype)
    columns = _conic_mean_opacity_grads(entry_grads[:6], gather_table(table, flat_ids), x0, y0)
    rows = torch.stack([*columns, *entry_grads[6:]])
    return torch.zeros(rows.shape[0], table.shape[1], dtype=table.dtype, device=table.device).index_add_(1, flat_ids, rows)


def _backward_tiles(tile_ids, offsets, lengths, flat_ids, feature_ids, table, values, depths, meta, g_out, g_t, out, entry_grads, grad_values, scratch) -> None:
    """Analytic gradients of one chunk of tiles, accumulated (in place) into ``entry_grads`` [K, I]
    (per list entry: the moments of dL/d sigma, ``_conic_mean_opacity_grads``, then depth and
    |d mx|, |d my| when rendered / asked for) and ``grad_values`` [F, C].

    Per pixel, with G = dL/d(render) and T_i the transmittance before Gaussian i:
    dL/d alpha_i = T_i (G . f_i) - (G . S_i + g_T T_final) / (1 - alpha_i), where S_i is the colour
    still to come after i (G . S_i = G . out - sum_{j <= i} w_j (G . f_j)). The forward is
    recomputed front to back block by block, exactly as ``composite_tiles`` does, in the views of
    the pass's ``_Scratch``.

    Args:
        g_out [T, P, C'] = dL/d(render without background); g_t [T, P] = dL/d(T_final) * T_final;
        out [T, P, C'] = the forward's render without background.
    """
    device, dtype = table.device, table.dtype
    lay = _chunk_layout(tile_ids, offsets, lengths, meta, dtype)
    starts, ends, block = lay.starts, lay.ends, lay.block
    n_t, n_p = tile_ids.numel(), meta["tile_size"] ** 2
    s = scratch.views(_STEP_NAMES + ("t_before", "dots", "wd", "later"), (n_t, n_p, block))
    # G . out + g_T T_final - (the weighted G . f of the blocks before): the per-pixel constant of
    # dL/d alpha's second term; each block takes its own weighted sums off it
    remaining = (g_out * out).sum(-1) + g_t
    transmittance = torch.ones(n_t, n_p, dtype=dtype, device=device)
    active = torch.ones(n_t, n_p, dtype=dtype, device=device)
    n_feat, narrow = values.shape[-1], _is_narrow(values, depths)
    g_rows = g_out.transpose(1, 2).contiguous() if narrow else None  # [T, C', P]
    for b0 in range(0, lay.max_len, block):
        if not bool(active.any()):
            break
        pos, valid, fid, rows, block_values = _block_entries(starts, ends, b0, block, flat_ids, feature_ids, table, values, depths, narrow)
        raw, ok, alpha = _block_alphas(lay, rows, valid, s)
        one_minus, t_after, keep = _block_transmittance(alpha, transmittance, active, s)
        t_before = torch.div(t_after, one_minus, out=s.t_before)
        weights = torch.mul(alpha, t_before, out=s.alpha).mul_(keep)  # alpha is not needed after this
        dots = torch.bmm(g_out, block_values if narrow else block_values.transpose(1, 2), out=s.dots)  # [T, P, L] = G . f
        wd = torch.mul(weights, dots, out=s.wd)
        later = torch.cumsum(wd, -1, out=s.later)
        block_sum = later[:, :, -1].clone()
        # (G . S_i + g_T T_final) / (1 - alpha_i), then dL/d alpha_i = T_i (G . f_i) minus that
        later.neg_().add_(remaining[:, :, None]).div_(one_minus)
        d_raw = t_before.mul_(dots).sub_(later)  # dL/d alpha, in t_before's buffer
        d_raw.mul_(torch.lt(raw, ALPHA_MAX, out=s.one_minus).mul_(ok).mul_(keep))  # alpha = raw where it counts and is not clamped
        d_sigma = d_raw.mul_(raw).neg_()  # dL/d sigma per pixel
        columns = [torch.bmm(lay.moments, d_sigma).transpose(0, 1)]  # [6, T, L]
        # dL/d(block values) [T, L, C'] (narrow: a transposed view of [T, C', L])
        d_block_values = torch.bmm(g_rows, weights).transpose(1, 2) if narrow else torch.bmm(weights.transpose(1, 2), g_out)
        if depths is not None:
            columns.append(d_block_values[None, ..., n_feat])
        if meta["absgrad"]:  # per-pixel terms: their absolute values do not factor (sigma, the masks: free now)
            ca, cb, cc = 2.0 * rows[2], rows[3], 2.0 * rows[4]  # the conic [T, L]
            sdx = torch.sub(lay.px[:, :, None], rows[0][:, None, :], out=s.sigma).mul_(d_sigma)  # d_sigma dx
            sdy = torch.sub(lay.py[:, :, None], rows[1][:, None, :], out=s.one_minus).mul_(d_sigma)
            columns.append(torch.mul(sdx, ca[:, None], out=s.ok).addcmul_(sdy, cb[:, None]).abs_().sum(1)[None])
            columns.append(torch.mul(sdy, cc[:, None], out=s.ok).addcmul_(sdx, cb[:, None]).abs_().sum(1)[None])
        # padding entries (valid = 0) point at their tile's first entry and have alpha = 0 and
        # d_raw = 0, so all they add is zeros: no mask is needed
        entry_grads.index_add_(1, pos.view(-1), torch.cat(columns).view(entry_grads.shape[0], -1))
        if n_feat:
            grad_values.index_add_(0, fid.reshape(-1), d_block_values[..., :n_feat].reshape(-1, n_feat))
        remaining = remaining - block_sum
        transmittance, active = _block_exit(t_after, keep, transmittance)


def _conic_mean_opacity_grads(moments: torch.Tensor, rows: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor) -> list[torch.Tensor]:
    """dL/d (mx, my, a, b, c, opacity), each [...], of list entries from the pixel moments
    [6, ...] of dL/d sigma: its sums over the pixels weighted by 1, x, y, x^2, x y and y^2 (pixel
    centres relative to the entry's tile centre x0, y0 [...]; ``_chunk_layout``'s ``moments``) and
    the entries' rows [6, ...] of ``gaussian_table``.

    sigma = a dx^2 / 2 + b dx dy + c dy^2 / 2 (dx = x - mx, dy = y - my), and a Gaussian's conic is
    the same at all its pixels, so each pixel sum factors: with d = dL/d sigma,
    sum d dx = S_x - mx S_1 and sum d dx^2 = S_xx - 2 mx S_x + mx^2 S_1 (means relative to the tile's
    centre, so that the terms that cancel stay near the size of the tile), the mean's gradient is
    -(a sum d dx + b sum d dy, b sum d dx + c sum d dy) and the conic's the weighted sums of
    dx^2 / 2, dx dy and dy^2 / 2. o exp(-sigma) = raw gives dL/d o = -S_1 / o (zero below an
    opacity of 1/255, where no term counts)."""
    s1, s_x, s_y, s_xx, s_xy, s_yy = moments.unbind(0)
    mx, my = rows[0] - x0, rows[1] - y0
    sx, sy = torch.addcmul(s_x, mx, s1, value=-1.0), torch.addcmul(s_y, my, s1, value=-1.0)  # sum d dx, sum d dy
    ca, cb, cc = 2.0 * rows[2], rows[3], 2.0 * rows[4]
    return [
        -(ca * sx + cb * sy), -(cc * sy + cb * sx),
        0.5 * torch.addcmul(s_xx, mx, s_x + sx, value=-1.0),
        s_xy - mx * s_y - my * sx,
        0.5 * torch.addcmul(s_yy, my, s_y + sy, value=-1.0),
        -s1 / rows[5].clamp_min(ALPHA_MIN),
    ]


def composite(means2d, conics, opacities, values, depths, background, flat_ids, feature_ids, offsets, meta):
    """Differentiable compositing of per-(view, Gaussian) inputs (see ``_CompositeFn``): means2d
    [..., 2], conics [..., 3], opacities [...], depths [...] or None, whose leading dims flatten to
    the V*N pairs (as ``flat_ids`` count them), and feature rows values [..., C] (flattened rows as
    ``feature_ids`` count them); background [V, C] or None.

    Tiles wider than ``COMPOSITE_TILE`` are composited as sub-tiles of that size (``split_tiles``).

    Returns render [V, H, W, C] (background added to its first ``background.shape[-1]`` channels)
    and alpha [V, H, W, 1]."""
    means2d, conics, opacities = means2d.reshape(-1, 2), conics.reshape(-1, 3), opacities.reshape(-1)
    if meta["tile_size"] > COMPOSITE_TILE and meta["tile_size"] % COMPOSITE_TILE == 0:
        flat_ids, feature_ids, offsets, meta = split_tiles(flat_ids, feature_ids, offsets, means2d, conics, opacities, meta, COMPOSITE_TILE)
    return _CompositeFn.apply(
        means2d, conics, opacities, values.flatten(0, -2),  # flatten: C may be 0
        None if depths is None else depths.reshape(-1), background, flat_ids, feature_ids, offsets, meta,
    )


def composite_dense(means2d, conics, opacities, values, depths, background, radii, width: int, height: int, render_depth: bool = False):
    """Brute-force oracle: every visible Gaussian against every pixel, sorted by depth, plain autograd.

    Args (per view, unflattened): means2d [V, N, 2], conics [V, N, 3], opacities [V, N],
        values [V, N, C], depths [V, N] (the sort key; with ``render_depth`` also composited as an
        extra last channel), background [V, C] or None, radii [V, N, 2].

    Returns:
        render [V, H, W, C(+1)], alpha [V, H, W, 1]. Memory is O(H W N): tiny scenes only.
    """
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px = xs.reshape(-1).to(means2d) + 0.5
    py = ys.reshape(-1).to(means2d) + 0.5
    renders, alphas = [], []
    for v in range(means2d.shape[0]):
        visible = (radii[v, :, 0] > 0) & (radii[v, :, 1] > 0)
        idx = torch.nonzero(visible).squeeze(-1)
        idx = idx[torch.argsort(depths[v, idx].detach(), stable=True)]
        vals = values[v, idx]
        if render_depth:
            vals = torch.cat([vals, depths[v, idx][:, None]], -1)
        dx = px[:, None] - means2d[v, idx, 0][None]
        dy = py[:, None] - means2d[v, idx, 1][None]
        con = conics[v, idx]
        sigma = 0.5 * (con[:, 0] * dx * dx + con[:, 2] * dy * dy) + con[:, 1] * dx * dy
        alpha = torch.clamp_max(opacities[v, idx][None] * torch.exp(-sigma), ALPHA_MAX)
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, 0.0)
        t_after = torch.cumprod(1.0 - alpha, dim=-1)
        keep = t_after >= T_MIN
        weights = torch.where(keep, alpha * t_after / (1.0 - alpha), 0.0)
        t_final = torch.where(keep, t_after, torch.ones_like(t_after)).amin(-1) if idx.numel() else torch.ones_like(px)
        out = weights @ vals if idx.numel() else torch.zeros(px.shape[0], vals.shape[-1], dtype=means2d.dtype)
        if background is not None:
            n_bg = background.shape[-1]
            out = torch.cat([out[:, :n_bg] + t_final[:, None] * background[v][None], out[:, n_bg:]], -1)
        renders.append(out.reshape(height, width, -1))
        alphas.append((1.0 - t_final).reshape(height, width, 1))
    return torch.stack(renders), torch.stack(alphas)
