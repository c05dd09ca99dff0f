"""Splatting base: the bundled scene, scene loaders, the model's PLY interop, density control, a fit."""

import json

import numpy as np
import pytest
import torch

from mnemovision.splatting.data.scene import load_scene
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene
from mnemovision.splatting.engine import fit_scene
from mnemovision.splatting.fit import FitConfig, make_optimizer
from mnemovision.splatting.gaussians import GaussianModel, load_ply, save_ply
from mnemovision.splatting.gaussians.density import DensityConfig, DensityController
from mnemovision.vision.cameras import write_model
from mnemovision.vision.cameras.colmap import ColmapCamera, ColmapImage, ColmapModel, ColmapPoints, rotmat_to_quat
from mnemovision.vision.errors import FileFormatError
from mnemovision.vision.io import read_image, write_image

TINY = SceneSpec(n_views=16, size=40, n_points=1500)


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundled")
    make_scene(folder, TINY)
    return folder


def test_bundled_scene_is_deterministic_and_real(tiny_scene, tmp_path):
    again = tmp_path / "again"
    make_scene(again, TINY)
    a = read_image(tiny_scene / "images" / "r_003.png", mode="keep")
    b = read_image(again / "images" / "r_003.png", mode="keep")
    assert a.shape == (40, 40, 4) and np.array_equal(a, b)
    assert 0.2 < (a[..., 3] > 0).mean() < 1.0  # objects and ground cover part of the view, the rest is transparent
    assert a[..., :3][a[..., 3] > 0].std() > 20  # textured, not flat colour
    meta = json.loads((tiny_scene / "transforms.json").read_text())
    assert len(meta["frames"]) == 16 and "camera_angle_x" in meta


def test_load_transforms_scene_splits_every_8th_and_composites_alpha(tiny_scene):
    scene = load_scene(tiny_scene, background=(1.0, 0.0, 0.0))
    assert len(scene.test) == 2 and len(scene.train) == 14
    assert scene.test[0].name == "r_000.png" and scene.test[1].name == "r_008.png"
    img = scene.train[0].image
    raw = read_image(tiny_scene / "images" / scene.train[0].name, mode="keep")
    sky = raw[..., 3] == 0
    assert torch.all(img[torch.from_numpy(sky)] == torch.tensor([1.0, 0.0, 0.0]))
    assert scene.points.shape == (1500, 3) and scene.extent > 1.0
    half = load_scene(tiny_scene, downscale=2)
    assert (half.width, half.height) == (20, 20) and half.train[0].image.shape == (20, 20, 3)
    torch.testing.assert_close(half.train[0].K[:2], scene.train[0].K[:2] / 2)


@pytest.mark.parametrize("field, value, message", [("n_views", 0, "an int >= 1"), ("n_views", -1, "an int >= 1"), ("size", 2.0, "an int >= 1"), ("seed", -3, "an int >= 0"), ("radius", float("nan"), "a positive finite"), ("fov_deg", 180.0, "a number in .0, 180.")])
def test_scene_spec_names_a_bad_field(field, value, message):
    with pytest.raises(ValueError, match=f"SceneSpec.{field} must be {message}"):  # -1 views once failed in np.stack
        SceneSpec(**{field: value})


def test_a_scene_with_one_view_is_refused_for_training(tmp_path):
    from mnemovision.splatting.data.synthetic import SceneSpec, make_scene

    make_scene(tmp_path, SceneSpec(n_views=1, size=16))
    with pytest.raises(ValueError, match="1 view.s. with images, all held out for testing .every 8th view is.; a scene needs at least 2"):
        load_scene(tmp_path)  # fitting it once waited forever for a training view
    assert len(load_scene(tmp_path, test_every=0).train) == 1


@pytest.mark.parametrize("downscale", [0.0001, 0.5, float("nan"), float("inf"), -2.0])
def test_load_scene_only_makes_images_smaller(tiny_scene, downscale):
    with pytest.raises(ValueError, match="downscale must be a finite number >= 1"):  # 0.0001 once asked OpenCV for 300 GB
        load_scene(tiny_scene, downscale=downscale)


