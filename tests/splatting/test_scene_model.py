"""The mmengine pieces of a scene fit (``splatting.engine``) one at a time: the views dataset, the
scene model's prediction, the metric, the config plumbing of backgrounds, and generating the bundled
scene on first use."""

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate

from mnemovision.engine import build_runner
from mnemovision.splatting.data import synthetic
from mnemovision.splatting.data.scene import load_scene
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene
from mnemovision.splatting.engine import GaussianOptimConstructor, GaussianScene, SceneMetric, SceneViews, SplatResultsHook, scene_config
from mnemovision.splatting.engine.hooks import scene_cameras
from mnemovision.vision.io import read_image

SMALL = SceneSpec(n_views=10, size=24, n_points=300)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene_model")
    make_scene(folder, SMALL)
    return folder


def test_views_dataset_serves_the_split_composited_on_its_background(scene):
    test = SceneViews(str(scene), split="test", background=(0.0, 0.0, 0.0))
    train = SceneViews(str(scene), split="train", background=(0.0, 0.0, 0.0))
    assert (len(test), len(train)) == (2, 8)  # every 8th view is held out: r_000 and r_008
    want = load_scene(scene, background=(0.0, 0.0, 0.0))
    item = test[1]
    assert torch.equal(item["inputs"], want.test[1].image) and torch.equal(item["data_samples"]["viewmat"], want.test[1].viewmat)
    assert item["data_samples"]["index"] == 1 and torch.equal(train[0]["data_samples"]["K"], want.train[0].K)
    raw = read_image(scene / "images" / "r_008.png", mode="keep")
    assert torch.all(item["inputs"][torch.from_numpy(raw[..., 3] == 0)] == 0.0)  # transparent pixels on black
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        SceneViews(str(scene), split="val")


def test_the_config_sets_the_intervals_and_gives_every_loader_the_fit_background(scene):
    cfg = scene_config(scene, iterations=40, fit={"background": [0.2, 0.4, 0.6]}, orbit_frames=0, progress=False)
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval, cfg.default_hooks.checkpoint.interval) == (40, 4, 10)  # 10 and 4 times a run
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert tuple(loader.dataset.background) == (0.2, 0.4, 0.6)
    assert cfg.model.fit["background"] == [0.2, 0.4, 0.6]
    plain = scene_config(scene, iterations=10, orbit_frames=0, progress=False)
    assert "background" not in plain.train_dataloader.dataset  # the dataset's own default: white, as FitConfig's


def test_predictions_are_clamped_renders_on_the_configured_background(scene):
    model = GaussianScene(str(scene), iterations=10, fit={"background": [0.2, 0.4, 0.6]})
    batch = default_collate([SceneViews(str(scene), split="test", background=(0.2, 0.4, 0.6))[i] for i in range(2)])
    with torch.no_grad():
        model.gaussians.opacity_logits.fill_(-30.0)  # nothing drawn: the background shows
    out = model(batch["inputs"], batch["data_samples"])
    assert len(out) == 2 and torch.equal(out[1]["gt"], batch["inputs"][1])
    torch.testing.assert_close(out[0]["pred"], torch.tensor([0.2, 0.4, 0.6]).expand(24, 24, 3))
    with torch.no_grad():
        model.gaussians.opacity_logits.fill_(5.0)
        model.gaussians.sh_dc.fill_(20.0)  # colours far above 1
    out = model(batch["inputs"], batch["data_samples"])
    assert float(out[0]["pred"].max()) == 1.0 and float(out[0]["pred"].min()) >= 0.0
    with pytest.raises(ValueError, match="mode='predict' with data_samples"):
        model(batch["inputs"], batch["data_samples"], mode="loss")


def test_run_state_round_trips_and_the_optimizer_builder_takes_wrapped_scenes(scene):
    """The run state beyond the parameters (step, SH degree, training time, PSNR curve, density
    statistics) comes back from ``get_extra_state``; the optimizer builder unwraps a model wrapper
    (DistributedDataParallel under torchrun) and names any other model it is given."""
    model = GaussianScene(str(scene), iterations=10)
    model.step, model.train_seconds, model.curve = 7, 12.5, [(6, 21.25)]
    model.gaussians.active_sh_degree = 2
    other = GaussianScene(str(scene), iterations=10)
    other.set_extra_state(model.get_extra_state())
    assert (other.step, other.train_seconds, other.curve, other.gaussians.active_sh_degree) == (7, 12.5, [(6, 21.25)], 2)
    build = GaussianOptimConstructor({})
    groups = build(torch.nn.DataParallel(model)).optimizer.param_groups
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in model.gaussians.parameters()}
    with pytest.raises(TypeError, match="GaussianOptimConstructor needs a GaussianScene model, got Linear"):
        build(torch.nn.Linear(2, 2))


