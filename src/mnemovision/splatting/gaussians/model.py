"""The 3D Gaussian scene model: raw parameters, their activations, initialisation and rendering.

Parameters (raw, optimised): means [N, 3]; quats [N, 4] (wxyz, normalised on use); log_scales
[N, 3]; opacity_logits [N]; sh_dc [N, 1, 3]; sh_rest [N, (D+1)^2 - 1, 3] for max SH degree D.
Activations: scales = exp, opacities = sigmoid, colour = SH(view) + 0.5 (the 3DGS convention, so
sh_dc = (rgb - 0.5) / C0 reproduces an RGB colour).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mnemovision.kernels import rasterize_gaussians
from mnemovision.kernels.gaussians.ref import SH_C0
from mnemovision.vision.checks import check_int, check_real

PARAM_NAMES = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


def rgb_to_sh_dc(rgb: torch.Tensor) -> torch.Tensor:
    """[N, 3] colours in [0, 1] -> SH degree-0 coefficients [N, 1, 3]."""
    return ((rgb - 0.5) / SH_C0)[:, None, :]


def knn_scales(points: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Mean distance from each point to its ``k`` nearest neighbours [N] (scipy KD-tree); to all the
    others where there are ``k`` or fewer, and 0.01 for a single point."""
    from scipy.spatial import cKDTree

    pts = points.detach().cpu().double().numpy()
    if not np.isfinite(pts).all():
        raise ValueError(f"points must be finite, got NaN or infinity in {int((~np.isfinite(pts).all(1)).sum())} of {len(pts)}")
    k = min(k, len(pts) - 1)
    if k < 1:
        return torch.full((len(pts),), 0.01, dtype=points.dtype)
    dist, _ = cKDTree(pts).query(pts, k=k + 1)
    return torch.from_numpy(dist[:, 1:].mean(1)).to(points.dtype).clamp_min(1e-7)


class GaussianModel(nn.Module):
    """N anisotropic Gaussians with SH colour up to ``max_sh_degree``."""

    def __init__(self, means, quats, log_scales, opacity_logits, sh_dc, sh_rest, max_sh_degree: int) -> None:
        super().__init__()
        check_int("max_sh_degree", max_sh_degree, 0, 3)  # what the rasterizer evaluates
        n = means.shape[0]
        k = (max_sh_degree + 1) ** 2
        expected = {"means": (n, 3), "quats": (n, 4), "log_scales": (n, 3), "opacity_logits": (n,), "sh_dc": (n, 1, 3), "sh_rest": (n, k - 1, 3)}
        for name, value in zip(PARAM_NAMES, (means, quats, log_scales, opacity_logits, sh_dc, sh_rest)):
            if tuple(value.shape) != expected[name]:
                raise ValueError(f"{name} must have shape {list(expected[name])}, got {list(value.shape)}")
            self.register_parameter(name, nn.Parameter(value.detach().clone().float()))
        self.max_sh_degree = max_sh_degree
        self.active_sh_degree = 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_points(cls, points: torch.Tensor, colors: torch.Tensor, max_sh_degree: int = 3, init_opacity: float = 0.1, scale_factor: float = 1.0) -> "GaussianModel":
        """Isotropic Gaussians at ``points`` [N, 3] with ``colors`` [N, 3] in [0, 1]; scale = mean 3-NN distance."""
        if points.ndim != 2 or points.shape[-1] != 3 or colors.shape != points.shape:
            raise ValueError(f"points and colors must both be [N, 3], got {tuple(points.shape)} and {tuple(colors.shape)}")
        check_int("max_sh_degree", max_sh_degree, 0, 3)
        check_real("init_opacity", init_opacity, 0, 1, low_open=True, high_open=True)  # 0 and 1 have infinite logits
        check_real("scale_factor", scale_factor, 0, low_open=True)
        n = points.shape[0]
        scales = knn_scales(points) * scale_factor
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        logit = torch.logit(torch.tensor(init_opacity))
        k = (max_sh_degree + 1) ** 2
        return cls(points.float(), quats, torch.log(scales)[:, None].repeat(1, 3), torch.full((n,), float(logit)), rgb_to_sh_dc(colors.float()), torch.zeros(n, k - 1, 3), max_sh_degree)

    @classmethod
    def random_in_box(cls, n: int, lo: torch.Tensor, hi: torch.Tensor, max_sh_degree: int = 3, seed: int = 0) -> "GaussianModel":
        """``n`` random grey Gaussians uniformly inside the axis-aligned box [lo, hi]."""
        check_int("n", n, 0)
        g = torch.Generator().manual_seed(seed)
        points = lo + (hi - lo) * torch.rand(n, 3, generator=g)
        return cls.from_points(points, torch.full((n, 3), 0.5), max_sh_degree)

    # ------------------------------------------------------------------ views of the parameters
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    @property
    def sh(self) -> torch.Tensor:
        """[N, (D+1)^2, 3] all SH coefficients."""
        return torch.cat([self.sh_dc, self.sh_rest], dim=1)

    def size_mb(self) -> float:
        """Size of the parameters in float32 (what a PLY export stores, normals aside)."""
        return sum(p.numel() for p in self.parameters()) * 4 / 2**20

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Loading a state dict with another Gaussian count resizes the parameters in place (the same
        ``Parameter`` objects, so an optimizer built on them stays valid); everything else is strict."""
        for name in PARAM_NAMES:
            value, param = state_dict.get(prefix + name), getattr(self, name)
            if value is not None and value.shape[0] != param.shape[0] and value.shape[1:] == param.shape[1:]:
                param.data = torch.empty(value.shape, dtype=param.dtype, device=param.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def render(self, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int, background: torch.Tensor | None = None, **kwargs):
        """Render [V] views: returns (rgb [V, H, W, 3], alpha [V, H, W, 1], info) via the shared rasterizer."""
        bg = None if background is None else background.expand(viewmats.shape[0], 3)
        return rasterize_gaussians(
            self.means, self.quats, self.scales, self.opacities, self.sh, viewmats, Ks, width, height,
            sh_degree=self.active_sh_degree, backgrounds=bg, **kwargs,
        )
