"""The hook that turns a Gaussian scene run into results: it times the training steps, records the
test PSNR of each validation into the curve, and at the end of training evaluates the test views
(PSNR, SSIM, LPIPS when weights are configured, render FPS) and writes the outputs into the work
dir: metrics.json, config.json, psnr_curve.png, renders/, point_cloud.ply and orbit.mp4."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mnemovision.splatting.fit import FitResult, evaluate, write_outputs


def _scene_model(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


class SplatResultsHook(Hook):
    """Args: orbit_frames: frames of ``orbit.mp4`` (0: no video). orbit_size: its (width, height)."""

    priority = "NORMAL"

    def __init__(self, orbit_frames: int = 60, orbit_size: tuple[int, int] = (256, 256)) -> None:
        self.orbit_frames, self.orbit_size = int(orbit_frames), tuple(orbit_size)
        self._tick = 0.0

    def before_train(self, runner) -> None:
        if runner.distributed:
            raise ValueError("a Gaussian scene fit runs in one process (density control edits the parameters); launch it without torchrun")
        revalidate_resumed_step(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._tick = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        _scene_model(runner).train_seconds += time.perf_counter() - self._tick

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if metrics and "splat/psnr" in metrics and runner.train_loop is not None and getattr(runner.train_loop, "iter", 0) > 0:
            model = _scene_model(runner)
            model.curve = [(s, p) for s, p in model.curve if s != runner.iter] + [(runner.iter, float(metrics["splat/psnr"]))]

    def after_train(self, runner) -> None:
        model = _scene_model(runner)
        result = final_result(model)
        out_dir = Path(runner.work_dir)
        scene = model.scene()
        write_outputs(result, scene, model.config, out_dir, model.background)
        if self.orbit_frames > 0:
            from mnemovision.splatting.render import render_orbit_video

            render_orbit_video(model.gaussians, out_dir / "orbit.mp4", n_frames=self.orbit_frames, size=self.orbit_size, cameras=scene_cameras(scene))
        runner.message_hub.update_info("splat_metrics", result.metrics)


def revalidate_resumed_step(runner) -> None:
    """Validate the step a run resumes from when it is a validation step missing from the curve.

    mmengine writes a step's checkpoint at the end of the step and validates after it, so the
    checkpoint of a step that is also a validation step lacks that step's curve point; validating
    again here (the restored model is the one that was validated) gives the resumed run the curve
    of an uninterrupted one."""
    loop, step = runner.train_loop, runner.iter
    if step == 0 or runner.val_loop is None:
        return
    interval = getattr(loop, "val_interval", 0)
    due = interval > 0 and step >= getattr(loop, "val_begin", 1) and (step % interval == 0 or step == getattr(loop, "max_iters", None))
    if due and all(s != step for s, _ in _scene_model(runner).curve):
        runner.val_loop.run()


def scene_cameras(scene) -> np.ndarray:
    """World-to-camera [V, 4, 4] of all the scene's views (for orbits like the capture's)."""
    return np.stack([v.viewmat.double().numpy() for v in scene.train + scene.test])


def final_result(model) -> FitResult:
    """Test metrics of a ``GaussianScene`` (LPIPS when its config names local weights)."""
    lpips = None
    if model.config.lpips_weights:
        from mnemovision.vision.metrics import LPIPS

        lpips = LPIPS.from_pretrained(model.config.lpips_weights, model.config.lpips_backbone)
    scene = model.scene()
    metrics = evaluate(model.gaussians, scene.test, model.width, model.height, model.background, lpips=lpips)
    metrics.update(
        n_gaussians=len(model.gaussians), size_mb=model.gaussians.size_mb(), train_seconds=model.train_seconds,
        iterations=model.step, train_views=len(scene.train), test_views=len(scene.test), width=model.width, height=model.height,
    )
    return FitResult(model.gaussians, metrics, list(model.curve))