def test_the_metric_averages_psnr_and_ssim_over_the_views():
    metric = SceneMetric()
    gt = torch.full((16, 16, 3), 0.5)
    metric.process({}, [{"pred": gt + 0.1, "gt": gt}, {"pred": gt + 0.01, "gt": gt}])  # 20 dB and 40 dB
    assert metric.results[0][0] == pytest.approx(20.0, abs=1e-4) and metric.results[1][0] == pytest.approx(40.0, abs=1e-3)
    assert metric.compute_metrics([(20.0, 0.5), (40.0, 0.9), (30.0, 0.7)]) == pytest.approx({"psnr": 30.0, "ssim": 0.7})


def test_the_bundled_scene_is_generated_where_it_is_missing(tmp_path, monkeypatch):
    made = []

    def small_scene(folder, spec=SceneSpec()):
        made.append(spec)
        return make_scene(folder, SMALL)

    monkeypatch.setattr(synthetic, "make_scene", small_scene)
    with pytest.raises(FileNotFoundError):
        SceneViews(str(tmp_path / "absent"), split="train")  # only when asked
    views = SceneViews(str(tmp_path / "new"), split="train", make_if_missing=True)
    assert len(views) == 8 and (tmp_path / "new" / "transforms.json").is_file() and made == [SceneSpec()]
    SceneViews(str(tmp_path / "new"), split="test", make_if_missing=True)
    assert len(made) == 1  # present: not generated again
    assert np.isfinite(views[0]["inputs"].numpy()).all()


def test_scenes_are_cached_by_their_absolute_folder(tmp_path, monkeypatch):
    """The same relative path from two working directories is two scenes, not one cached answer."""
    from mnemovision.splatting.engine.scene_model import scene_for

    for name, views in (("a", 9), ("b", 10)):
        make_scene(tmp_path / name / "scene", SceneSpec(n_views=views, size=24, n_points=200))
    monkeypatch.chdir(tmp_path / "a")
    first = scene_for("scene")
    monkeypatch.chdir(tmp_path / "b")
    second = scene_for("scene")
    assert (len(first.train), len(second.train)) == (7, 8)
    assert scene_for(str(tmp_path / "b" / "scene")) is second  # loaded once, however the folder is named


class FakeLoop:
    def __init__(self, iteration):
        self.iter = iteration


class FakeRunner:
    """What SplatResultsHook reads of a runner: the model, the iteration and the train loop."""

    def __init__(self, model, iteration, train_loop=True):
        self.model, self.iter, self.distributed = model, iteration, False
        self.train_loop = FakeLoop(iteration) if train_loop else None


def test_the_results_hook_times_steps_and_keeps_one_curve_point_per_validated_step():
    model = SimpleNamespace(train_seconds=1.0, curve=[(5, 10.0)])
    hook = SplatResultsHook()
    hook.before_train_iter(FakeRunner(model, 9), 0)
    time.sleep(0.02)
    hook.after_train_iter(FakeRunner(model, 9), 0)
    assert 1.02 <= model.train_seconds < 1.5  # the step's time is added to what was there
    hook.after_val_epoch(FakeRunner(model, 10), {"splat/psnr": 20.0})
    hook.after_val_epoch(FakeRunner(model, 10), {"splat/psnr": 21.0})  # validated again at the same step (a resumed, finished run)
    assert model.curve == [(5, 10.0), (10, 21.0)]
    hook.after_val_epoch(FakeRunner(model, 0), {"splat/psnr": 5.0})  # runner.val() before any training
    hook.after_val_epoch(FakeRunner(model, 12, train_loop=False), {"splat/psnr": 5.0})  # a val-only runner
    hook.after_val_epoch(FakeRunner(model, 12), {"other/psnr": 5.0})
    assert model.curve == [(5, 10.0), (10, 21.0)]


def test_a_finished_run_reports_its_views_time_and_metrics_to_the_message_hub(scene, tmp_path):
    cfg = scene_config(scene, iterations=4, orbit_frames=0, progress=False)
    runner = build_runner(cfg, work_dir=tmp_path, cfg_options={"log_level": "ERROR"})
    runner.train()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["iterations"], metrics["train_views"], metrics["test_views"], metrics["width"], metrics["height"]) == (4, 8, 2, 24, 24)
    assert 0 < metrics["train_seconds"] < 60 and metrics["n_gaussians"] == len(runner.model.gaussians)
    assert runner.message_hub.get_info("splat_metrics") == metrics
    assert runner.message_hub.get_scalar("train/n_gaussians").current() == len(runner.model.gaussians)  # logged each step
    cameras = scene_cameras(runner.model.scene())
    assert cameras.shape == (10, 4, 4)  # the train and the test views: the orbit of the whole capture
