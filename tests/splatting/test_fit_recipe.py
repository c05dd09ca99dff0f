"""The 3DGS recipe's pieces (``splatting.fit``) one at a time: the default schedule, overrides, the
initial model, the optimizer and its position-rate decay, evaluation, one training step and the
written outputs. Expected values are worked out by hand or traced through recording stand-ins."""

import json
import math

import numpy as np
import pytest
import torch

from mnemovision.kernels.gaussians.ref import SH_C0
from mnemovision.splatting.data.scene import SceneData, View
from mnemovision.splatting.fit import (
    FitConfig,
    FitResult,
    configure,
    evaluate,
    initial_model,
    make_optimizer,
    means_lr,
    recipe,
    train_iteration,
    write_outputs,
)
from mnemovision.splatting.gaussians import GaussianModel, load_ply
from mnemovision.vision.cameras import intrinsics_matrix, look_at
from mnemovision.vision.io import read_image
from mnemovision.vision.metrics import ssim


def test_recipe_scales_3dgs_schedule_to_the_run_and_the_image():
    long = recipe(4000, 100, 80)
    d = long.density
    assert (d.refine_start, d.refine_stop, d.refine_every, d.reset_every) == (200, 2000, 100, 1333)
    assert d.max_gaussians == 10_000  # 1.25 per pixel of one 100 x 80 view
    assert (long.iterations, long.eval_every, long.sh_every) == (4000, 400, 1000)
    short = recipe(1000, 2000, 1000)
    assert short.density.reset_every == 10**9  # no opacity reset below 3000 steps
    assert short.density.max_gaussians == 1_000_000  # 2.5 million capped
    assert recipe(3000, 8, 8).density.reset_every == 1000 and recipe(2999, 8, 8).density.reset_every == 10**9
    tiny = recipe(10, 8, 8)
    assert (tiny.density.refine_start, tiny.density.refine_stop, tiny.eval_every, tiny.sh_every) == (1, 5, 1, 2)


def test_configure_merges_density_overrides_into_the_recipe_and_makes_the_background_a_float_tuple():
    config = configure(4000, 100, 80, {"density": {"refine_every": 50}, "background": [0, 1, 0], "lr_opacity": 0.01})
    assert config.density.refine_every == 50 and config.density.refine_start == 200 and config.density.max_gaussians == 10_000
    assert config.background == (0.0, 1.0, 0.0) and all(type(v) is float for v in config.background)
    assert config.lr_opacity == 0.01 and config.eval_every == 400
    assert configure(4000, 100, 80) == recipe(4000, 100, 80)


def view(name, eye, size=16, image=None):
    K = torch.from_numpy(intrinsics_matrix(20.0, 20.0, size / 2, size / 2)).float()
    viewmat = torch.from_numpy(look_at(np.asarray(eye, dtype=np.float64), np.zeros(3), up=(0.0, 1.0, 0.0))).float()
    image = torch.full((size, size, 3), 0.5) if image is None else image
    return View(name, image, viewmat, K)


def scene_of(views, points=None, colors=None, extent=1.1, test=()):
    size = views[0].image.shape[0]
    return SceneData(list(views), list(test), points, colors, extent, size, size, "test")


def test_initial_model_takes_the_point_cloud_or_fills_the_cameras_view_volume():
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.4, 0.6]])
    config = FitConfig(max_sh_degree=2, init_opacity=0.3, random_init_points=2000)
    views = [view("a", [0.0, 0.0, 3.0]), view("b", [2.0, 0.0, 3.0])]
    model = initial_model(scene_of(views, points, colors), config)
    torch.testing.assert_close(model.means.detach(), points)
    torch.testing.assert_close(model.sh_dc.detach()[:, 0] * SH_C0 + 0.5, colors)
    torch.testing.assert_close(model.opacities.detach(), torch.full((4,), 0.3))
    assert model.max_sh_degree == 2
    grey = initial_model(scene_of(views, points, None), config)
    torch.testing.assert_close(grey.sh_dc.detach()[:, 0] * SH_C0 + 0.5, torch.full((4, 3), 0.5))

    # no points: the box centred on the cameras' mean centre (1, 0, 3), half side extent / 1.1 = 1
    random = initial_model(scene_of(views, extent=1.1), config)
    means = random.means.detach()
    assert len(random) == 2000
    lo, hi = torch.tensor([0.0, -1.0, 2.0]), torch.tensor([2.0, 1.0, 4.0])
    assert bool(((means >= lo) & (means <= hi)).all())
    assert bool((means.min(0).values < lo + 0.05).all() and (means.max(0).values > hi - 0.05).all())
    again = initial_model(scene_of(views, extent=1.1), config)
    torch.testing.assert_close(again.means, random.means)  # seeded
    no_points = initial_model(scene_of(views, points[:0], colors[:0], extent=1.1), config)  # an empty point cloud
    torch.testing.assert_close(no_points.means, random.means)  # fills the view volume too


