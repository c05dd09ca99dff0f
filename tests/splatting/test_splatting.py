"""Splatting base: the bundled scene, scene loaders, the model's PLY interop, density control, a fit."""

import json

import numpy as np
import pytest
import torch

from mnemovision.splatting.data.scene import load_scene
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene
from mnemovision.splatting.engine import fit_scene
from mnemovision.splatting.fit import FitConfig, make_optimizer
from mnemovision.splatting.gaussians import GaussianModel, knn_scales, load_ply, save_ply
from mnemovision.splatting.gaussians.model import PARAM_NAMES
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
    shutil.rmtree(copy / "images")
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match="copy: no frame has its image file"):
        load_scene(copy)  # not "0 views, all held out for testing"


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


def test_scene_views_are_sorted_averaged_down_grey_expanded_and_checked_for_size(tiny_scene, tmp_path):
    import shutil

    from mnemovision.vision.io import read_ply

    copy = tmp_path / "copy"
    shutil.copytree(tiny_scene, copy)
    meta = json.loads((copy / "transforms.json").read_text())
    meta["frames"] = meta["frames"][::-1]  # file order is not the split order
    (copy / "transforms.json").write_text(json.dumps(meta))
    grey = read_image(copy / "images" / "r_001.png", mode="L")
    write_image(copy / "images" / "r_001.png", grey)  # a greyscale image among RGBA ones
    scene = load_scene(copy / "transforms.json")  # the file itself, not only its folder
    assert [v.name for v in scene.test] == ["r_000.png", "r_008.png"] and scene.train[0].name == "r_001.png"
    torch.testing.assert_close(scene.train[0].image, torch.from_numpy(grey / 255.0).float()[..., None].expand(40, 40, 3))
    half = load_scene(copy, downscale=2)
    full = scene.train[1].image
    torch.testing.assert_close(half.train[1].image, full.reshape(20, 2, 20, 2, 3).mean((1, 3)), atol=1e-6, rtol=0)  # area averaging
    centres = torch.linalg.inv(torch.stack([v.viewmat.double() for v in scene.train + scene.test]))[:, :3, 3]
    assert scene.extent == pytest.approx(1.1 * float((centres - centres.mean(0)).norm(dim=1).max()), rel=1e-6)
    props = read_ply(copy / "points3d.ply")
    torch.testing.assert_close(scene.colors[:, 0], torch.from_numpy(props["red"] / 255.0).float())
    write_image(copy / "images" / "r_002.png", np.zeros((30, 40, 4), np.uint8))
    with pytest.raises(ValueError, match="r_002.png: image is 40x30, its camera says 40x40"):
        load_scene(copy)


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
    torch.testing.assert_close(scene.colors, torch.from_numpy(pts.rgb / 255.0).float())
    raw = read_image(tmp_path / "images" / "img_01.png").astype(np.float32) / 255
    assert not np.allclose(scene.train[0].image.numpy(), raw)  # undistorted, not the raw pixels
    (tmp_path / "sparse" / "0").rename(tmp_path / "model")
    (tmp_path / "sparse").rmdir()
    (tmp_path / "model").rename(tmp_path / "sparse")  # the model directly in sparse/
    assert len(load_scene(tmp_path).train) == 7


def test_ply_round_trip_is_bit_exact_for_every_sh_degree(tmp_path):
    for degree in range(4):
        model = GaussianModel.from_points(torch.randn(50, 3), torch.rand(50, 3), max_sh_degree=degree)
        with torch.no_grad():
            model.sh_rest.normal_()
            model.quats.normal_()
        save_ply(tmp_path / "g.ply", model)
        back = load_ply(tmp_path / "g.ply")
        assert back.max_sh_degree == back.active_sh_degree == degree  # a loaded scene renders every band it has
        for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
            assert torch.equal(getattr(back, name), getattr(model, name)), name


