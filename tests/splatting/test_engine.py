"""Gaussian scene training under mmengine: exact resume through density control, config plumbing."""

import pytest
import torch

from mnemovision.engine import allow_mmengine_checkpoints, build_runner
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene
from mnemovision.splatting.engine import scene_config
from mnemovision.splatting.fit import configure

# densifies at steps 10, 20, ..., 50 with splits at each (a budget of 1.25 Gaussians per pixel, 1280,
# would be full after step 10 and leave the steps after a resume nothing to densify)
FIT = {"density": {"refine_start": 5, "refine_stop": 50, "refine_every": 10, "grad_threshold": 4e-4, "max_gaussians": 20000}}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    make_scene(folder, SceneSpec(n_views=10, size=32, n_points=800))
    return folder


def run(scene, work_dir, max_iters, resume=False):
    cfg = scene_config(scene, iterations=60, fit=FIT, orbit_frames=0, progress=False)
    cfg.train_cfg.max_iters = max_iters
    runner = build_runner(cfg, work_dir=work_dir, resume=resume, cfg_options={"log_level": "ERROR"})
    runner.train()
    return runner


def test_resume_through_density_control_matches_an_uninterrupted_run_exactly(scene, tmp_path):
    full = run(scene, tmp_path / "full", 60)
    first_half = run(scene, tmp_path / "split", 35)  # stops between two densification steps
    resumed = run(scene, tmp_path / "split", 60, resume=True)
    a, b = full.model, resumed.model
    # densified in both halves: the second half's steps need the statistics gathered since step 30 and
    # the split sampler's state, both restored from the checkpoint
    assert a.step == b.step == 60 and len(b.gaussians) == len(a.gaussians) > len(first_half.model.gaussians) > 800
    for name, value in a.gaussians.state_dict().items():
        assert torch.equal(b.gaussians.state_dict()[name], value), name
    state_a, state_b = full.optim_wrapper.optimizer.state_dict()["state"], resumed.optim_wrapper.optimizer.state_dict()["state"]
    for index in state_a:
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(state_a[index][key], state_b[index][key])
    assert a.gaussians.active_sh_degree == b.gaussians.active_sh_degree == 3
    assert [s for s, _ in a.curve] == [s for s, _ in b.curve] and torch.allclose(torch.tensor(a.curve), torch.tensor(b.curve))


def test_checkpoints_load_weights_only_and_hold_the_run_state(scene, tmp_path):
    run(scene, tmp_path, 30)
    with allow_mmengine_checkpoints():
        checkpoint = torch.load(tmp_path / "iter_30.pth", weights_only=True)
    extra = checkpoint["state_dict"]["_extra_state"]
    assert extra["step"] == 30 and extra["density"]["generator"].dtype == torch.uint8
    # validated every 6 steps; mmengine writes step 30's checkpoint before validating step 30
    assert extra["train_seconds"] > 0 and extra["curve"][:, 0].tolist() == [6, 12, 18, 24]
    assert checkpoint["state_dict"]["gaussians.means"].shape[0] > 800


def test_fit_overrides_are_checked():
    config = configure(100, 64, 64, {"lambda_dssim": 0.3, "density": {"refine_every": 7}})
    assert config.lambda_dssim == 0.3 and config.density.refine_every == 7 and config.density.refine_stop == 50
    with pytest.raises(ValueError, match="unknown fit config fields \\['lr_mean'\\]"):
        configure(100, 64, 64, {"lr_mean": 1.0})


@pytest.mark.parametrize("override, message", [
    ({"sh_every": 0}, "FitConfig.sh_every must be an int >= 1, got 0"),  # once a ZeroDivisionError at the first step
    ({"density": {"refine_every": 0}}, "DensityConfig.refine_every must be an int >= 1, got 0"),  # likewise, at refine_start
    ({"lambda_dssim": 1.5}, "FitConfig.lambda_dssim must be a number in \\[0, 1\\], got 1.5"),
    ({"lr_means": float("nan")}, "FitConfig.lr_means must be a finite number >= 0, got nan"),
    ({"max_sh_degree": 4}, "FitConfig.max_sh_degree must be an int in 0..3, got 4"),
    ({"background": (1.0, 1.0)}, "FitConfig.background must be 3 values"),
    ({"density": {"min_opacity": -0.1}}, "DensityConfig.min_opacity must be a number in \\[0, 1\\], got -0.1"),
    ({"density": {"reset_every": 0}}, "DensityConfig.reset_every must be an int >= 1, got 0"),  # step % 0 at every step
    ({"density": {"max_gaussians": 0}}, "DensityConfig.max_gaussians must be an int >= 1, got 0"),
    ({"density": {"split_factor": 0.0}}, "DensityConfig.split_factor must be a positive finite number, got 0.0"),  # log(0) scales
    ({"density": {"percent_dense": 0.0}}, "DensityConfig.percent_dense must be a positive finite number, got 0.0"),
    ({"iterations": 0}, "FitConfig.iterations must be an int >= 1, got 0"),
    ({"eval_every": 0}, "FitConfig.eval_every must be an int >= 1, got 0"),
    ({"random_init_points": 0}, "FitConfig.random_init_points must be an int >= 1, got 0"),
    ({"init_opacity": 1.0}, "FitConfig.init_opacity must be a number in \\(0, 1\\), got 1.0"),  # an infinite opacity logit
    ({"background": (0.0, 1.5, 0.0)}, "FitConfig.background must be a number in \\[0, 1\\], got 1.5"),
    ({"density": "dense"}, "FitConfig.density must be a DensityConfig, got str"),
])
def test_fit_values_out_of_range_are_named(override, message):
    with pytest.raises(ValueError, match=message):
        configure(100, 64, 64, override)