def test_the_optimizer_has_3dgs_rates_per_parameter_and_the_position_rate_decays_log_linearly():
    model = GaussianModel.from_points(torch.rand(5, 3), torch.rand(5, 3), max_sh_degree=1)
    config = FitConfig(iterations=100)
    optimizer = make_optimizer(model, config, extent=3.0)
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates == {"means": 1.6e-4 * 3.0, "sh_dc": 2.5e-3, "sh_rest": 2.5e-3 / 20, "opacity_logits": 0.05, "log_scales": 5e-3, "quats": 1e-3}
    assert all(g["eps"] == 1e-15 for g in optimizer.param_groups)
    named = {g["name"]: g["params"][0] for g in optimizer.param_groups}
    assert named["means"] is model.means and named["quats"] is model.quats and named["sh_rest"] is model.sh_rest
    assert means_lr(0, config, 3.0) == pytest.approx(3.0 * 1.6e-4)
    assert means_lr(50, config, 3.0) == pytest.approx(3.0 * 1.6e-5)  # halfway: the geometric mean
    assert means_lr(75, config, 3.0) == pytest.approx(3.0 * 1.6e-4 * 0.01**0.75)
    assert means_lr(100, config, 3.0) == pytest.approx(3.0 * 1.6e-6)
    assert means_lr(500, config, 3.0) == pytest.approx(3.0 * 1.6e-6) and means_lr(-5, config, 3.0) == pytest.approx(3.0 * 1.6e-4)


class FixedRenders:
    """A stand-in model: ``render`` returns the image stored for the view (keyed by its camera's x)."""

    def __init__(self, renders):
        self.renders = renders

    def render(self, viewmats, Ks, width, height, background=None):
        camera_x = round(float(torch.linalg.inv(viewmats[0])[0, 3]))
        rgb = self.renders[camera_x][None]
        return rgb, torch.ones_like(rgb[..., :1]), {}


def test_evaluate_averages_clamped_view_scores_and_scores_lpips_on_nchw():
    size = 16
    grey = torch.full((size, size, 3), 0.5)
    views, renders = [], {}
    for x, offset in enumerate((0.1, 0.1, 0.001)):  # PSNR 20, 20 and 60 dB: mean 33.3, median 20
        views.append(view(f"v{x}", [float(x), 0.0, 3.0], size, grey))
        renders[x] = grey + offset
    truth = torch.full((size, size, 3), 0.9)
    truth[0, 0] = 1.0
    render = torch.full((size, size, 3), 0.91)
    render[0, 0] = 1.5  # clamped to 1: no error there
    views.append(view("v3", [3.0, 0.0, 3.0], size, truth))
    renders[3] = render
    seen, peaks = [], []

    def lpips(pred, gt):
        seen.append(tuple(pred.shape))
        peaks.append(float(pred.max()))
        return (pred - gt).abs().mean()

    scores = evaluate(FixedRenders(renders), views, size, size, torch.ones(3), lpips=lpips)
    psnr_clamped = -10 * math.log10(1e-4 * 255 / 256)
    assert scores["psnr"] == pytest.approx((20 + 20 + 60 + psnr_clamped) / 4, abs=1e-3)
    assert seen == [(1, 3, size, size)] * 4 and peaks == pytest.approx([0.6, 0.6, 0.501, 1.0])  # clamped before LPIPS too
    assert scores["lpips"] == pytest.approx((0.1 + 0.1 + 0.001 + 0.01 * 255 / 256) / 4, abs=1e-5)
    assert 0 < scores["ssim"] < 1 and scores["render_fps"] > 0
    empty = evaluate(FixedRenders({}), [], size, size, torch.ones(3))
    assert set(empty) == {"psnr", "ssim", "render_fps"} and all(math.isnan(v) for v in empty.values())


class RecordingDensity:
    """A stand-in density controller: records what ``observe`` and ``step`` were given."""

    def __init__(self):
        self.calls = []

    def observe(self, info, width, height):
        self.calls.append(("observe", width, height, info["means2d"].grad is not None))

    def step(self, step, model, optimizer):
        self.calls.append(("step", step, all(p.grad is None for p in model.parameters())))


