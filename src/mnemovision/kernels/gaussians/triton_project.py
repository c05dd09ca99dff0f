"""Triton projection and tile binning for the Gaussian rasterizer (forward and backward).

One program projects a block of Gaussians into one view; the math is ``ref.project_gaussians``
(EWA with the 1.3x field-of-view clamp, the 0.3 px low-pass, optional opacity compensation, 3.33
sigma radii, near/far and image culling) written per Gaussian instead of as batched 3x3 matmuls. The covariance goes through T = W R S and
U = J T, so Sigma_2D = U U^T and the backward walks the same chain: dU -> (dJ, dT) -> dM = W^T dT ->
(dR, ds) -> d(normalised quaternion) -> d(quaternion). Each program of the backward loops over the
views of its batch element, so the per-Gaussian gradients need no atomics. Gradients reach means,
quaternions and scales (and opacities through the compensation, outside); camera gradients are not
computed here: ``rasterize_gaussians`` takes the PyTorch projection when viewmats or Ks require grad.

Binning (two passes of one kernel, as gsplat does): count, per program of BIN_BLOCK Gaussians, the
tiles of their 3.33 sigma rectangles that some pixel can reach with alpha >= 1/255, scan the
programs' counts (``_bases_kernel``), then write (view-tile id, flat pair id) for those tiles, each
view's Gaussians nearest first; a stable ``torch.sort`` by
tile id orders them, and one more kernel gathers the sorted pair ids and finds each tile's range
(``_tile_ranges_kernel``); where the compositor wants its tiles longest list first, a last one ranks
them (``_tile_order_kernel``). One host sync (the total count).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from mnemovision.kernels._launch import Launcher, as_dtype, cdiv, contiguous_as
from mnemovision.kernels.gaussians.ref import EPS_2D, RADIUS_SIGMAS, TILE_SIZE

BLOCK = 128  # Gaussians per program of the projection
# (view, Gaussian) pairs per program of the binning, one warp each, and (pair, tile) items per step
# of its walk (one per lane; see ``_bin_kernel``)
BIN_BLOCK = 32
RANGE_BLOCK = 256  # list entries and tiles per program of ``_tile_ranges_kernel``
EPS_2D_C = tl.constexpr(EPS_2D)
RADIUS_SIGMAS_C = tl.constexpr(RADIUS_SIGMAS)


@triton.jit
def _load_camera(Viewmats, Ks, view):
    """The 3x3 rotation, translation and intrinsics of a view (scalars)."""
    vm = Viewmats + view * 16
    w00, w01, w02, t0 = tl.load(vm + 0), tl.load(vm + 1), tl.load(vm + 2), tl.load(vm + 3)
    w10, w11, w12, t1 = tl.load(vm + 4), tl.load(vm + 5), tl.load(vm + 6), tl.load(vm + 7)
    w20, w21, w22, t2 = tl.load(vm + 8), tl.load(vm + 9), tl.load(vm + 10), tl.load(vm + 11)
    k = Ks + view * 9
    fx, cx, fy, cy = tl.load(k + 0), tl.load(k + 2), tl.load(k + 4), tl.load(k + 5)
    return w00, w01, w02, w10, w11, w12, w20, w21, w22, t0, t1, t2, fx, fy, cx, cy


@triton.jit
def _means_scales(Means, Scales, offs, mask):
    """World means and scales (x, y, z, s0, s1, s2) of a block of Gaussians."""
    mx3 = tl.load(Means + offs * 3 + 0, mask=mask, other=0.0)
    my3 = tl.load(Means + offs * 3 + 1, mask=mask, other=0.0)
    mz3 = tl.load(Means + offs * 3 + 2, mask=mask, other=0.0)
    s0 = tl.load(Scales + offs * 3 + 0, mask=mask, other=0.0)
    s1 = tl.load(Scales + offs * 3 + 1, mask=mask, other=0.0)
    s2 = tl.load(Scales + offs * 3 + 2, mask=mask, other=0.0)
    return mx3, my3, mz3, s0, s1, s2


@triton.jit
def _rotation(Quats, offs, mask):
    """Normalised quaternion (w, x, y, z), its norm, and the rotation matrix entries."""
    qw = tl.load(Quats + offs * 4 + 0, mask=mask, other=1.0)
    qx = tl.load(Quats + offs * 4 + 1, mask=mask, other=0.0)
    qy = tl.load(Quats + offs * 4 + 2, mask=mask, other=0.0)
    qz = tl.load(Quats + offs * 4 + 3, mask=mask, other=0.0)
    norm = tl.maximum(tl.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
    w, x, y, z = qw / norm, qx / norm, qy / norm, qz / norm
    r00, r01, r02 = 1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)
    r10, r11, r12 = 2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)
    r20, r21, r22 = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)
    return w, x, y, z, norm, r00, r01, r02, r10, r11, r12, r20, r21, r22


@triton.jit
def _project_one(
    mx3, my3, mz3, s0, s1, s2, r00, r01, r02, r10, r11, r12, r20, r21, r22,
    w00, w01, w02, w10, w11, w12, w20, w21, w22, t0, t1, t2, fx, fy, cx, cy, W, H, near, far,
):
    """Forward of one (Gaussian, view): camera point, clamps, T = W R S, U = J T, Sigma_2D terms."""
    x = w00 * mx3 + w01 * my3 + w02 * mz3 + t0
    y = w10 * mx3 + w11 * my3 + w12 * mz3 + t1
    z = w20 * mx3 + w21 * my3 + w22 * mz3 + t2
    valid_depth = (z > near) & (z < far)
    zs = tl.where(valid_depth, z, 1.0)
    tan_x = 0.5 * W / fx
    tan_y = 0.5 * H / fy
    lim_xp = (W - cx) / fx + 0.3 * tan_x
    lim_xn = cx / fx + 0.3 * tan_x
    lim_yp = (H - cy) / fy + 0.3 * tan_y
    lim_yn = cy / fy + 0.3 * tan_y
    rx_ = x / zs
    ry_ = y / zs
    ux = tl.minimum(tl.maximum(rx_, -lim_xn), lim_xp)
    uy = tl.minimum(tl.maximum(ry_, -lim_yn), lim_yp)
    free_x = (rx_ >= -lim_xn) & (rx_ <= lim_xp)
    free_y = (ry_ >= -lim_yn) & (ry_ <= lim_yp)
    tx = zs * ux
    ty = zs * uy
    j00 = fx / zs
    j02 = -fx * tx / (zs * zs)
    j11 = fy / zs
    j12 = -fy * ty / (zs * zs)
    # M = R S (columns scaled); T = W M
    m00, m01, m02 = r00 * s0, r01 * s1, r02 * s2
    m10, m11, m12 = r10 * s0, r11 * s1, r12 * s2
    m20, m21, m22 = r20 * s0, r21 * s1, r22 * s2
    a00 = w00 * m00 + w01 * m10 + w02 * m20
    a01 = w00 * m01 + w01 * m11 + w02 * m21
    a02 = w00 * m02 + w01 * m12 + w02 * m22
    a10 = w10 * m00 + w11 * m10 + w12 * m20
    a11 = w10 * m01 + w11 * m11 + w12 * m21
    a12 = w10 * m02 + w11 * m12 + w12 * m22
    a20 = w20 * m00 + w21 * m10 + w22 * m20
    a21 = w20 * m01 + w21 * m11 + w22 * m21
    a22 = w20 * m02 + w21 * m12 + w22 * m22
    u00, u01, u02 = j00 * a00 + j02 * a20, j00 * a01 + j02 * a21, j00 * a02 + j02 * a22
    u10, u11, u12 = j11 * a10 + j12 * a20, j11 * a11 + j12 * a21, j11 * a12 + j12 * a22
    a0 = u00 * u00 + u01 * u01 + u02 * u02
    b = u00 * u10 + u01 * u11 + u02 * u12
    c0 = u10 * u10 + u11 * u11 + u12 * u12
    return (x, y, z, valid_depth, zs, ux, uy, free_x, free_y, tx, ty, j00, j02, j11, j12,
            a00, a01, a02, a10, a11, a12, a20, a21, a22, u00, u01, u02, u10, u11, u12, a0, b, c0)


@triton.jit
def _project_fwd_kernel(
    Means, Quats, Scales, Viewmats, Ks,
    Means2d, Conics, Depths, Radii, Comps,
    N, V, W, H, near, far,
    ANTIALIASED: tl.constexpr, BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    view = tl.program_id(1)  # flattened (batch, view)
    batch = view // V
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    g = batch * N + offs
    mx3, my3, mz3, s0, s1, s2 = _means_scales(Means, Scales, g, mask)
    _, _, _, _, _, r00, r01, r02, r10, r11, r12, r20, r21, r22 = _rotation(Quats, g, mask)
    w00, w01, w02, w10, w11, w12, w20, w21, w22, t0, t1, t2, fx, fy, cx, cy = _load_camera(Viewmats, Ks, view)
    (x, y, z, valid_depth, zs, _, _, _, _, _, _, _, _, _, _,
     _, _, _, _, _, _, _, _, _, _, _, _, _, _, _, a0, b, c0) = _project_one(
        mx3, my3, mz3, s0, s1, s2, r00, r01, r02, r10, r11, r12, r20, r21, r22,
        w00, w01, w02, w10, w11, w12, w20, w21, w22, t0, t1, t2, fx, fy, cx, cy, W, H, near, far)
    a = a0 + EPS_2D_C
    c = c0 + EPS_2D_C
    det = a * c - b * b
    valid = valid_depth & (det > 0.0)
    det_safe = tl.where(valid, det, 1.0)
    if ANTIALIASED:
        ratio = (a0 * c0 - b * b) / tl.maximum(det, 1e-20)
        comp = tl.sqrt(tl.maximum(ratio, 0.0))
    else:
        comp = tl.full([BLOCK], 1.0, dtype=tl.float32)
    px = fx * x / zs + cx
    py = fy * y / zs + cy
    rx = tl.ceil(tl.sqrt(tl.maximum(a, 0.0)) * RADIUS_SIGMAS_C)
    ry = tl.ceil(tl.sqrt(tl.maximum(c, 0.0)) * RADIUS_SIGMAS_C)
    inside = (px + rx > 0.0) & (px - rx < W) & (py + ry > 0.0) & (py - ry < H)
    finite = (tl.abs(px) < float("inf")) & (tl.abs(py) < float("inf"))
    keep = valid & inside & finite & mask
    rx = tl.where(keep, rx, 0.0)
    ry = tl.where(keep, ry, 0.0)
    o = view * N + offs
    tl.store(Means2d + o * 2 + 0, px, mask=mask)
    tl.store(Means2d + o * 2 + 1, py, mask=mask)
    tl.store(Conics + o * 3 + 0, c / det_safe, mask=mask)
    tl.store(Conics + o * 3 + 1, -b / det_safe, mask=mask)
    tl.store(Conics + o * 3 + 2, a / det_safe, mask=mask)
    tl.store(Depths + o, z, mask=mask)
    tl.store(Radii + o * 2 + 0, rx.to(tl.int32), mask=mask)
    tl.store(Radii + o * 2 + 1, ry.to(tl.int32), mask=mask)
    tl.store(Comps + o, comp, mask=mask)


@triton.jit
def _project_bwd_kernel(
    Means, Quats, Scales, Viewmats, Ks,
    GMeans2d, GConics, GDepths, GComps,
    DMeans, DQuats, DScales,
    N, V, W, H, near, far,
    ANTIALIASED: tl.constexpr, HAS_GD: tl.constexpr, BLOCK: tl.constexpr,
):
    """Gradients of means, quats and scales (summed over the views) from those of the projection's
    outputs; without HAS_GD the depths have none (GDepths is not read)."""
    pid = tl.program_id(0)
    batch = tl.program_id(1)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    g = batch * N + offs
    mx3, my3, mz3, s0, s1, s2 = _means_scales(Means, Scales, g, mask)
    qw, qx, qy, qz, norm, r00, r01, r02, r10, r11, r12, r20, r21, r22 = _rotation(Quats, g, mask)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    # accumulated over views: d mean (world), dM = d(R S)
    dmx, dmy, dmz = zero, zero, zero
    dm00, dm01, dm02, dm10, dm11, dm12, dm20, dm21, dm22 = zero, zero, zero, zero, zero, zero, zero, zero, zero
    for vi in range(0, V):
        view = batch * V + vi
        w00, w01, w02, w10, w11, w12, w20, w21, w22, t0, t1, t2, fx, fy, cx, cy = _load_camera(Viewmats, Ks, view)
        (x, y, z, valid_depth, zs, ux, uy, free_x, free_y, tx, ty, j00, j02, j11, j12,
         a00, a01, a02, a10, a11, a12, a20, a21, a22, u00, u01, u02, u10, u11, u12, a0, b, c0) = _project_one(
            mx3, my3, mz3, s0, s1, s2, r00, r01, r02, r10, r11, r12, r20, r21, r22,
            w00, w01, w02, w10, w11, w12, w20, w21, w22, t0, t1, t2, fx, fy, cx, cy, W, H, near, far)
        o = view * N + offs
        gmx = tl.load(GMeans2d + o * 2 + 0, mask=mask, other=0.0)
        gmy = tl.load(GMeans2d + o * 2 + 1, mask=mask, other=0.0)
        g_ca = tl.load(GConics + o * 3 + 0, mask=mask, other=0.0)
        g_cb = tl.load(GConics + o * 3 + 1, mask=mask, other=0.0)
        g_cc = tl.load(GConics + o * 3 + 2, mask=mask, other=0.0)
        g_z = zero
        if HAS_GD:
            g_z = tl.load(GDepths + o, mask=mask, other=0.0)
        a = a0 + EPS_2D_C
        c = c0 + EPS_2D_C
        det = a * c - b * b
        valid = valid_depth & (det > 0.0)
        # conic = (c, -b, a) / det (or / 1 where not valid) -> gradients of a, b, c
        inv = 1.0 / tl.where(valid, det, 1.0)
        inv2 = tl.where(valid, inv * inv, 0.0)
        q = g_ca * c - g_cb * b + g_cc * a  # d(numerators . g) through det
        ga = g_cc * inv - inv2 * c * q
        gc = g_ca * inv - inv2 * a * q
        gb = -g_cb * inv + inv2 * 2.0 * b * q
        if ANTIALIASED:
            g_comp = tl.load(GComps + o, mask=mask, other=0.0)
            d_safe = tl.maximum(det, 1e-20)
            det_o = a0 * c0 - b * b
            ratio = det_o / d_safe
            comp = tl.sqrt(tl.maximum(ratio, 0.0))
            g_ratio = tl.where(ratio > 0.0, g_comp * 0.5 / tl.where(ratio > 0.0, comp, 1.0), 0.0)
            dd = tl.where(det > 1e-20, 1.0, 0.0)  # clamp_min(1e-20) stops the gradient through det
            ga += g_ratio * (c0 - ratio * c * dd) / d_safe
            gc += g_ratio * (a0 - ratio * a * dd) / d_safe
            gb += g_ratio * (-2.0 * b + ratio * 2.0 * b * dd) / d_safe
        # Sigma_2D = U U^T: a0 = |U0|^2, b = U0.U1, c0 = |U1|^2
        du00, du01, du02 = 2.0 * ga * u00 + gb * u10, 2.0 * ga * u01 + gb * u11, 2.0 * ga * u02 + gb * u12
        du10, du11, du12 = 2.0 * gc * u10 + gb * u00, 2.0 * gc * u11 + gb * u01, 2.0 * gc * u12 + gb * u02
        # U0 = j00 T0 + j02 T2, U1 = j11 T1 + j12 T2
        dj00 = du00 * a00 + du01 * a01 + du02 * a02
        dj02 = du00 * a20 + du01 * a21 + du02 * a22
        dj11 = du10 * a10 + du11 * a11 + du12 * a12
        dj12 = du10 * a20 + du11 * a21 + du12 * a22
        dt00, dt01, dt02 = j00 * du00, j00 * du01, j00 * du02
        dt10, dt11, dt12 = j11 * du10, j11 * du11, j11 * du12
        dt20, dt21, dt22 = j02 * du00 + j12 * du10, j02 * du01 + j12 * du11, j02 * du02 + j12 * du12
        # T = W M -> dM = W^T dT
        dm00 += w00 * dt00 + w10 * dt10 + w20 * dt20
        dm01 += w00 * dt01 + w10 * dt11 + w20 * dt21
        dm02 += w00 * dt02 + w10 * dt12 + w20 * dt22
        dm10 += w01 * dt00 + w11 * dt10 + w21 * dt20
        dm11 += w01 * dt01 + w11 * dt11 + w21 * dt21
        dm12 += w01 * dt02 + w11 * dt12 + w21 * dt22
        dm20 += w02 * dt00 + w12 * dt10 + w22 * dt20
        dm21 += w02 * dt01 + w12 * dt11 + w22 * dt21
        dm22 += w02 * dt02 + w12 * dt12 + w22 * dt22
        # J and the 2-D mean -> camera point (x, y, z); zs is a constant where the depth is invalid
        iz = 1.0 / zs
        iz2 = iz * iz
        g_tx = -fx * iz2 * dj02
        g_ty = -fy * iz2 * dj12
        gx = gmx * fx * iz + tl.where(free_x, g_tx, 0.0)
        gy = gmy * fy * iz + tl.where(free_y, g_ty, 0.0)
        gz_j = (-gmx * fx * x - gmy * fy * y) * iz2 - fx * iz2 * dj00 - fy * iz2 * dj11
        gz_j += 2.0 * fx * tx * iz2 * iz * dj02 + 2.0 * fy * ty * iz2 * iz * dj12
        gz_j += tl.where(free_x, 0.0, g_tx * ux) + tl.where(free_y, 0.0, g_ty * uy)
        gz = g_z + tl.where(valid_depth, gz_j, 0.0)
        dmx += w00 * gx + w10 * gy + w20 * gz
        dmy += w01 * gx + w11 * gy + w21 * gz
        dmz += w02 * gx + w12 * gy + w22 * gz
    # M = R diag(s)
    ds0 = dm00 * r00 + dm10 * r10 + dm20 * r20
    ds1 = dm01 * r01 + dm11 * r11 + dm21 * r21
    ds2 = dm02 * r02 + dm12 * r12 + dm22 * r22
    dr00, dr01, dr02 = dm00 * s0, dm01 * s1, dm02 * s2
    dr10, dr11, dr12 = dm10 * s0, dm11 * s1, dm12 * s2
    dr20, dr21, dr22 = dm20 * s0, dm21 * s1, dm22 * s2
    # rotation matrix of the normalised quaternion (qw, qx, qy, qz) -> its gradient
    nw = 2.0 * (-qz * dr01 + qy * dr02 + qz * dr10 - qx * dr12 - qy * dr20 + qx * dr21)
    nx = 2.0 * (qy * dr01 + qz * dr02 + qy * dr10 - 2.0 * qx * dr11 - qw * dr12 + qz * dr20 + qw * dr21 - 2.0 * qx * dr22)
    ny = 2.0 * (-2.0 * qy * dr00 + qx * dr01 + qw * dr02 + qx * dr10 + qz * dr12 - qw * dr20 + qz * dr21 - 2.0 * qy * dr22)
    nz = 2.0 * (-2.0 * qz * dr00 - qw * dr01 + qx * dr02 + qw * dr10 - 2.0 * qz * dr11 + qy * dr12 + qx * dr20 + qy * dr21)
    dot = nw * qw + nx * qx + ny * qy + nz * qz
    tl.store(DMeans + g * 3 + 0, dmx, mask=mask)
    tl.store(DMeans + g * 3 + 1, dmy, mask=mask)
    tl.store(DMeans + g * 3 + 2, dmz, mask=mask)
    tl.store(DScales + g * 3 + 0, ds0, mask=mask)
    tl.store(DScales + g * 3 + 1, ds1, mask=mask)
    tl.store(DScales + g * 3 + 2, ds2, mask=mask)
    tl.store(DQuats + g * 4 + 0, (nw - qw * dot) / norm, mask=mask)
    tl.store(DQuats + g * 4 + 1, (nx - qx * dot) / norm, mask=mask)
    tl.store(DQuats + g * 4 + 2, (ny - qy * dot) / norm, mask=mask)
    tl.store(DQuats + g * 4 + 3, (nz - qz * dot) / norm, mask=mask)


# on a GPU a launch of a specialization seen before skips the JIT's per-launch work (``Launcher``)
_project_fwd, _project_bwd = Launcher(_project_fwd_kernel), Launcher(_project_bwd_kernel)


def _tiles(width: int, height: int) -> tuple[int, int]:
    return cdiv(width, TILE_SIZE), cdiv(height, TILE_SIZE)


def _batch_sizes(means, viewmats) -> tuple[int, int, int]:
    """(B, N, V) of means [..., N, 3] and viewmats [..., V, 4, 4], B the product of the leading dims."""
    return math.prod(means.shape[:-2]), means.shape[-2], viewmats.shape[-3]


class _ProjectTritonFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, width, height, near, far, antialiased):
        b, n, v = _batch_sizes(means, viewmats)
        dtype = means.dtype
        # inside forward nothing is recorded: no detach needed (fp32 contiguous inputs pass as they are)
        f32 = [contiguous_as(t, torch.float32) for t in (means, quats, scales, viewmats, Ks)]
        dev = means.device
        means2d = torch.empty(b * v, n, 2, device=dev)
        conics = torch.empty(b * v, n, 3, device=dev)
        depths = torch.empty(b * v, n, device=dev)
        radii = torch.empty(b * v, n, 2, device=dev, dtype=torch.int32)
        comps = torch.empty(b * v, n, device=dev)
        if n > 0:
            _project_fwd[(cdiv(n, BLOCK), b * v)](
                *f32, means2d, conics, depths, radii, comps, n, v, float(width), float(height), float(near), float(far),
                ANTIALIASED=antialiased, BLOCK=BLOCK,
            )
        ctx.save_for_backward(*f32)
        ctx.settings = (width, height, near, far, antialiased, dtype)
        ctx.mark_non_differentiable(radii)
        ctx.set_materialize_grads(False)  # outputs without a gradient (depths in RGB mode) get None, not zeros
        return as_dtype(means2d, dtype), as_dtype(conics, dtype), as_dtype(depths, dtype), radii, as_dtype(comps, dtype)

    @staticmethod
    def backward(ctx, g_means2d, g_conics, g_depths, _g_radii, g_comps):
        means, quats, scales, viewmats, Ks = ctx.saved_tensors
        width, height, near, far, antialiased, dtype = ctx.settings
        b, n, v = _batch_sizes(means, viewmats)

        def grad_or_zeros(t, shape):
            return torch.zeros(shape, device=means.device) if t is None else contiguous_as(t, torch.float32)

        g_m = grad_or_zeros(g_means2d, (b * v, n, 2))
        g_c = grad_or_zeros(g_conics, (b * v, n, 3))
        has_gd = g_depths is not None
        g_d = contiguous_as(g_depths, torch.float32) if has_gd else g_m  # not read without a gradient
        g_o = grad_or_zeros(g_comps, (b * v, n)) if antialiased else g_m  # read only when antialiased
        d_means, d_quats, d_scales = torch.empty_like(means), torch.empty_like(quats), torch.empty_like(scales)
        if n > 0:
            _project_bwd[(cdiv(n, BLOCK), b)](
                means, quats, scales, viewmats, Ks, g_m, g_c, g_d, g_o, d_means, d_quats, d_scales,
                n, v, float(width), float(height), float(near), float(far), ANTIALIASED=antialiased, HAS_GD=has_gd, BLOCK=BLOCK,
            )
        return as_dtype(d_means, dtype), as_dtype(d_quats, dtype), as_dtype(d_scales, dtype), None, None, None, None, None, None, None


def project(means, quats, scales, viewmats, Ks, width: int, height: int, near: float, far: float, antialiased: bool):
    """Fused EWA projection of B batches of N Gaussians into V views each.

    Args:
        means [..., N, 3], quats [..., N, 4], scales [..., N, 3], viewmats [..., V, 4, 4], Ks
        [..., V, 3, 3], the same leading dims (B batches in all; none for one batch); gradients come
        back in these shapes.

    Returns:
        means2d [B*V, N, 2], conics [B*V, N, 3], depths [B*V, N], radii [B*V, N, 2] int32,
        compensations [B*V, N]; differentiable in means, quats and scales (not the cameras).
    """
    return _ProjectTritonFn.apply(means, quats, scales, viewmats, Ks, width, height, near, far, antialiased)


@triton.jit
def _edge_min(d_fixed, lo, hi, a_fixed, b, a_free):
    """min over t in [lo, hi] of q(d_fixed, t) = 0.5 (a_fixed d^2 + a_free t^2) + b d t (a_free > 0)."""
    t = tl.minimum(tl.maximum(-b * d_fixed / a_free, lo), hi)
    return 0.5 * (a_fixed * d_fixed * d_fixed + a_free * t * t) + b * d_fixed * t


@triton.jit
def _rect_min_sigma(px, py, ca, cb, cc, x_lo, x_hi, y_lo, y_hi):
    """min over the rectangle [x_lo, x_hi] x [y_lo, y_hi] of the compositor's exponent
    sigma = 0.5 (a dx^2 + c dy^2) + b dx dy (a convex quadratic: 0 when the centre is inside, else
    the least of its four edges' minima)."""
    dxl, dxr, dyl, dyh = x_lo - px, x_hi - px, y_lo - py, y_hi - py
    inside = (dxl <= 0.0) & (dxr >= 0.0) & (dyl <= 0.0) & (dyh >= 0.0)
    left = _edge_min(dxl, dyl, dyh, ca, cb, cc)
    right = _edge_min(dxr, dyl, dyh, ca, cb, cc)
    low = _edge_min(dyl, dxl, dxr, cc, cb, ca)
    high = _edge_min(dyh, dxl, dxr, cc, cb, ca)
    return tl.where(inside, 0.0, tl.minimum(tl.minimum(left, right), tl.minimum(low, high)))


@triton.jit
def _pair_rect(pair, mask, Means2d, Radii, Conics, Opac, TILES_X, TILES_Y, TILE: tl.constexpr):
    """Of (view, Gaussian) pairs (any shape): 2-D mean (px, py), conic (ca, cb, cc), the largest
    exponent where alpha can still reach 1/255 (``reach``), and the tiles of the 3.33-sigma rectangle
    (first column and row x0, y0, columns ``span``, tiles ``n_box``: 0 where not visible or masked)."""
    px = tl.load(Means2d + pair * 2 + 0, mask=mask, other=0.0)
    py = tl.load(Means2d + pair * 2 + 1, mask=mask, other=0.0)
    rx = tl.load(Radii + pair * 2 + 0, mask=mask, other=0).to(tl.float32)
    ry = tl.load(Radii + pair * 2 + 1, mask=mask, other=0).to(tl.float32)
    ca = tl.load(Conics + pair * 3 + 0, mask=mask, other=1.0)
    cb = tl.load(Conics + pair * 3 + 1, mask=mask, other=0.0)
    cc = tl.load(Conics + pair * 3 + 2, mask=mask, other=1.0)
    opac = tl.load(Opac + pair, mask=mask, other=0.0)
    # alpha = o exp(-sigma) >= 1/255  <=>  sigma <= log(255 o); a little slack for rounding
    reach = tl.log(tl.maximum(opac * 255.0, 1e-30)) + 1e-3
    visible = mask & (rx > 0.0) & (ry > 0.0) & (opac * 255.0 >= 1.0)
    x0 = tl.minimum(tl.maximum(tl.floor((px - rx) / TILE), 0.0), TILES_X * 1.0).to(tl.int32)
    x1 = tl.minimum(tl.maximum(tl.ceil((px + rx) / TILE), 0.0), TILES_X * 1.0).to(tl.int32)
    y0 = tl.minimum(tl.maximum(tl.floor((py - ry) / TILE), 0.0), TILES_Y * 1.0).to(tl.int32)
    y1 = tl.minimum(tl.maximum(tl.ceil((py + ry) / TILE), 0.0), TILES_Y * 1.0).to(tl.int32)
    n_box = tl.where(visible, tl.maximum(x1 - x0, 0) * tl.maximum(y1 - y0, 0), 0)
    return px, py, ca, cb, cc, reach, x0, y0, tl.maximum(x1 - x0, 1), n_box


@triton.jit
def _ranked_pair(Order, rank, mask, N):
    """The flat (view, Gaussian) pair at ``rank`` of the depth order: view rank // N, Gaussian Order[rank]."""
    return (rank // N) * N + tl.load(Order + rank, mask=mask, other=0)


@triton.jit
def _bin_kernel(
    Means2d, Radii, Conics, Opac, Order, Totals, Bases, Keys, Ids,
    TOTAL, N_TILES, TILES_X, TILES_Y, PAIRS_PER_VIEW,
    WRITE: tl.constexpr, TILE: tl.constexpr, BLOCK: tl.constexpr,
):
    """For BLOCK consecutive ranks of (view, Gaussian) pairs, each view's in depth order (rank
    view N + i is the view's Gaussian Order[view N + i], N = PAIRS_PER_VIEW), the tiles of each
    pair's 3.33-sigma rectangle where some pixel centre can reach alpha >= 1/255 (o exp(-min sigma)
    over the tile's pixel-centre rectangle; the compositor skips every other pixel anyway). WRITE = 0
    counts the program's into Totals[program]; WRITE = 1 writes (view-tile int32, flat pair id) from
    Bases[program] (the totals of the programs before it, ``_bases_kernel``) on: the entries come out
    nearest pair first.

    The program's rectangles are walked as one list of (pair, tile) items in rank order, BLOCK items
    a step, one per lane: one wide rectangle spreads over the lanes instead of keeping one lane (and
    its warp) looping over all its tiles while the others idle. On the garden view (138,766
    Gaussians, 381,987 items) the rectangles hold 4 tiles at the median and 1,107 at most: with each
    lane looping over its own pair's rectangle the programs took 79,322 steps in all and the longest
    1,107 (a kernel's time is its longest program's where every program is resident at once); the
    balanced walk takes 13,954 and 39. An item finds its pair by counting the pairs whose items end
    at or before it, then reloads that pair's parameters (cached)."""
    first = tl.program_id(0) * BLOCK
    lanes = tl.arange(0, BLOCK)
    ranks = first + lanes
    in_range = ranks < TOTAL
    n_box = _pair_rect(_ranked_pair(Order, ranks, in_range, PAIRS_PER_VIEW), in_range, Means2d, Radii, Conics, Opac, TILES_X, TILES_Y, TILE)[9]
    ends = tl.cumsum(n_box, 0)  # items of pairs 0..i of the program
    starts = ends - n_box
    n_items = tl.sum(n_box, 0)
    kept = tl.zeros([BLOCK], dtype=tl.int32)
    if WRITE:
        # the program's pairs have consecutive slot ranges: its first slot, then one per hit
        slot = tl.load(Bases + tl.program_id(0))
    for i0 in range(0, n_items, BLOCK):
        item = i0 + lanes
        live = item < n_items
        owner = tl.minimum(tl.sum((ends[None, :] <= item[:, None]).to(tl.int32), axis=1), BLOCK - 1)
        mine = owner[:, None] == lanes[None, :]  # [items, pairs] one-hot
        j = item - tl.sum(tl.where(mine, starts[None, :], 0), axis=1)  # the item's tile within its rectangle
        pair = _ranked_pair(Order, first + owner, live, PAIRS_PER_VIEW)
        px, py, ca, cb, cc, reach, x0, y0, span, _ = _pair_rect(pair, live, Means2d, Radii, Conics, Opac, TILES_X, TILES_Y, TILE)
        tx = x0 + j % span
        ty = y0 + j // span
        lo_x = (tx * TILE).to(tl.float32) + 0.5
        lo_y = (ty * TILE).to(tl.float32) + 0.5
        sigma = _rect_min_sigma(px, py, ca, cb, cc, lo_x, lo_x + (TILE - 1), lo_y, lo_y + (TILE - 1))
        hit = live & (sigma <= reach)
        if WRITE:
            at = slot + tl.cumsum(hit.to(tl.int64), 0) - hit.to(tl.int64)
            tile = (pair // PAIRS_PER_VIEW).to(tl.int32) * N_TILES + ty * TILES_X + tx
            tl.store(Keys + at, tile, mask=hit)
            tl.store(Ids + at, pair.to(tl.int64), mask=hit)
            slot += tl.sum(hit.to(tl.int64), 0)
        else:
            kept += tl.sum((mine & hit[:, None]).to(tl.int32), axis=0)
    if not WRITE:
        tl.store(Totals + tl.program_id(0), tl.sum(kept, 0))


@triton.jit
def _bases_kernel(Totals, Bases, N, BLOCK: tl.constexpr):
    """One program: Bases[p] = Totals[0] + ... + Totals[p - 1] for p < N (int64) and Bases[N] = the
    sum of all N, BLOCK totals a step (one launch for what ``torch.cumsum`` took several)."""
    carry = tl.sum(tl.zeros([BLOCK], dtype=tl.int64), 0)
    for start in range(0, N, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(Totals + offs, mask=offs < N, other=0).to(tl.int64)
        tl.store(Bases + offs, carry + tl.cumsum(x, 0) - x, mask=offs < N)
        carry += tl.sum(x, 0)
    tl.store(Bases + N, carry)


@triton.jit
def _first_at_least(Keys, target, lo, hi, STEPS):
    """Per lane, the first index in [lo, hi) of the sorted Keys whose key is >= target (hi if none),
    by STEPS >= bit_length(hi - lo) halvings."""
    for _ in range(STEPS):
        open_ = lo < hi
        mid = (lo + hi) >> 1
        below = tl.load(Keys + mid, mask=open_, other=0) < target
        lo = tl.where(open_ & below, mid + 1, lo)
        hi = tl.where(open_ & ~below, mid, hi)
    return lo


@triton.jit
def _tile_ranges_kernel(Keys, Order, Ids, FlatIds, Offsets, TOTAL, N_OFFSETS, STEPS, BLOCK: tl.constexpr):
    """After the sort by tile (Keys [TOTAL] sorted, Order the sort's permutation): entry i's pair
    FlatIds[i] = Ids[Order[i]], and for t < N_OFFSETS the first entry of tile t, Offsets[t] = the
    number of keys below t (a binary search of Keys in STEPS >= bit_length(TOTAL) halvings). One
    launch for what ``ids[order]``, ``arange`` and ``searchsorted`` took three."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    entry = i < TOTAL
    tl.store(FlatIds + i, tl.load(Ids + tl.load(Order + i, mask=entry, other=0), mask=entry, other=0), mask=entry)
    # [lo, hi): where the first key >= t lies
    first = _first_at_least(Keys, i, tl.zeros([BLOCK], dtype=tl.int32), tl.where(i < N_OFFSETS, TOTAL, 0), STEPS)
    tl.store(Offsets + i, first.to(tl.int64), mask=i < N_OFFSETS)


@triton.jit
def _tile_order_kernel(Offsets, Order, N, BLOCK: tl.constexpr):
    """The N tiles (lists Offsets[t] .. Offsets[t + 1]) longest list first, equal lengths by index:
    tile t goes to Order[rank(t)], rank(t) = #{u : len(u) > len(t)} + #{u < t : len(u) = len(t)},
    counted against every tile BLOCK at a time (a stable argsort of -len in one launch)."""
    t = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = t < N
    length = tl.load(Offsets + t + 1, mask=live, other=0) - tl.load(Offsets + t, mask=live, other=0)
    rank = tl.zeros([BLOCK], dtype=tl.int32)
    for u0 in range(0, N, BLOCK):
        u = u0 + tl.arange(0, BLOCK)
        # a lane past N reads length 0 at index u >= N > t: never ahead of a tile (lengths are >= 0)
        len_u = tl.load(Offsets + u + 1, mask=u < N, other=0) - tl.load(Offsets + u, mask=u < N, other=0)
        ahead = (len_u[None, :] > length[:, None]) | ((len_u[None, :] == length[:, None]) & (u[None, :] < t[:, None]))
        rank += tl.sum(ahead.to(tl.int32), axis=1)
    tl.store(Order + rank, t.to(tl.int64), mask=live)


_bin, _bases, _tile_ranges, _tile_order = (Launcher(k) for k in (_bin_kernel, _bases_kernel, _tile_ranges_kernel, _tile_order_kernel))
# binning programs per step of ``_bases_kernel`` (4,337 on the garden view: five steps), and the most
# it scans (its steps run one after another: 64 at this limit); more go through ``torch.cumsum``
SCAN_BLOCK = 1024
SCAN_MAX_PROGRAMS = 1 << 16


def _scan_totals(totals: torch.Tensor, bases: torch.Tensor) -> None:
    """bases [P + 1] int64 = 0, totals[0], totals[0] + totals[1], ... (totals [P] int32, P >= 1)."""
    n = totals.numel()
    if n > SCAN_MAX_PROGRAMS:
        bases[:1].zero_()
        torch.cumsum(totals, 0, dtype=torch.int64, out=bases[1:])
        return
    _bases[(1,)](totals, bases, n, BLOCK=SCAN_BLOCK)


# tiles per program of ``_tile_order_kernel``, and the most tiles it ranks (its work grows as their
# square: 67M comparisons there); more go through ``torch.argsort``
ORDER_BLOCK = 64
ORDER_MAX_TILES = 8192


def tile_order(offsets: torch.Tensor) -> torch.Tensor:
    """[T] int64: the T = offsets.numel() - 1 tiles by list length (offsets [T + 1] int64), longest
    first, equal lengths by index."""
    n = offsets.numel() - 1
    if n > ORDER_MAX_TILES:
        return torch.argsort(offsets[:-1] - offsets[1:], stable=True)
    order = torch.empty(n, dtype=torch.int64, device=offsets.device)
    if n > 0:
        _tile_order[(cdiv(n, ORDER_BLOCK),)](offsets, order, n, BLOCK=ORDER_BLOCK)
    return order


def isect_tiles(means2d, radii, depths, conics, opacities, width: int, height: int, order: bool = False):
    """``ref.isect_tiles`` without the (tile, Gaussian) entries that cannot show: those whose tile has
    no pixel centre where alpha = o exp(-sigma) reaches 1/255 (the compositor skips such pixels, so
    the render is the same; about a fifth of the garden view's entries). Same order: by view and
    tile, then depth (equal depths: by pair). The pairs are sorted by depth first and their entries
    written in that order, so that a stable sort by the 32-bit tile id alone orders the list (a
    radix sort's passes go with the key's width: ``ref``'s 64-bit (tile, depth) key takes twice as
    many over the whole list).

    Args:
        means2d [V, N, 2], radii [V, N, 2] int32, depths [V, N], conics [V, N, 3], opacities [V, N]
        (after any antialiasing compensation).

    With ``order``, also the (view, tile) indices longest list first (``tile_order``), for the
    compositor to start its longest tiles first: a kernel takes at least its longest program's time,
    and a long tile that starts last ends last.

    Returns:
        tile_keys [I] int32 sorted, flat_ids [I] int64, offsets [V * n_tiles + 1] int64, and with
        ``order`` tile_order [V * n_tiles] int64: the (view, tile) indices by list length,
        longest first (equal lengths by index).
    """
    v, n = depths.shape
    tiles_x, tiles_y = _tiles(width, height)
    n_tiles = tiles_x * tiles_y
    dev = depths.device
    with torch.no_grad():
        m2, con, opac = (contiguous_as(t, torch.float32) for t in (means2d, conics, opacities))
        by_depth = torch.sort(depths, stable=True).indices  # [V, N]: each view's Gaussians nearest first
        inputs = (m2, radii.contiguous(), con, opac, by_depth)
        n_programs = cdiv(v * n, BIN_BLOCK)
        totals = torch.empty(n_programs, dtype=torch.int32, device=dev)  # entries per binning program
        bases = torch.empty(n_programs + 1, dtype=torch.int64, device=dev)  # their first slots, then the total
        grid = (n_programs,)  # launched only where there are programs (the write pass: entries)
        sizes = dict(TILE=TILE_SIZE, BLOCK=BIN_BLOCK, num_warps=1)
        if n_programs > 0:
            _bin[grid](*inputs, totals, bases, totals, bases, v * n, n_tiles, tiles_x, tiles_y, n, WRITE=False, **sizes)
            _scan_totals(totals, bases)
        # what does not depend on the lists' size is allocated before the sync, while the GPU still
        # works: after it the GPU waits for each op the host issues
        n_offsets = v * n_tiles + 1
        offsets = torch.empty(n_offsets, dtype=torch.int64, device=dev)
        total = int(bases[-1]) if n_programs > 0 else 0  # the one host sync: the size of the lists
        keys = torch.empty(total, dtype=torch.int32, device=dev)
        ids = torch.empty(total, dtype=torch.int64, device=dev)
        if total > 0:
            _bin[grid](*inputs, totals, bases, keys, ids, v * n, n_tiles, tiles_x, tiles_y, n, WRITE=True, **sizes)
        tile_keys, by_tile = torch.sort(keys, stable=True)
        flat_ids = torch.empty(total, dtype=torch.int64, device=dev)
        _tile_ranges[(cdiv(max(total, n_offsets), RANGE_BLOCK),)](
            tile_keys, by_tile, ids, flat_ids, offsets, total, n_offsets, max(1, total.bit_length()), BLOCK=RANGE_BLOCK,
        )
        if not order:
            return tile_keys, flat_ids, offsets
        return tile_keys, flat_ids, offsets, tile_order(offsets)