def test_ply_fields_follow_the_3dgs_layout(tmp_path):
    """The file itself, not only the round trip: the header's property order, and f_rest channel-major
    (3DGS writes features_rest [N, K', 3] transposed: all of red's coefficients, then green's, then blue's)."""
    from mnemovision.vision.io import read_ply

    model = GaussianModel.from_points(torch.randn(4, 3), torch.rand(4, 3), max_sh_degree=1)
    with torch.no_grad():
        model.sh_rest.copy_(torch.arange(3.0)[:, None] + 10 * torch.arange(3.0)[None, :])  # value 10 c + j at coefficient j, channel c
        model.quats.copy_(torch.tensor([0.5, 0.1, 0.2, 0.3]))
        model.log_scales.copy_(torch.tensor([-1.0, -2.0, -3.0]))
    save_ply(tmp_path / "g.ply", model)
    header = (tmp_path / "g.ply").read_bytes().split(b"end_header")[0].decode()
    names = [line.split()[-1] for line in header.splitlines() if line.startswith("property")]
    assert names == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)] + [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    props = read_ply(tmp_path / "g.ply")
    assert [float(props[f"f_rest_{i}"][0]) for i in range(9)] == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 20.0, 21.0, 22.0]
    assert [float(props[f"rot_{i}"][0]) for i in range(4)] == pytest.approx([0.5, 0.1, 0.2, 0.3])  # wxyz, as stored
    assert [float(props[f"scale_{i}"][0]) for i in range(3)] == [-1.0, -2.0, -3.0]  # log scales
    assert float(props["opacity"][0]) == pytest.approx(float(model.opacity_logits[0].detach()))  # the logit


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
    degree4 = {k: v for k, v in props.items() if not k.startswith("f_rest_")} | {f"f_rest_{i}": props["x"] for i in range(72)}
    write_ply(tmp_path / "degree4.ply", degree4)  # a whole SH degree, but 4: past what the rasterizer evaluates
    with pytest.raises(FileFormatError, match="degree4.ply: f_rest_.*SH degree d in 0..3.*72 fields"):
        load_ply(tmp_path / "degree4.ply")
    write_ply(tmp_path / "ten.ply", props | {"f_rest_9": props["x"]})  # 10 fields: 10 // 3 + 1 = 4 looks like degree 1
    with pytest.raises(FileFormatError, match="ten.ply: f_rest_.*10 fields"):
        load_ply(tmp_path / "ten.ply")
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


def test_gaussian_model_from_points_layout_and_refusals():
    """``from_points``: identity quaternions (wxyz), log of the 3-NN scale times ``scale_factor`` on
    every axis, duplicate points floored at 1e-7 (finite log-scales); mismatched colours, a
    non-positive scale factor and parameters of the wrong shape are refused by name."""
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 5.0]])
    model = GaussianModel.from_points(points, torch.rand(5, 3), max_sh_degree=1, scale_factor=2.0)
    assert torch.equal(model.quats.detach(), torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 5))
    torch.testing.assert_close(model.scales.detach(), 2.0 * knn_scales(points)[:, None].expand(5, 3))
    assert bool(torch.isfinite(model.log_scales).all())
    one_point = GaussianModel.from_points(torch.zeros(2, 3), torch.rand(2, 3), max_sh_degree=0)
    torch.testing.assert_close(one_point.log_scales.detach(), torch.full((2, 3), float(np.log(1e-7))))  # two coincident points
    with pytest.raises(ValueError, match=r"points and colors must both be \[N, 3\], got \(5, 3\) and \(4, 3\)"):
        GaussianModel.from_points(points, torch.rand(4, 3))
    for factor in (0.0, -1.0):
        with pytest.raises(ValueError, match="scale_factor must be a positive finite number"):
            GaussianModel.from_points(points, torch.rand(5, 3), scale_factor=factor)
    params = {name: getattr(model, name).detach() for name in PARAM_NAMES}
    with pytest.raises(ValueError, match=r"sh_rest must have shape \[5, 15, 3\], got \[5, 3, 3\]"):
        GaussianModel(*params.values(), 3)
    with pytest.raises(ValueError, match=r"quats must have shape \[5, 4\], got \[5, 3\]"):
        GaussianModel(*(v[:, :3] if k == "quats" else v for k, v in params.items()), 1)
    with pytest.raises(ValueError, match="max_sh_degree must be an int in 0..3, got 4"):
        GaussianModel(*params.values(), 4)
    given = params["means"].clone()
    copy = GaussianModel(*params.values(), 1)  # float32 tensors in: the model holds its own copies
    with torch.no_grad():
        copy.means.add_(1.0)
    assert torch.equal(params["means"], given)