def test_a_training_step_takes_the_l1_dssim_loss_and_keeps_the_schedules():
    torch.manual_seed(0)
    size = 16
    target = torch.rand(size, size, 3)
    train_view = view("t", [0.3, 0.2, 2.5], size, target)
    model = GaussianModel.from_points(torch.rand(60, 3) - 0.5, torch.rand(60, 3), max_sh_degree=2)
    config = FitConfig(iterations=10, sh_every=2, lambda_dssim=0.3)
    optimizer = make_optimizer(model, config, extent=2.0)
    density = RecordingDensity()
    background = torch.tensor([0.2, 0.3, 0.4])
    degrees = []
    for step in range(1, 7):
        with torch.no_grad():
            rgb = model.render(train_view.viewmat[None], train_view.K[None], size, size, background=background[None])[0][0]
        pred, gt = rgb.permute(2, 0, 1), target.permute(2, 0, 1)
        want = 0.7 * (pred - gt).abs().mean() + 0.3 * (1 - ssim(pred, gt, padding="same"))
        before = model.means.detach().clone()
        loss = train_iteration(model, optimizer, density, train_view, step, config, 2.0, background)
        assert not loss.requires_grad and float(loss) == pytest.approx(float(want), rel=1e-5)
        assert not torch.equal(model.means.detach(), before)  # Adam stepped
        assert optimizer.param_groups[0]["lr"] == pytest.approx(means_lr(step, config, 2.0))
        degrees.append(model.active_sh_degree)
    assert degrees == [0, 1, 1, 2, 2, 2]  # up every 2 steps, up to max_sh_degree
    assert density.calls == [call for step in range(1, 7) for call in (("observe", size, size, True), ("step", step, True))]


def test_outputs_hold_the_metrics_config_curve_renders_beside_the_truth_and_the_ply(tmp_path):
    size = 16
    truth = torch.zeros(size, size, 3)
    truth[:, :, 1] = torch.linspace(0, 1, size)[None, :]
    test_view = view("images/r_007.png", [0.0, 0.5, 2.5], size, truth)
    model = GaussianModel.from_points(torch.rand(40, 3) - 0.5, torch.rand(40, 3), max_sh_degree=0, init_opacity=0.5)
    scene = scene_of([view("a", [0.0, 0.0, 3.0], size)], test=[test_view])
    config = FitConfig(iterations=3)
    background = torch.tensor([1.0, 0.0, 1.0])
    metrics = {"psnr": 12.5, "n_gaussians": 40}
    write_outputs(FitResult(model, metrics, []), scene, config, tmp_path / "a", background)
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == metrics
    assert json.loads((tmp_path / "a" / "config.json").read_text())["iterations"] == 3
    assert not (tmp_path / "a" / "psnr_curve.png").exists()  # no curve, no plot
    side = read_image(tmp_path / "a" / "renders" / "r_007.png").astype(np.float64) / 255
    with torch.no_grad():
        render = model.render(test_view.viewmat[None], test_view.K[None], size, size, background=background[None])[0][0].clamp(0, 1)
    assert side.shape == (size, 2 * size, 3)
    np.testing.assert_allclose(side[:, :size], render.numpy(), atol=0.5 / 255 + 1e-6)  # render left
    np.testing.assert_allclose(side[:, size:], truth.numpy(), atol=0.5 / 255 + 1e-6)  # truth right
    assert len(load_ply(tmp_path / "a" / "point_cloud.ply")) == 40

    write_outputs(FitResult(model, metrics, [(1, 10.0), (2, 11.0)]), scene, config, tmp_path / "b", background)
    assert read_image(tmp_path / "b" / "psnr_curve.png").shape[2] == 3


def test_render_fps_counts_the_views_rendered_over_the_rendering_time(monkeypatch):
    import time

    size = 16
    grey = torch.full((size, size, 3), 0.5)
    views = [view(f"v{x}", [float(x), 0.0, 3.0], size, grey) for x in range(3)]
    ticks = iter(np.arange(0.0, 100.0, 0.25))  # every clock read 0.25 s later: each render takes 0.25 s
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))
    scores = evaluate(FixedRenders({x: grey for x in range(3)}), views, size, size, torch.ones(3))
    assert scores["render_fps"] == pytest.approx(3 / 0.75)
