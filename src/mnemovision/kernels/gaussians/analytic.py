"""Hand-derived backward passes of the projection stages, for the PyTorch path's training speed.

``quat_scale_to_covar`` and ``project_gaussians`` in ``ref`` are the readable stages, differentiated
by autograd (the oracle, gradchecked). Their autograd graphs are a few hundred small ops over
[V, N] tensors and a dozen batched 3x3 matmuls, which on a CPU cost more than the rest of a small
scene's projection, SH and loss together. The functions here run the same forward (``ref``'s own
code, without recording a graph) and give the gradients from closed forms, entry by entry of the
small matrices, equal to autograd's up to rounding. They differentiate means, quaternions and
scales; cameras that need gradients take ``ref``'s autograd stages (``rasterize_gaussians``
dispatches).

Shapes: N Gaussians, V views.
"""

from __future__ import annotations

import torch

from mnemovision.kernels.gaussians import ref


class _ProjectFn(torch.autograd.Function):
    """``ref.quat_scale_to_covar`` then ``ref.project_gaussians``, with the closed-form backward into
    means [N, 3], quats [N, 4] and scales [N, 3] (the cameras are constants here).

    The backward holds no 3x3 matrix products: on a CPU each batched 3x3 product over the Gaussians
    costs about as much as fifty elementwise ops. With T = J R (the 2x3 Jacobian of the pixel
    position in world coordinates) and G the gradient of the 2-D covariance's (a, b, c), the
    covariance gradient T^T G T and its product with M = R(q) diag(s) reduce to outer products of
    T's rows, taken entry by entry."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, width, height, near, far, antialiased):
        unit, rot_q, m, covars = ref.covar_terms(quats, scales)
        outputs, terms = ref.projection_terms(means, covars, viewmats, Ks, width, height, near, far, antialiased)
        # intermediate terms only on ctx: an output held there would be a reference cycle (output ->
        # its grad_fn -> ctx -> output), freed only by the garbage collector; outputs go through
        # save_for_backward
        ctx.terms, ctx.antialiased = terms, antialiased
        ctx.save_for_backward(quats, unit, rot_q, m, scales, outputs[4])
        ctx.mark_non_differentiable(outputs[3])
        return outputs

    @staticmethod
    def backward(ctx, g_means2d, g_conics, g_z, _g_radii, g_comp):
        quats, unit, rot_q, m, scales, comp = ctx.saved_tensors
        p = ctx.terms
        # conics = inverse of [[a, b], [b, c]] (det_safe: 1 where invalid, then conics = (c, -b, a))
        d_a, d_b, d_c = _inverse_grads(p, g_conics)
        if ctx.antialiased:
            d_a, d_b, d_c = _compensation_grads(p, comp, g_comp, d_a, d_b, d_c)
        d_j00, d_j02, d_j11, d_j12 = _jacobian_grads(p, d_a, d_b, d_c)
        d_means = (_camera_grads(p, g_means2d, g_z, d_j00, d_j02, d_j11, d_j12) @ p.rot[:, 0]).sum(0)  # cam = R mean + t
        d_m = _factor_grads(p, m, d_a, d_b, d_c)  # [N, 3, 3]
        d_scales = (rot_q * d_m).sum(-2)  # M = R diag(s): column k of M is s_k R[:, k]
        d_unit = _rotmat_to_quat_grad(unit, d_m * scales[..., None, :])
        # q / max(|q|, eps) (torch's normalize): d q = (d u - u (u . d u)) / |q|
        norm = quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        d_quats = (d_unit - unit * (unit * d_unit).sum(-1, keepdim=True)) / norm
        return d_means, d_quats, d_scales, None, None, None, None, None, None, None


def _camera_grads(p, g_means2d, g_z, d_j00, d_j02, d_j11, d_j12) -> torch.Tensor:
    """dL/d (x, y, z) [V, N, 3] in camera coordinates, from the pixel means, the depth and the
    Jacobian [[fx / z, 0, -fx tx / z^2], [0, fy / z, -fy ty / z^2]] (tx, ty: x, y clamped to 1.3x
    the field of view; z: 1 where the depth is invalid)."""
    zs, fx, fy = p.z_safe, p.fx, p.fy
    inv_z = 1.0 / zs
    d_tx, d_ty = -fx * inv_z**2 * d_j02, -fy * inv_z**2 * d_j12
    d_zs = (-fx * d_j00 - fy * d_j11) * inv_z**2 + 2 * inv_z**3 * (fx * p.tx * d_j02 + fy * p.ty * d_j12)
    d_x, d_y = fx * inv_z * g_means2d[..., 0], fy * inv_z * g_means2d[..., 1]
    d_zs = d_zs - inv_z**2 * (fx * p.x * g_means2d[..., 0] + fy * p.y * g_means2d[..., 1])
    # tx = z clamp(x / z, ...): x itself where unclamped, else z times the bound
    d_x = d_x + torch.where(p.x_free, d_tx, 0.0)
    d_y = d_y + torch.where(p.y_free, d_ty, 0.0)
    d_zs = d_zs + torch.where(p.x_free, 0.0, p.tx * inv_z * d_tx) + torch.where(p.y_free, 0.0, p.ty * inv_z * d_ty)
    return torch.stack([d_x, d_y, torch.where(p.valid_depth, d_zs, 0.0) + g_z], -1)


def _factor_grads(p, m, d_a, d_b, d_c) -> torch.Tensor:
    """dL/dM [N, 3, 3] of Sigma = M M^T, through [[a, b], [b, c]] = T Sigma T^T (+ 0.3 I), T = J R
    [V, N, 2, 3], summed over the views.

    With G = [[d_a, d_b], [0, d_c]] (b is read at [0, 1] only) and t0, t1 the rows of T:
    dL/d Sigma = T^T G T, and dL/dM = (dL/d Sigma + its transpose) M = t0 (2 d_a u0 + d_b u1)^T +
    t1 (d_b u0 + 2 d_c u1)^T with u0 = M^T t0, u1 = M^T t1."""
    rot = p.rot[:, 0]  # [V, 3, 3]
    r = [[rot[:, i, j][:, None] for j in range(3)] for i in range(3)]  # [V, 1] each
    j00, j02, j11, j12 = p.jac[..., 0, 0], p.jac[..., 0, 2], p.jac[..., 1, 1], p.jac[..., 1, 2]
    t0 = [j00 * r[0][k] + j02 * r[2][k] for k in range(3)]  # [V, N] each
    t1 = [j11 * r[1][k] + j12 * r[2][k] for k in range(3)]
    mm = [[m[:, i, k] for k in range(3)] for i in range(3)]  # [N] each
    u0 = [t0[0] * mm[0][k] + t0[1] * mm[1][k] + t0[2] * mm[2][k] for k in range(3)]
    u1 = [t1[0] * mm[0][k] + t1[1] * mm[1][k] + t1[2] * mm[2][k] for k in range(3)]
    left = [2 * d_a * u0[k] + d_b * u1[k] for k in range(3)]
    right = [d_b * u0[k] + 2 * d_c * u1[k] for k in range(3)]
    entries = [(t0[i] * left[k] + t1[i] * right[k]).sum(0) for i in range(3) for k in range(3)]
    return torch.stack(entries, -1).reshape(m.shape)


def _rotmat_to_quat_grad(unit: torch.Tensor, d_rot: torch.Tensor) -> torch.Tensor:
    """dL/d (w, x, y, z) [..., 4] of a unit quaternion from dL/dR [..., 3, 3], R = ``ref.unit_quat_to_rotmat``."""
    w, x, y, z = unit.unbind(-1)
    g = d_rot.reshape(*d_rot.shape[:-2], 9).unbind(-1)  # row-major R00 .. R22
    d_w = 2 * (x * (g[7] - g[5]) + y * (g[2] - g[6]) + z * (g[3] - g[1]))
    d_x = 2 * (-2 * x * (g[4] + g[8]) + y * (g[1] + g[3]) + z * (g[2] + g[6]) + w * (g[7] - g[5]))
    d_y = 2 * (-2 * y * (g[0] + g[8]) + x * (g[1] + g[3]) + z * (g[5] + g[7]) + w * (g[2] - g[6]))
    d_z = 2 * (-2 * z * (g[0] + g[4]) + x * (g[2] + g[6]) + y * (g[5] + g[7]) + w * (g[3] - g[1]))
    return torch.stack([d_w, d_x, d_y, d_z], -1)


def _inverse_grads(p, g_conics):
    """dL/d (a, b, c) [V, N] through conics = (c, -b, a) / det_safe.

    Through the numerators and the determinant: with x = g . conics, d a = (g_c - c x) / det,
    d b = (2 b x - g_b) / det, d c = (g_a - a x) / det. The same gradient as -K G K (K the inverse),
    but that form multiplies entries of K, and in float32 its rounding did not cancel downstream
    where the covariance factor M and the projection were ill-conditioned: the gradients of
    means, quats and scales were up to 100x further from float64 than autograd's (6.6e-3 against
    3.7e-5 of the largest value; drawn scenes, the compositor's own output gradients)."""
    g0, g1, g2 = g_conics.unbind(-1)
    inv = 1.0 / p.det_safe
    x = (g0 * p.c - g1 * p.b + g2 * p.a) * inv
    # invalid entries: det_safe = 1, so conics = (c, -b, a)
    d_a, d_b, d_c = (g2 - p.c * x) * inv, (2.0 * p.b * x - g1) * inv, (g0 - p.a * x) * inv
    return torch.where(p.valid, d_a, g2), torch.where(p.valid, d_b, -g1), torch.where(p.valid, d_c, g0)