def test_gaussian_model_size_seeds_loading_and_active_degree():
    """``size_mb`` is the float32 parameters in MiB; ``random_in_box`` follows its seed; a state dict
    with another Gaussian count resizes the model, one with another SH degree is refused (strict
    loading); rendering uses the active SH degree, not the maximum."""
    model = GaussianModel.random_in_box(40, torch.zeros(3), torch.ones(3), max_sh_degree=2, seed=3)
    assert model.size_mb() == 40 * (3 + 4 + 3 + 1 + 3 + 8 * 3) * 4 / 2**20
    assert torch.equal(model.means, GaussianModel.random_in_box(40, torch.zeros(3), torch.ones(3), seed=3).means)
    assert not torch.equal(model.means, GaussianModel.random_in_box(40, torch.zeros(3), torch.ones(3), seed=4).means)
    smaller = GaussianModel.random_in_box(7, torch.zeros(3), torch.ones(3), max_sh_degree=2)
    before = list(smaller.parameters())
    smaller.load_state_dict(model.state_dict())
    assert len(smaller) == 40 and torch.equal(smaller.sh_rest, model.sh_rest)
    assert all(a is b for a, b in zip(smaller.parameters(), before))  # the same Parameters: an optimizer on them stays valid
    with pytest.raises(RuntimeError, match="size mismatch for sh_rest"):  # 7 Gaussians of degree 2 get 40 of degree 1
        GaussianModel.random_in_box(7, torch.zeros(3), torch.ones(3), max_sh_degree=2).load_state_dict(GaussianModel.random_in_box(40, torch.zeros(3), torch.ones(3), max_sh_degree=1).state_dict())
    with torch.no_grad():
        model.sh_rest.normal_()
    viewmats = torch.eye(4)[None].clone()
    viewmats[0, 2, 3] = 2.0
    Ks = torch.tensor([[[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]]])
    plain = GaussianModel(*(getattr(model, name).detach() * (name != "sh_rest") for name in PARAM_NAMES), 2)
    assert model.active_sh_degree == 0
    torch.testing.assert_close(model.render(viewmats, Ks, 16, 16)[0], plain.render(viewmats, Ks, 16, 16)[0])
    model.active_sh_degree = 2
    assert not torch.allclose(model.render(viewmats, Ks, 16, 16)[0], plain.render(viewmats, Ks, 16, 16)[0])


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


def density_case(n=3, log_scale=np.log(0.005), **config):
    """``n`` Gaussians one unit apart (opacity 0.88), their optimizer and a controller refining every step from step 1."""
    model = GaussianModel.from_points(torch.arange(3.0 * n).reshape(n, 3), torch.rand(n, 3), max_sh_degree=0)
    with torch.no_grad():
        model.log_scales[:] = log_scale
        model.opacity_logits[:] = 2.0
    optimizer = make_optimizer(model, FitConfig(), extent=1.0)
    settings = dict(refine_start=0, refine_every=1, grad_threshold=1e-3, reset_every=10**9) | config
    return model, optimizer, DensityController(DensityConfig(**settings), extent=1.0)


def observe(control, grads, visible, radii, width=64, height=32):
    """One step's statistics: pixel gradients of the 2-D means [V, N, 2], visibility [V, N], radii [V, N]."""
    means2d = torch.tensor(grads, dtype=torch.float32).requires_grad_(True)
    (means2d * means2d.detach()).sum().backward()  # the gradient of x * x.detach() is x's value
    radii = torch.tensor(radii, dtype=torch.int32)[..., None].expand(-1, -1, 2)
    control.observe({"means2d": means2d, "visible": torch.tensor(visible), "radii": radii}, width=width, height=height)


