"""Fit any scene folder with the bundled recipe, without writing a config (``mnemovision splat fit``,
the benchmark and the demo): the ``splat_bundled`` config pointed at another folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mnemovision.engine import build_runner, load_config
from mnemovision.engine.hooks import CallbackHook, RichProgressHook
from mnemovision.splatting.fit import FitResult
from mnemovision.splatting.engine.hooks import SplatResultsHook
from mnemovision.vision.checks import check_int


def scene_config(data_root: str | Path, iterations: int = 1000, downscale: float = 1.0, fit: dict | None = None, orbit_frames: int = 60, progress: bool = True, make_if_missing: bool = False):
    """The ``splat_bundled`` config for ``data_root``: every place that names the data, the run
    length, the validation (10 times per run) and checkpoint (4 times) intervals set consistently."""
    check_int("iterations", iterations, 1)
    check_int("orbit_frames", orbit_frames, 0)  # 0: no orbit video
    cfg = load_config("splat_bundled")
    data = dict(data_root=str(data_root), downscale=float(downscale), make_if_missing=make_if_missing)
    cfg.model.update(data, iterations=int(iterations), fit=dict(fit or {}))
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.update(data)
        if "background" in (fit or {}):
            loader.dataset.background = tuple(fit["background"])
    cfg.train_cfg.max_iters = int(iterations)
    cfg.train_cfg.val_interval = max(1, iterations // 10)
    cfg.default_hooks.checkpoint.interval = max(1, iterations // 4)
    for hook in cfg.custom_hooks:
        if hook["type"] is SplatResultsHook:
            hook["orbit_frames"] = int(orbit_frames)
    if not progress:
        cfg.custom_hooks = [hook for hook in cfg.custom_hooks if hook["type"] is not RichProgressHook]
    return cfg


def fit_scene(
    data_root: str | Path,
    out_dir: str | Path,
    iterations: int = 1000,
    downscale: float = 1.0,
    fit: dict | None = None,
    orbit_frames: int = 60,
    resume: bool | str = False,
    progress: bool = True,
    callback: Callable | None = None,
    callback_every: int = 10,
    make_if_missing: bool = False,
) -> FitResult:
    """Train a Gaussian scene on ``data_root`` with mmengine, write the results into ``out_dir``
    (metrics.json, psnr_curve.png, renders/, point_cloud.ply, orbit.mp4, checkpoints) and return them.

    Args:
        fit: ``FitConfig`` field overrides. resume: True continues from the latest checkpoint in
            ``out_dir`` (exactly), a path from that checkpoint. callback: ``fn(runner, outputs)``
            every ``callback_every`` steps (the model is ``runner.model``).
    """
    cfg = scene_config(data_root, iterations, downscale, fit, orbit_frames, progress, make_if_missing)
    runner = build_runner(cfg, work_dir=out_dir, resume=resume)
    if callback is not None:
        runner.register_hook(CallbackHook(callback, callback_every))
    runner.train()
    metrics = json.loads((Path(out_dir) / "metrics.json").read_text())
    return FitResult(runner.model.gaussians, metrics, list(runner.model.curve))
