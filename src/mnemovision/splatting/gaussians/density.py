"""Adaptive density control as in 3D Gaussian Splatting (Kerbl et al. 2023).

Every ``refine_every`` steps between ``refine_start`` and ``refine_stop``: Gaussians whose average
view-space positional gradient (in NDC units: pixel gradients x W/2, H/2) reaches
``grad_threshold`` are cloned when small (max scale <= ``percent_dense`` x scene extent) and split
in two when large (samples from the Gaussian, scales / 1.6); then Gaussians with opacity below
``min_opacity``, or larger than ``max_world_scale`` x extent (or ``max_screen_radius`` pixels) once
an opacity reset has happened, are pruned. Every ``reset_every`` steps opacities are clamped to
``reset_opacity``. The optimizer's Adam state follows every change (new Gaussians start at zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnemovision.splatting.gaussians.model import PARAM_NAMES, GaussianModel
from mnemovision.kernels.gaussians.ref import quat_to_rotmat
from mnemovision.vision.checks import check_int, check_real


@dataclass(frozen=True)
class DensityConfig:
    refine_start: int = 500
    refine_stop: int = 15000
    refine_every: int = 100
    grad_threshold: float = 2e-4
    percent_dense: float = 0.01
    split_factor: float = 1.6
    min_opacity: float = 0.005
    max_world_scale: float = 0.1
    max_screen_radius: float = 20.0
    reset_every: int = 3000
    reset_opacity: float = 0.01
    max_gaussians: int = 1_000_000

    def __post_init__(self) -> None:
        for name, low in (("refine_start", 0), ("refine_stop", 0), ("refine_every", 1), ("reset_every", 1), ("max_gaussians", 1)):
            check_int(f"DensityConfig.{name}", getattr(self, name), low)
        for name in ("grad_threshold", "max_screen_radius"):
            check_real(f"DensityConfig.{name}", getattr(self, name), 0)
        for name in ("percent_dense", "split_factor", "max_world_scale"):
            check_real(f"DensityConfig.{name}", getattr(self, name), 0, low_open=True)
        for name in ("min_opacity", "reset_opacity"):
            check_real(f"DensityConfig.{name}", getattr(self, name), 0, 1)


class DensityController:
    """Accumulates densification statistics and edits a ``GaussianModel`` and its Adam optimizer."""

    def __init__(self, config: DensityConfig, extent: float, seed: int = 0) -> None:
        self.config = config
        self.extent = extent
        self.grad_accum: torch.Tensor | None = None
        self.count: torch.Tensor | None = None
        self.max_radius: torch.Tensor | None = None
        self.resets = 0
        self.generator = torch.Generator().manual_seed(seed)  # split samples: its own stream, so resume is exact

    STATE_TENSORS = ("grad_accum", "count", "max_radius")

    def state_dict(self) -> dict:
        """Accumulated statistics, reset count and the split sampler's RNG state (plain tensors)."""
        state = {name: getattr(self, name) for name in self.STATE_TENSORS if getattr(self, name) is not None}
        return {**state, "resets": torch.tensor(self.resets), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        for name in self.STATE_TENSORS:
            setattr(self, name, state.get(name))
        self.resets = int(state["resets"])
        self.generator.set_state(state["generator"])

    def _ensure(self, n: int, device) -> None:
        if self.grad_accum is None or self.grad_accum.shape[0] != n:
            self.grad_accum = torch.zeros(n, device=device)
            self.count = torch.zeros(n, device=device)
            self.max_radius = torch.zeros(n, device=device)

    @torch.no_grad()
    def observe(self, info: dict, width: int, height: int) -> None:
        """After backward: add this step's view-space gradient norms (of visible Gaussians)."""
        grad = info["means2d"].grad
        if grad is None:
            return
        grad = grad.reshape(-1, grad.shape[-2], 2)  # [V, N, 2]
        self._ensure(grad.shape[1], grad.device)
        ndc = grad * torch.tensor([width / 2.0, height / 2.0], device=grad.device)
        visible = info["visible"].reshape(-1, grad.shape[1])
        norms = torch.linalg.vector_norm(ndc, dim=-1)
        self.grad_accum += (norms * visible).sum(0)
        self.count += visible.sum(0)
        radii = info["radii"].reshape(-1, grad.shape[1], 2).amax(-1).float().amax(0)
        self.max_radius = torch.maximum(self.max_radius, radii)

    @torch.no_grad()
    def step(self, step: int, model: GaussianModel, optimizer: torch.optim.Optimizer) -> dict:
        """Run the control for ``step`` (1-based); returns counts of what changed."""
        cfg = self.config
        report = {"cloned": 0, "split": 0, "pruned": 0, "reset": False}
        if cfg.refine_start < step <= cfg.refine_stop and step % cfg.refine_every == 0 and self.grad_accum is not None:
            avg = self.grad_accum / self.count.clamp_min(1)
            big_grad = avg >= cfg.grad_threshold
            max_scale = model.scales.amax(-1)
            small = max_scale <= cfg.percent_dense * self.extent
            room = max(cfg.max_gaussians - len(model), 0)
            if int(big_grad.sum()) > room:  # over the budget: keep the largest gradients (a split adds one net)
                keep_idx = torch.topk(torch.where(big_grad, avg, torch.full_like(avg, -1.0)), room).indices
                big_grad = torch.zeros_like(big_grad)
                big_grad[keep_idx] = True
            clone = big_grad & small
            split = big_grad & ~small
            report["cloned"], report["split"] = int(clone.sum()), int(split.sum())
            self._clone(model, optimizer, clone)
            self._split(model, optimizer, torch.cat([split, torch.zeros(int(clone.sum()), dtype=torch.bool, device=split.device)]))
            prune = model.opacities < cfg.min_opacity
            if self.resets > 0:
                prune |= model.scales.amax(-1) > cfg.max_world_scale * self.extent
                prune |= self.max_radius > cfg.max_screen_radius
            if prune.all():
                prune[torch.argmax(model.opacities)] = False  # never empty the scene
            report["pruned"] = int(prune.sum())
            self._keep(model, optimizer, ~prune)
            self.grad_accum = self.count = self.max_radius = None
        if step % cfg.reset_every == 0 and step <= cfg.refine_stop:
            logit = torch.logit(torch.tensor(cfg.reset_opacity))
            model.opacity_logits.data.clamp_(max=float(logit))
            state = optimizer.state.get(model.opacity_logits)
            if state:
                state["exp_avg"].zero_()
                state["exp_avg_sq"].zero_()
            self.resets += 1
            report["reset"] = True
        return report

    # ---------------------------------------------------------------- parameter surgery
    def _replace(self, model: GaussianModel, optimizer: torch.optim.Optimizer, build) -> None:
        """Swap every parameter for ``build(name, tensor, is_state)`` and carry its Adam state."""
        for name in PARAM_NAMES:
            old = getattr(model, name)
            new = torch.nn.Parameter(build(name, old.data, False))
            for group in optimizer.param_groups:
                for i, p in enumerate(group["params"]):
                    if p is old:
                        group["params"][i] = new
            state = optimizer.state.pop(old, None)
            if state:
                for key in ("exp_avg", "exp_avg_sq"):
                    state[key] = build(name, state[key], True)
                optimizer.state[new] = state
            setattr(model, name, new)

    def _keep(self, model: GaussianModel, optimizer, mask: torch.Tensor) -> None:
        if bool(mask.all()):
            return
        self._replace(model, optimizer, lambda name, t, is_state: t[mask])
        if self.max_radius is not None:
            self.max_radius = self.max_radius[mask]

    def _clone(self, model: GaussianModel, optimizer, mask: torch.Tensor) -> None:
        if not bool(mask.any()):
            return

        def build(name, t, is_state):
            extra = torch.zeros_like(t[mask]) if is_state else t[mask]
            return torch.cat([t, extra])

        self._replace(model, optimizer, build)
        if self.max_radius is not None:
            self.max_radius = torch.cat([self.max_radius, torch.zeros(int(mask.sum()), device=mask.device)])

    def _split(self, model: GaussianModel, optimizer, mask: torch.Tensor) -> None:
        """Replace each selected Gaussian by two samples from it, with scales / split_factor."""
        if not bool(mask.any()):
            return
        scales = model.scales[mask]
        rot = quat_to_rotmat(model.quats[mask])
        offsets = [(rot @ (torch.randn(scales.shape, generator=self.generator).to(scales) * scales)[..., None]).squeeze(-1) for _ in range(2)]

        def build(name, t, is_state):
            sel = t[mask]
            if is_state:
                new = torch.zeros_like(torch.cat([sel, sel]))
            elif name == "means":
                new = torch.cat([sel + offsets[0], sel + offsets[1]])
            elif name == "log_scales":
                new = torch.cat([sel, sel]) - torch.log(torch.tensor(self.config.split_factor))
            else:
                new = torch.cat([sel, sel])
            return torch.cat([t[~mask], new])

        self._replace(model, optimizer, build)
        if self.max_radius is not None:
            self.max_radius = torch.cat([self.max_radius[~mask], torch.zeros(2 * int(mask.sum()), device=mask.device)])