def test_density_control_clones_splits_and_prunes_a_constructed_case():
    # Gaussians 0-1 small with big gradients (clone), 2-3 large with big gradients (split),
    # 4 transparent (prune), 5 untouched.
    model, optimizer, control = density_case(n=6)
    with torch.no_grad():
        model.log_scales[2:4] = np.log(0.5)
        model.opacity_logits[4] = -10.0
    observe(control, [[[0.01, 0.01]] * 4 + [[0.0, 0.0]] * 2], [[True] * 6], [[1] * 6], width=64, height=64)
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
    model, optimizer, control = density_case(n=6, max_gaussians=8)
    observe(control, [[[0.01 * i, 0.01 * i] for i in range(1, 7)]], [[True] * 6], [[1] * 6], width=64, height=64)  # every Gaussian qualifies
    report = control.step(1, model, optimizer)
    assert report["cloned"] == 2 and len(model) == 8  # only the two largest gradients fit the budget
    torch.testing.assert_close(model.means[-2:], torch.tensor([[12.0, 13.0, 14.0], [15.0, 16.0, 17.0]]))


def test_density_statistics_average_ndc_gradient_norms_over_the_views_that_see_each_gaussian():
    _, _, control = density_case()
    # 64 x 32 pixels: NDC gradients are pixel gradients x (32, 16)
    grads = [[[0.01, 0.0], [0.0, 0.02], [0.03, 0.04]], [[0.01, 0.0], [1.0, 1.0], [0.0, 0.0]]]
    observe(control, grads, [[True, True, True], [True, False, True]], [[3, 5, 1], [4, 0, 2]])
    observe(control, [[[0.0, 0.0]] * 3], [[False, True, True]], [[0, 1, 1]])
    torch.testing.assert_close(control.grad_accum, torch.tensor([0.64, 0.32, (0.96**2 + 0.64**2) ** 0.5]))
    torch.testing.assert_close(control.count, torch.tensor([2.0, 2.0, 3.0]))  # the unseen 1.0 gradient is not counted
    torch.testing.assert_close(control.max_radius, torch.tensor([4.0, 5.0, 2.0]))  # the largest over views and steps


def test_density_control_runs_on_its_schedule_and_its_thresholds_are_inclusive():
    size = float(density_case()[0].scales.detach().amax())  # the Gaussians' size exactly: they count as small
    at_limit = float(torch.sigmoid(torch.tensor(-2.0)))  # Gaussian 2's opacity exactly: it is kept
    model, optimizer, control = density_case(refine_start=2, refine_stop=4, refine_every=2, grad_threshold=0.5, percent_dense=size, min_opacity=at_limit)
    with torch.no_grad():
        model.opacity_logits[2] = -2.0
    for step, grown in ((2, False), (4, True), (6, False)):  # after refine_start, up to refine_stop
        observe(control, [[[1 / 64, 0.0], [0.0, 1 / 64], [0.0, 0.0]]], [[True, True, True]], [[1, 1, 1]])  # NDC norms 0.5, 0.25, 0
        before = len(model)
        report = control.step(step, model, optimizer)
        assert (len(model) > before) == grown, step
        if grown:
            assert report == {"cloned": 1, "split": 0, "pruned": 0, "reset": False}  # 0.5 reaches the 0.5 threshold; 0.25 does not