def _compensation_grads(p, comp, g_comp, d_a, d_b, d_c):
    """Adds dL/d (a, b, c) through comp = sqrt(max(det_orig / max(det, 1e-20), 0)), det_orig the
    determinant before the low-pass (a - 0.3)(c - 0.3) - b^2."""
    a0, c0 = p.a - ref.EPS_2D, p.c - ref.EPS_2D
    det = p.det.clamp_min(1e-20)
    ratio = p.det_orig / det
    d_ratio = torch.where(ratio > 0, g_comp / (2 * comp.clamp_min(1e-30)), 0.0)
    d_orig, d_det = d_ratio / det, torch.where(p.det > 1e-20, -d_ratio * ratio / det, 0.0)
    return d_a + d_orig * c0 + d_det * p.c, d_b - 2 * p.b * (d_orig + d_det), d_c + d_orig * a0 + d_det * p.a


def _jacobian_grads(p, d_a, d_b, d_c):
    """dL/d J00, J02, J11, J12 [V, N] through a, b, c = the [0, 0], [0, 1] and [1, 1] entries of
    J cov_cam J^T (+ 0.3 I), J's other entries 0: d J = (G + G^T) J cov_cam with G = [[d_a, d_b],
    [0, d_c]] (cov_cam symmetric)."""
    j00, j02, j11, j12 = p.jac[..., 0, 0], p.jac[..., 0, 2], p.jac[..., 1, 1], p.jac[..., 1, 2]
    # (G + G^T) J = [[2 d_a j00, d_b j11, 2 d_a j02 + d_b j12], [d_b j00, 2 d_c j11, d_b j02 + 2 d_c j12]]
    h00, h01, h02 = 2 * d_a * j00, d_b * j11, 2 * d_a * j02 + d_b * j12
    h10, h11, h12 = d_b * j00, 2 * d_c * j11, d_b * j02 + 2 * d_c * j12
    s = p.cov_cam
    d_j00 = h00 * s[..., 0, 0] + h01 * s[..., 1, 0] + h02 * s[..., 2, 0]
    d_j02 = h00 * s[..., 0, 2] + h01 * s[..., 1, 2] + h02 * s[..., 2, 2]
    d_j11 = h10 * s[..., 0, 1] + h11 * s[..., 1, 1] + h12 * s[..., 2, 1]
    d_j12 = h10 * s[..., 0, 2] + h11 * s[..., 1, 2] + h12 * s[..., 2, 2]
    return d_j00, d_j02, d_j11, d_j12


def project_gaussians(means, quats, scales, viewmats, Ks, width: int, height: int, near: float = 0.01, far: float = 1e10, antialiased: bool = False):
    """``ref.project_gaussians(means, ref.quat_scale_to_covar(quats, scales), ...)`` (means [N, 3],
    quats [N, 4], scales [N, 3], viewmats [V, 4, 4], Ks [V, 3, 3]; the same five outputs) with its
    closed-form backward into means, quats and scales. viewmats and Ks must not need gradients
    (``ValueError`` otherwise: take ``ref``'s stages)."""
    if viewmats.requires_grad or Ks.requires_grad:
        raise ValueError("analytic.project_gaussians differentiates means, quats and scales only; viewmats or Ks need gradients: use ref's stages")
    return _ProjectFn.apply(means, quats, scales, viewmats, Ks, width, height, near, far, antialiased)