def test_missing_image_is_skipped_with_a_warning(tiny_scene, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_scene, copy)
    (copy / "images" / "r_005.png").unlink()
    with pytest.warns(UserWarning, match="r_005.png: image missing"):
        scene = load_scene(copy)
    assert len(scene.train) + len(scene.test) == 15


def test_malformed_transforms_names_the_file(tmp_path):
    (tmp_path / "transforms.json").write_text('{"frames": 3}')
    with pytest.raises(FileFormatError, match="transforms.json: frames"):
        load_scene(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither transforms.json nor a COLMAP model"):
        load_scene(tmp_path / "nothing")


def test_point_cloud_without_xyz_names_the_file_and_colours_need_all_three(tiny_scene, tmp_path):
    import shutil

    from mnemovision.splatting.data.scene import read_scene_cameras
    from mnemovision.vision.io import read_ply, write_ply

    copy = tmp_path / "copy"
    shutil.copytree(tiny_scene, copy)
    props = read_ply(copy / "points3d.ply")
    write_ply(copy / "points3d.ply", {k: v for k, v in props.items() if k != "blue"})
    found = read_scene_cameras(copy)
    assert found.points.shape == (1500, 3) and found.colors is None  # KeyError before
    write_ply(copy / "points3d.ply", {k: v for k, v in props.items() if k != "z"})
    with pytest.raises(FileFormatError, match=r"points3d.ply: vertex properties: .*missing \['z'\]"):
        read_scene_cameras(copy)


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_colmap_scene_with_distortion(tmp_path, ext):
    rng = np.random.default_rng(0)
    from mnemovision.vision.cameras import look_at

    cams, images = {1: ColmapCamera(1, "OPENCV", 32, 24, np.array([30.0, 30.0, 16.0, 12.0, -0.1, 0.01, 0.0, 0.0]))}, {}
    for i in range(9):
        view = look_at(np.array([3 * np.cos(i), 3 * np.sin(i), 1.0]), np.zeros(3))
        images[i + 1] = ColmapImage(i + 1, rotmat_to_quat(view[:3, :3]), view[:3, 3], 1, f"img_{i:02d}.png")
        write_image(tmp_path / "images" / f"img_{i:02d}.png", rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    pts = ColmapPoints(np.arange(5), rng.normal(size=(5, 3)), rng.integers(0, 255, (5, 3)).astype(np.uint8), np.zeros(5), [np.zeros((0, 2), np.int64)] * 5)
    write_model(tmp_path / "sparse" / "0", ColmapModel(cams, images, pts), ext)
    scene = load_scene(tmp_path)
    assert scene.source == "colmap" and len(scene.train) == 7 and len(scene.test) == 2
    assert scene.points.shape == (5, 3)
    raw = read_image(tmp_path / "images" / "img_01.png").astype(np.float32) / 255
    assert not np.allclose(scene.train[0].image.numpy(), raw)  # undistorted, not the raw pixels


def test_ply_round_trip_is_bit_exact_for_every_sh_degree(tmp_path):
    for degree in range(4):
        model = GaussianModel.from_points(torch.randn(50, 3), torch.rand(50, 3), max_sh_degree=degree)
        with torch.no_grad():
            model.sh_rest.normal_()
            model.quats.normal_()
        save_ply(tmp_path / "g.ply", model)
        back = load_ply(tmp_path / "g.ply")
        assert back.max_sh_degree == degree
        for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
            assert torch.equal(getattr(back, name), getattr(model, name)), name


def test_ply_without_gaussian_fields_is_rejected(tmp_path):
    from mnemovision.vision.io import write_ply

    write_ply(tmp_path / "points.ply", {"x": np.zeros(3), "y": np.zeros(3), "z": np.zeros(3)})
    with pytest.raises(FileFormatError, match="points.ply.*missing"):
        load_ply(tmp_path / "points.ply")


def test_ply_with_a_gap_in_f_rest_or_non_finite_values_is_rejected(tmp_path):
    from mnemovision.vision.io import read_ply, write_ply

    save_ply(tmp_path / "g.ply", GaussianModel.from_points(torch.randn(20, 3), torch.rand(20, 3), max_sh_degree=1))
    props = read_ply(tmp_path / "g.ply")
    gap = {k: v for k, v in props.items() if k != "f_rest_4"}
    gap["f_rest_9"] = props["f_rest_4"]  # nine f_rest fields, but not 0-8: KeyError before
    write_ply(tmp_path / "gap.ply", gap)
    with pytest.raises(FileFormatError, match="gap.ply: f_rest_.*f_rest_4 missing"):
        load_ply(tmp_path / "gap.ply")
    props["scale_1"][[3, 7]] = np.nan
    write_ply(tmp_path / "nan.ply", props)
    with pytest.raises(FileFormatError, match="nan.ply: vertex values: .*2 Gaussians, the first at row 3"):
        load_ply(tmp_path / "nan.ply")


def test_knn_scales_of_few_points_use_the_others_and_refuse_nan():
    from mnemovision.splatting.gaussians import knn_scales

    two = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    torch.testing.assert_close(knn_scales(two), torch.tensor([4.0, 4.0]))  # was the 0.01 fallback
    three = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    torch.testing.assert_close(knn_scales(three), torch.tensor([3.5, 4.0, 4.5]))
    torch.testing.assert_close(knn_scales(two[:1]), torch.tensor([0.01]))
    assert knn_scales(torch.zeros(0, 3)).shape == (0,)
    with pytest.raises(ValueError, match="points must be finite, got NaN or infinity in 1 of 2"):
        knn_scales(torch.tensor([[0.0, 0.0, 0.0], [float("nan"), 0.0, 0.0]]))  # scipy's own message before


def test_gaussian_model_and_orbit_rendering_refuse_arguments_they_would_misuse(tmp_path):
    from mnemovision.splatting.render import orbit_frame, render_path

    with pytest.raises(ValueError, match="max_sh_degree must be an int in 0..3"):  # 4 once built, then failed in the rasterizer
        GaussianModel.from_points(torch.rand(5, 3), torch.zeros(5, 3), max_sh_degree=4)
    with pytest.raises(ValueError, match="max_sh_degree must be an int in 0..3"):  # -1 once torch's negative dimension
        GaussianModel.from_points(torch.rand(5, 3), torch.zeros(5, 3), max_sh_degree=-1)
    for opacity in (0.0, 1.0):  # infinite logits
        with pytest.raises(ValueError, match="init_opacity must be a number in .0, 1."):
            GaussianModel.from_points(torch.rand(5, 3), torch.zeros(5, 3), init_opacity=opacity)
    with pytest.raises(ValueError, match="n must be an int >= 0, got -1"):
        GaussianModel.random_in_box(-1, torch.zeros(3), torch.ones(3))
    model = GaussianModel.random_in_box(50, torch.zeros(3), torch.ones(3), max_sh_degree=0)
    with pytest.raises(ValueError, match="fov_deg must be a number in .0, 180., got 0"):  # once ZeroDivisionError
        render_path(model, np.eye(4)[None], (8, 8), fov_deg=0, progress=False)
    with pytest.raises(ValueError, match="background must be 3 values"):
        render_path(model, np.eye(4)[None], (8, 8), background=(1.0, 1.0), progress=False)
    empty = GaussianModel(*(getattr(model, name).detach()[:0] for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")), 0)
    with pytest.raises(ValueError, match="no Gaussians to orbit around"):  # once an IndexError
        orbit_frame(empty, 0.0, (8, 8))
    cameras = np.stack([np.eye(4), np.eye(4)])
    cameras[1, 0, 3] = 1.0
    assert orbit_frame(empty, 0.0, (8, 8), cameras=cameras).min() == 255  # the background, on the cameras' orbit


def test_density_control_clones_splits_and_prunes_a_constructed_case():
    # Gaussians 0-1 small with big gradients (clone), 2-3 large with big gradients (split),
    # 4 transparent (prune), 5 untouched.
    means = torch.zeros(6, 3)
    model = GaussianModel.from_points(means + torch.arange(6.0)[:, None], torch.rand(6, 3), max_sh_degree=0)
    with torch.no_grad():
        model.log_scales[:] = np.log(0.005)
        model.log_scales[2:4] = np.log(0.5)
        model.opacity_logits[:] = 2.0
        model.opacity_logits[4] = -10.0
    optimizer = make_optimizer(model, FitConfig(), extent=1.0)
    control = DensityController(DensityConfig(refine_start=0, refine_every=1, grad_threshold=1e-3, reset_every=10**9), extent=1.0)
    means2d = torch.zeros(1, 6, 2, requires_grad=True)
    (means2d * torch.tensor([[1.0], [1.0], [1.0], [1.0], [0.0], [0.0]]) * 0.01).sum().backward()
    info = {"means2d": means2d, "visible": torch.ones(1, 6, dtype=torch.bool), "radii": torch.ones(1, 6, 2, dtype=torch.int32)}
    control.observe(info, width=64, height=64)
    report = control.step(1, model, optimizer)
    assert report == {"cloned": 2, "split": 2, "pruned": 1, "reset": False}
    assert len(model) == 6 + 2 + 2 - 1  # +2 clones, 2 splits replace 2 by 4, -1 pruned
    assert torch.allclose(model.scales.amax(-1).sort().values[-4:], torch.full((4,), 0.5 / 1.6))
    # the optimizer follows: every parameter is the model's, with matching state shapes after a step
    model.means.grad = torch.ones_like(model.means)
    optimizer.step()
    assert optimizer.state[model.means]["exp_avg"].shape == model.means.shape


SHORT = {"density": {"refine_start": 20, "refine_stop": 60, "refine_every": 20}}


def test_a_short_fit_lowers_the_loss_and_reaches_a_psnr_floor(tiny_scene, tmp_path):
    before = fit_scene(tiny_scene, tmp_path / "one", iterations=1, fit=SHORT, orbit_frames=0, progress=False).metrics["psnr"]
    result = fit_scene(tiny_scene, tmp_path / "fit", iterations=80, fit=SHORT, orbit_frames=0, progress=False)
    assert result.metrics["psnr"] > before + 2.0
    assert result.metrics["psnr"] > 15.0  # measured 16.5 dB at 80 iterations on this 40x40 scene
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert {"psnr", "ssim", "n_gaussians", "size_mb", "train_seconds", "render_fps"} <= set(metrics)
    assert metrics["iterations"] == 80 and metrics["n_gaussians"] > 1500  # densified beyond the 1500 points
    assert [step for step, _ in result.curve] == [8 * i for i in range(1, 11)]
    assert result.curve[-1][1] > result.curve[0][1]
    assert read_image(tmp_path / "fit" / "psnr_curve.png").shape[2] == 3
    assert read_image(tmp_path / "fit" / "renders" / "r_000.png").shape == (40, 80, 3)
    assert len(load_ply(tmp_path / "fit" / "point_cloud.ply")) == metrics["n_gaussians"]


def test_density_control_respects_the_gaussian_budget():
    model = GaussianModel.from_points(torch.arange(18.0).reshape(6, 3), torch.rand(6, 3), max_sh_degree=0)
    with torch.no_grad():
        model.log_scales[:] = np.log(0.005)
        model.opacity_logits[:] = 2.0
    optimizer = make_optimizer(model, FitConfig(), extent=1.0)
    control = DensityController(DensityConfig(refine_start=0, refine_every=1, grad_threshold=1e-3, reset_every=10**9, max_gaussians=8), extent=1.0)
    means2d = torch.zeros(1, 6, 2, requires_grad=True)
    (means2d * torch.arange(1.0, 7.0)[:, None] * 0.01).sum().backward()  # every Gaussian qualifies
    info = {"means2d": means2d, "visible": torch.ones(1, 6, dtype=torch.bool), "radii": torch.ones(1, 6, 2, dtype=torch.int32)}
    control.observe(info, width=64, height=64)
    report = control.step(1, model, optimizer)
    assert report["cloned"] == 2 and len(model) == 8  # only the two largest gradients fit the budget
    torch.testing.assert_close(model.means[-2:], torch.tensor([[12.0, 13.0, 14.0], [15.0, 16.0, 17.0]]))