def test_large_gaussians_are_pruned_only_after_an_opacity_reset_and_the_most_opaque_survives():
    model, optimizer, control = density_case(n=4, grad_threshold=10.0, reset_every=3, max_world_scale=0.05, max_screen_radius=20.0, reset_opacity=0.01)
    with torch.no_grad():
        model.log_scales[1] = np.log(0.1)  # larger than 0.05 x extent
        model.opacity_logits[3] = 3.0
    radii = [[1, 1, 30, 1]]  # Gaussian 2 covers 30 pixels
    observe(control, [[[0.0, 0.0]] * 4], [[True] * 4], radii)
    assert control.step(1, model, optimizer)["pruned"] == 0  # no reset yet: large is allowed
    optimizer.state[model.opacity_logits] = {"step": torch.tensor(1.0), "exp_avg": torch.ones(4), "exp_avg_sq": torch.ones(4)}
    with torch.no_grad():
        model.opacity_logits[0] = -6.0  # already below the reset value: stays where it is
    before = model.opacity_logits.detach().clone()
    assert control.step(3, model, optimizer)["reset"] and control.resets == 1
    torch.testing.assert_close(model.opacity_logits.detach(), torch.minimum(before, torch.logit(torch.tensor(0.01))))
    assert not optimizer.state[model.opacity_logits]["exp_avg"].any() and not optimizer.state[model.opacity_logits]["exp_avg_sq"].any()
    observe(control, [[[0.0, 0.0]] * 4], [[True] * 4], radii)
    report = control.step(4, model, optimizer)
    assert report["pruned"] == 3 and len(model) == 1  # 0 transparent, 1 too large in the world, 2 on screen
    torch.testing.assert_close(model.means.detach(), torch.tensor([[9.0, 10.0, 11.0]]))
    with torch.no_grad():
        model.opacity_logits[:] = -10.0
    observe(control, [[[0.0, 0.0]]], [[True]], [[1]])
    assert control.step(5, model, optimizer)["pruned"] == 0 and len(model) == 1  # never an empty scene
    model2, optimizer2, control2 = density_case(n=3, grad_threshold=10.0)
    with torch.no_grad():
        model2.opacity_logits[:] = torch.tensor([-9.0, -7.0, -8.0])
    observe(control2, [[[0.0, 0.0]] * 3], [[True] * 3], [[1, 1, 1]])
    control2.step(1, model2, optimizer2)
    torch.testing.assert_close(model2.means.detach(), torch.tensor([[3.0, 4.0, 5.0]]))  # the most opaque is kept
    assert control2.step(2 * 10**9, model2, optimizer2)["reset"] is False  # a multiple of reset_every, past refine_stop


def test_splits_sample_along_the_rotated_axes_clones_copy_and_new_adam_state_is_zero():
    model, optimizer, control = density_case(n=2, grad_threshold=0.1, percent_dense=0.01, max_world_scale=10.0)
    control.resets = 1  # the size limits apply (and see the split Gaussians' radii)
    with torch.no_grad():
        model.log_scales[1] = torch.log(torch.tensor([0.5, 1e-4, 1e-4]))  # long along its own x
        model.quats[1] = torch.tensor([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])  # rotated 90 degrees about z
    for p in model.parameters():
        optimizer.state[p] = {"step": torch.tensor(1.0), "exp_avg": torch.ones_like(p), "exp_avg_sq": torch.ones_like(p)}
    observe(control, [[[0.01, 0.0], [0.01, 0.0]]], [[True, True]], [[1, 1]])
    report = control.step(1, model, optimizer)
    assert (report["cloned"], report["split"]) == (1, 1) and len(model) == 4
    means = model.means.detach()
    torch.testing.assert_close(means[:2], torch.tensor([[0.0, 1.0, 2.0]] * 2))  # the original and its clone
    offsets = means[2:] - torch.tensor([3.0, 4.0, 5.0])
    assert (offsets[:, 1].abs() > 20 * offsets[:, [0, 2]].abs().amax(1)).all()  # along world y, the rotated x
    assert not torch.allclose(offsets[0], offsets[1])  # two samples
    torch.testing.assert_close(model.scales[2:].detach(), torch.tensor([[0.5, 1e-4, 1e-4]] * 2) / 1.6)
    for p in model.parameters():
        state = optimizer.state[p]
        assert state["exp_avg"][0].eq(1).all() and not state["exp_avg"][1:].any(), "kept: its moments; new: zero"