def test_scene_config_passes_make_if_missing_and_drops_the_bar_when_asked(tmp_path):
    from mnemovision.engine.hooks import RichProgressHook

    cfg = scene_config(tmp_path / "new", iterations=10, make_if_missing=True)
    assert cfg.model.make_if_missing and all(
        loader.dataset.make_if_missing for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader))
    assert RichProgressHook in [hook["type"] for hook in cfg.custom_hooks]
    quiet = scene_config(tmp_path / "new", iterations=10, progress=False)
    assert RichProgressHook not in [hook["type"] for hook in quiet.custom_hooks] and not quiet.model.make_if_missing


def test_scene_config_refuses_a_negative_run_length_or_orbit(scene):
    with pytest.raises(ValueError, match="iterations must be an int >= 1, got 0"):
        scene_config(scene, iterations=0)
    with pytest.raises(ValueError, match="orbit_frames must be an int >= 0, got -1"):  # once silently no video
        scene_config(scene, iterations=10, orbit_frames=-1)



def test_images_smaller_than_the_ssim_window_are_refused_before_training(scene, tmp_path):
    cfg = scene_config(scene, iterations=10, downscale=3, orbit_frames=0, progress=False)  # 32 px -> 10 px
    with pytest.raises(ValueError, match="images of 10x10 .downscale 3.0. are smaller than the 11x11 window of the SSIM"):
        build_runner(cfg, work_dir=tmp_path, cfg_options={"log_level": "ERROR"})


def test_a_scene_fit_refuses_torchrun(scene, tmp_path, monkeypatch):
    from mnemovision.splatting.engine import SplatResultsHook

    class FakeRunner:
        distributed = True

    with pytest.raises(ValueError, match="one process"):
        SplatResultsHook().before_train(FakeRunner())


def test_lpips_is_scored_when_local_weights_are_given(scene, tmp_path):
    pytest.importorskip("lpips")
    from tests.vision.test_metrics import write_official_layout

    from mnemovision.splatting.engine import fit_scene

    _, backbone_path, lin_path = write_official_layout(tmp_path)
    result = fit_scene(scene, tmp_path / "fit", iterations=2, fit={"lpips_weights": str(lin_path), "lpips_backbone": str(backbone_path)}, orbit_frames=0, progress=False)
    assert 0.0 < result.metrics["lpips"] < 1.5 and "psnr" in result.metrics


def test_a_run_resumed_from_a_validation_step_gets_that_step_validated(scene, tmp_path):
    full = run(scene, tmp_path / "full", 36)
    run(scene, tmp_path / "split", 30)
    resumed = run(scene, tmp_path / "split", 36, resume=tmp_path / "split" / "iter_30.pth")
    assert [s for s, _ in resumed.model.curve] == [s for s, _ in full.model.curve] == [6, 12, 18, 24, 30, 36]
    torch.testing.assert_close(torch.tensor(resumed.model.curve), torch.tensor(full.model.curve), rtol=0, atol=0)
    finished = run(scene, tmp_path / "split", 36, resume=True)  # nothing left to train: the last step's point is restored
    assert [s for s, _ in finished.model.curve] == [6, 12, 18, 24, 30, 36]


def test_the_orbit_video_follows_the_scenes_own_cameras(scene, tmp_path, monkeypatch):
    import numpy as np

    from mnemovision.splatting import render
    from mnemovision.splatting.api import scene_cameras_of
    from mnemovision.splatting.engine import fit_scene

    seen = {}
    monkeypatch.setattr(render, "render_orbit_video", lambda model, out, n_frames, size, cameras: seen.update(n=n_frames, size=size, cameras=cameras))
    fit_scene(scene, tmp_path / "fit", iterations=2, orbit_frames=3, progress=False)
    assert seen["n"] == 3 and seen["size"] == (256, 256)
    cameras = scene_cameras_of(scene)  # all ten, train and test views alike (not an orbit around the Gaussians)
    assert len(seen["cameras"]) == 10
    assert sorted(map(tuple, seen["cameras"].reshape(10, 16).round(5))) == sorted(map(tuple, cameras.reshape(10, 16).round(5)))


class ResumeStandIn:
    """What ``revalidate_resumed_step`` reads of a runner: the loop's schedule, the step, the curve."""

    def __init__(self, step, curve, interval=6, val_begin=1, max_iters=40):
        from types import SimpleNamespace

        self.iter, self.validated = step, 0
        self.train_loop = SimpleNamespace(val_interval=interval, val_begin=val_begin, max_iters=max_iters)
        self.val_loop = SimpleNamespace(run=self.count)
        self.model = SimpleNamespace(curve=curve)

    def count(self):
        self.validated += 1


@pytest.mark.parametrize("step, curve, options, again", [
    (30, [(24, 1.0)], {}, True),  # a validation step missing from the curve
    (30, [(24, 1.0), (30, 2.0)], {}, False),  # already there: not validated twice
    (29, [(24, 1.0)], {}, False),  # not a validation step
    (40, [(36, 1.0)], {}, True),  # the last step is validated though not a multiple of the interval
    (6, [], {"val_begin": 12}, False),  # before validation begins
    (0, [], {"val_begin": 0}, False),  # a fresh run: nothing to restore
])
def test_a_resumed_step_is_validated_only_when_its_curve_point_is_due_and_missing(step, curve, options, again):
    from mnemovision.splatting.engine.hooks import revalidate_resumed_step

    runner = ResumeStandIn(step, curve, **options)
    revalidate_resumed_step(runner)
    assert runner.validated == int(again)
