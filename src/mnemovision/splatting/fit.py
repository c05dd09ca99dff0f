"""The 3D Gaussian splatting recipe in plain PyTorch: configuration, one training step, evaluation
and the written outputs. The training loop itself runs under mmengine (``splatting.engine``).

Loss: (1 - lambda) L1 + lambda (1 - SSIM), lambda = 0.2; per-parameter Adam learning rates as in
3DGS, the position rate decaying log-linearly; SH degree raised every ``sh_every`` steps. Outputs
(``write_outputs``): ``metrics.json`` (psnr, ssim, [lpips], n_gaussians, size_mb, train_seconds,
render_fps, ...), ``config.json``, ``psnr_curve.png``, ``renders/<view>.png`` (render | truth side
by side) and ``point_cloud.ply`` (3DGS layout).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from mnemovision.splatting.data.scene import SceneData, View
from mnemovision.splatting.gaussians.density import DensityConfig, DensityController
from mnemovision.splatting.gaussians.model import GaussianModel
from mnemovision.splatting.gaussians.ply import save_ply
from mnemovision.vision.checks import check_int, check_real
from mnemovision.vision.metrics import psnr, ssim


@dataclass(frozen=True)
class FitConfig:
    iterations: int = 1000
    lr_means: float = 1.6e-4  # x scene extent
    lr_means_final: float = 1.6e-6  # x scene extent
    lr_sh_dc: float = 2.5e-3
    lr_sh_rest: float = 2.5e-3 / 20
    lr_opacity: float = 0.05
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lambda_dssim: float = 0.2
    max_sh_degree: int = 3
    sh_every: int = 1000
    init_opacity: float = 0.1
    random_init_points: int = 50_000
    eval_every: int = 500
    seed: int = 0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    lpips_weights: str | None = None  # local LPIPS linear-layer weights (.pth); LPIPS is scored when set
    lpips_backbone: str | None = None  # local AlexNet weights for LPIPS (torchvision layout)
    density: DensityConfig = field(default_factory=DensityConfig)

    def __post_init__(self) -> None:
        for name, low in (("iterations", 1), ("sh_every", 1), ("random_init_points", 1), ("eval_every", 1), ("seed", 0)):
            check_int(f"FitConfig.{name}", getattr(self, name), low)
        check_int("FitConfig.max_sh_degree", self.max_sh_degree, 0, 3)
        for name in ("lr_means", "lr_means_final", "lr_sh_dc", "lr_sh_rest", "lr_opacity", "lr_scales", "lr_quats"):
            check_real(f"FitConfig.{name}", getattr(self, name), 0)
        check_real("FitConfig.lambda_dssim", self.lambda_dssim, 0, 1)
        check_real("FitConfig.init_opacity", self.init_opacity, 0, 1, low_open=True, high_open=True)
        if len(self.background) != 3:
            raise ValueError(f"FitConfig.background must be 3 values (RGB), got {self.background!r}")
        for value in self.background:
            check_real("FitConfig.background", value, 0, 1)
        if not isinstance(self.density, DensityConfig):
            raise ValueError(f"FitConfig.density must be a DensityConfig, got {type(self.density).__name__}")


def recipe(iterations: int, width: int, height: int) -> FitConfig:
    """The default recipe for a run of ``iterations`` steps on ``width`` x ``height`` images (what
    ``mnemovision splat fit`` uses): 3DGS's schedule scaled to the run (densify from 5% to 50% of it
    every 100 steps, SH degree up every quarter, opacity resets only for runs of 3000+ steps) and a
    Gaussian budget of 1.25 per pixel of one view (at most a million)."""
    density = DensityConfig(
        refine_start=max(1, iterations // 20),
        refine_stop=iterations // 2,
        refine_every=100,
        reset_every=max(iterations // 3, 1) if iterations >= 3000 else 10**9,
        max_gaussians=min(1_000_000, int(1.25 * width * height)),
    )
    return FitConfig(iterations=iterations, eval_every=max(1, iterations // 10), sh_every=max(1, iterations // 4), density=density)


def configure(iterations: int, width: int, height: int, overrides: dict | None = None) -> FitConfig:
    """``recipe(iterations, width, height)`` with fields replaced by ``overrides`` (a plain dict, as
    configs hold it; ``density`` may be a dict of ``DensityConfig`` fields)."""
    base = recipe(iterations, width, height)
    overrides = dict(overrides or {})
    unknown = set(overrides) - {f.name for f in fields(FitConfig)}
    if unknown:
        raise ValueError(f"unknown fit config fields {sorted(unknown)}; known: {[f.name for f in fields(FitConfig)]}")
    if isinstance(overrides.get("density"), dict):
        overrides["density"] = replace(base.density, **overrides["density"])
    if "background" in overrides:
        overrides["background"] = tuple(float(v) for v in overrides["background"])
    return replace(base, **overrides)


@dataclass
class FitResult:
    """A trained scene: the model, its test metrics and the test-PSNR curve [(iteration, dB)]."""

    model: GaussianModel
    metrics: dict
    curve: list[tuple[int, float]]


def initial_model(scene: SceneData, config: FitConfig) -> GaussianModel:
    """From the scene's point cloud when it has one, else random points in the cameras' view volume."""
    if scene.points is not None and len(scene.points) > 0:
        colors = scene.colors if scene.colors is not None else torch.full_like(scene.points, 0.5)
        return GaussianModel.from_points(scene.points, colors, config.max_sh_degree, config.init_opacity)
    centers = torch.stack([torch.linalg.inv(v.viewmat)[:3, 3] for v in scene.train])
    mid = centers.mean(0)
    half = torch.full((3,), scene.extent / 1.1)
    return GaussianModel.random_in_box(config.random_init_points, mid - half, mid + half, config.max_sh_degree, config.seed)


def make_optimizer(model: GaussianModel, config: FitConfig, extent: float) -> torch.optim.Adam:
    groups = [
        {"params": [model.means], "lr": config.lr_means * extent, "name": "means"},
        {"params": [model.sh_dc], "lr": config.lr_sh_dc, "name": "sh_dc"},
        {"params": [model.sh_rest], "lr": config.lr_sh_rest, "name": "sh_rest"},
        {"params": [model.opacity_logits], "lr": config.lr_opacity, "name": "opacity_logits"},
        {"params": [model.log_scales], "lr": config.lr_scales, "name": "log_scales"},
        {"params": [model.quats], "lr": config.lr_quats, "name": "quats"},
    ]
    return torch.optim.Adam(groups, lr=0.0, eps=1e-15)


def means_lr(step: int, config: FitConfig, extent: float) -> float:
    """Log-linear decay from lr_means to lr_means_final over the run (times the extent)."""
    t = min(max(step / max(config.iterations, 1), 0.0), 1.0)
    return extent * math.exp((1 - t) * math.log(config.lr_means) + t * math.log(config.lr_means_final))


def render_view(model: GaussianModel, view: View, width: int, height: int, background: torch.Tensor):
    rgb, alpha, info = model.render(view.viewmat[None], view.K[None], width, height, background=background[None])
    return rgb[0], info


@torch.no_grad()
def evaluate(model: GaussianModel, views: list[View], width: int, height: int, background: torch.Tensor, lpips: torch.nn.Module | None = None) -> dict:
    """Mean PSNR / SSIM (and LPIPS when an ``LPIPS`` module is given) over ``views`` (float images
    in [0, 1]), and render frames per second (rendering only, metrics excluded)."""
    if not views:
        return {"psnr": float("nan"), "ssim": float("nan"), "render_fps": float("nan")}
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], **({"lpips": []} if lpips is not None else {})}
    render_seconds = 0.0
    for view in views:
        start = time.perf_counter()
        rgb, _ = render_view(model, view, width, height, background)
        render_seconds += time.perf_counter() - start
        pred, gt = rgb.clamp(0, 1).permute(2, 0, 1), view.image.permute(2, 0, 1)
        scores["psnr"].append(float(psnr(pred, gt)))
        scores["ssim"].append(float(ssim(pred, gt)))
        if lpips is not None:
            scores["lpips"].append(float(lpips(pred[None], gt[None])))
    return {**{k: float(np.mean(v)) for k, v in scores.items()}, "render_fps": len(views) / render_seconds}


def train_iteration(
    model: GaussianModel,
    optimizer: torch.optim.Optimizer,
    density: DensityController,
    view: View,
    step: int,
    config: FitConfig,
    extent: float,
    background: torch.Tensor,
) -> torch.Tensor:
    """One 3DGS training step (``step`` counts from 1): position-rate decay, render, L1 + D-SSIM,
    backward, density statistics, Adam, density control, SH degree schedule. Returns the loss."""
    height, width = view.image.shape[:2]
    for group in optimizer.param_groups:
        if group["name"] == "means":
            group["lr"] = means_lr(step, config, extent)
    rgb, info = render_view(model, view, width, height, background)
    pred, gt = rgb.permute(2, 0, 1), view.image.permute(2, 0, 1)
    l1 = (pred - gt).abs().mean()
    loss = (1 - config.lambda_dssim) * l1 + config.lambda_dssim * (1 - ssim(pred, gt, padding="same"))
    loss.backward()
    density.observe(info, width, height)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    density.step(step, model, optimizer)
    if step % config.sh_every == 0 and model.active_sh_degree < model.max_sh_degree:
        model.active_sh_degree += 1
    return loss.detach()


def write_outputs(result: FitResult, scene: SceneData, config: FitConfig, out_dir: Path, background: torch.Tensor) -> None:
    """metrics.json, config.json, psnr_curve.png, renders/*.png (render | truth) and point_cloud.ply."""
    from mnemovision.vision.checkpoints import atomic_write
    from mnemovision.vision.io import write_image
    from mnemovision.vision.plots import save_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / "metrics.json", "w") as handle:
        json.dump(result.metrics, handle, indent=2)
    with atomic_write(out_dir / "config.json", "w") as handle:
        json.dump(asdict(config), handle, indent=2)
    if result.curve:
        steps, values = zip(*result.curve)
        save_curve(out_dir / "psnr_curve.png", {"test PSNR": (steps, values)}, "iteration", "PSNR (dB)", "test PSNR during training")
    with torch.no_grad():
        for view in scene.test:
            rgb, _ = render_view(result.model, view, scene.width, scene.height, background)
            side = torch.cat([rgb.clamp(0, 1), view.image], dim=1)
            write_image(out_dir / "renders" / f"{Path(view.name).stem}.png", side.numpy())
    save_ply(out_dir / "point_cloud.ply", result.model)