def test_density_state_resumes_the_split_samples_and_the_reset_count():
    model, optimizer, control = density_case(n=1, log_scale=np.log(0.5), grad_threshold=0.1, reset_every=1)
    observe(control, [[[0.01, 0.0]]], [[True]], [[1]])
    state = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in control.state_dict().items()}
    control.step(1, model, optimizer)
    model_b, optimizer_b, control_b = density_case(n=1, log_scale=np.log(0.5), grad_threshold=0.1, reset_every=1)
    control_b.generator.manual_seed(123)
    control_b.load_state_dict(state)
    control_b.step(1, model_b, optimizer_b)
    assert control_b.resets == control.resets == 1 and torch.equal(model_b.means, model.means)
    control_c = density_case(n=1)[2]
    control_c.load_state_dict(control.state_dict())
    assert control_c.resets == 1


def test_density_statistics_restart_when_the_model_changes_size_and_skip_steps_without_gradients():
    _, _, control = density_case()
    observe(control, [[[0.01, 0.0]] * 3], [[True] * 3], [[1, 1, 1]])
    observe(control, [[[0.02, 0.0]] * 5], [[True] * 5], [[2] * 5])  # five Gaussians now (a model loaded in between)
    torch.testing.assert_close(control.grad_accum, torch.full((5,), 0.64))  # this step's alone, not a shape error
    torch.testing.assert_close(control.count, torch.ones(5))
    means2d = torch.zeros(1, 5, 2, requires_grad=True)  # no backward through it: nothing to add
    control.observe({"means2d": means2d, "visible": torch.ones(1, 5, dtype=torch.bool), "radii": torch.ones(1, 5, 2, dtype=torch.int32)}, width=64, height=32)
    torch.testing.assert_close(control.count, torch.ones(5))
    radii = torch.tensor([[[3, 9], [7, 2], [1, 1], [1, 1], [1, 1]]], dtype=torch.int32)  # x and y radii differ
    means2d = torch.zeros(1, 5, 2, requires_grad=True)
    means2d.sum().backward()
    control.observe({"means2d": means2d, "visible": torch.ones(1, 5, dtype=torch.bool), "radii": radii}, width=64, height=32)
    torch.testing.assert_close(control.max_radius, torch.tensor([9.0, 7.0, 2.0, 2.0, 2.0]))  # the larger of the two


def test_a_model_already_over_the_budget_grows_no_further():
    model, optimizer, control = density_case(n=6, max_gaussians=4)  # e.g. a checkpoint from a larger budget
    observe(control, [[[0.01, 0.01]] * 6], [[True] * 6], [[1] * 6])
    report = control.step(1, model, optimizer)  # once torch.topk with k = -2
    assert (report["cloned"], report["split"], len(model)) == (0, 0, 6)


def test_new_gaussians_are_not_pruned_for_their_parents_screen_radius():
    """A clone or split child has not been rendered yet: its radius is unknown (0), not its parent's."""
    model, optimizer, control = density_case(n=3, grad_threshold=0.1, max_screen_radius=20.0, max_world_scale=10.0)
    control.resets = 1  # the size limits apply
    with torch.no_grad():
        model.log_scales[1] = np.log(0.5)  # large: split; Gaussian 0 small: cloned; 2 has no gradient
    observe(control, [[[0.01, 0.0], [0.01, 0.0], [0.0, 0.0]]], [[True] * 3], [[30, 30, 30]])  # all 30 px wide
    report = control.step(1, model, optimizer)
    assert (report["cloned"], report["split"]) == (1, 1)
    assert report["pruned"] == 2 and len(model) == 3  # Gaussians 0 and 2; the clone and both children stay
    torch.testing.assert_close(model.means[0].detach(), torch.tensor([0.0, 1.0, 2.0]))  # the clone, at its parent's place
    assert (model.means[1:].detach() - torch.tensor([3.0, 4.0, 5.0])).abs().amax() < 3.0  # the two children of 1
