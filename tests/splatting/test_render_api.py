"""Orbit rendering of a Gaussian scene (``splatting.render``) and the application API's scene helpers
(``splatting.api``): values worked out by hand, not by the code under test."""

import math

import numpy as np
import pytest
import torch

from mnemovision.splatting import api
from mnemovision.splatting.data.scene import load_scene
from mnemovision.splatting.data.synthetic import SceneSpec
from mnemovision.splatting.gaussians import GaussianModel
from mnemovision.splatting.render import auto_orbit, orbit_frame, orbit_path, render_orbit_video, render_path
from mnemovision.vision.cameras import orbit, orbit_from_cameras
from mnemovision.vision.io import read_video


def gaussians(means, colors, scale=0.05, opacity=0.99):
    """Isotropic degree-0 Gaussians at ``means`` [N, 3] with RGB ``colors`` [N, 3] (may exceed 1)."""
    means = torch.as_tensor(means, dtype=torch.float32)
    n = len(means)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1)
    sh_dc = ((torch.as_tensor(colors, dtype=torch.float32) - 0.5) / 0.28209479177387814)[:, None]
    logit = math.log(opacity / (1 - opacity))
    return GaussianModel(means, quats, torch.full((n, 3), math.log(scale)), torch.full((n,), logit), sh_dc, torch.zeros(n, 0, 3), 0)


def test_auto_orbit_circles_the_median_at_2_2_times_the_90th_percentile_radius():
    # nine points on a line through (1, 2, 3): the median is t = 1 (the mean, t = 12.2, follows the two outliers)
    t = np.array([-3, -2, -1, 0, 1, 2, 3, 50, 60], dtype=np.float64)
    model = gaussians(np.array([1.0, 2.0, 3.0]) + t[:, None] * np.array([1.0, 0.0, 0.0]), np.full((9, 3), 0.5))
    # distances from the median 0 1 1 2 2 3 4 49 59: the 90th percentile is 49 + 0.2 * (59 - 49) = 51
    want = orbit(np.array([2.0, 2.0, 3.0]), 2.2 * 51 + 1e-6, 5, elevation_deg=25.0, up=np.array([0.0, 0.0, 1.0]), start_deg=30.0)
    np.testing.assert_allclose(auto_orbit(model, 5, start_deg=30.0), want, atol=1e-5)
    np.testing.assert_allclose(orbit_path(model, 5, start_deg=30.0), want, atol=1e-5)  # no cameras: around the Gaussians
    one_camera = np.eye(4)[None]
    np.testing.assert_allclose(orbit_path(model, 5, one_camera, start_deg=30.0), want, atol=1e-5)  # one camera has no orbit


def test_orbit_path_follows_the_scene_cameras_when_there_are_two_or_more():
    cameras = orbit(np.zeros(3), 4.0, 6, elevation_deg=10.0)
    model = gaussians([[50.0, 0.0, 0.0]], [[0.5, 0.5, 0.5]])  # far from the cameras' centre
    path = orbit_path(model, 12, cameras, start_deg=15.0)
    np.testing.assert_allclose(path, orbit_from_cameras(cameras, 12, start_deg=15.0))
    np.testing.assert_allclose(np.linalg.norm(np.linalg.inv(path)[:, :3, 3], axis=1), 4.0, rtol=1e-6)


def brightest_pixel(frame):
    luma = frame.astype(np.int64).sum(-1)
    return np.unravel_index(np.argmax(luma), luma.shape)


def test_render_path_uses_a_pinhole_of_the_given_field_of_view_and_rounds_to_uint8():
    # camera at the origin looking down +z (OpenCV); 90 degrees across 64 px: focal 32, centre (32, 16)
    model = gaussians([[1.0, 0.5, 2.0]], [[2.0, 2.0, 2.0]], scale=0.02)
    background = (0.5, 0.25, 1.0)
    frames = render_path(model, np.eye(4)[None], (64, 32), fov_deg=90.0, background=background, progress=False)
    assert frames.shape == (1, 32, 64, 3) and frames.dtype == np.uint8
    row, col = brightest_pixel(frames[0])
    assert col in (47, 48) and row in (23, 24)  # u = 32 * 1 / 2 + 32 = 48, v = 32 * 0.5 / 2 + 16 = 24: pixel centres at +0.5
    np.testing.assert_array_equal(frames[0, row, col], [255, 255, 255])  # 0.99 * 2 + 0.01 * bg, clamped before the cast
    np.testing.assert_array_equal(frames[0, 0, 0], [128, 64, 255])  # 127.5 and 63.75 round to nearest
    narrow = render_path(model, np.eye(4)[None], (64, 32), fov_deg=60.0, background=background, progress=False)
    row, col = brightest_pixel(narrow[0])
    focal = 32 / math.tan(math.radians(30))  # 55.4 px
    assert abs(col + 0.5 - (32 + focal / 2)) <= 1 and abs(row + 0.5 - (16 + focal / 4)) <= 1


def test_render_path_shows_its_progress_unless_told_not_to(monkeypatch):
    from mnemovision.vision import progress

    shown = []

    def track(items, description, **options):
        shown.append((len(items), description))
        return items

    monkeypatch.setattr(progress, "track", track)
    model = gaussians([[1.0, 0.5, 2.0]], [[2.0, 2.0, 2.0]], scale=0.02)
    quiet = render_path(model, np.stack([np.eye(4)] * 3), (16, 8), progress=False)
    assert shown == []
    np.testing.assert_array_equal(render_path(model, np.stack([np.eye(4)] * 3), (16, 8)), quiet)
    assert shown == [(3, "rendering frames")]


def test_orbit_frame_turns_with_the_angle_and_the_video_holds_the_orbit(tmp_path):
    model = gaussians([[0.6, 0.0, 0.0], [-0.6, 0.0, 0.0], [0.0, 0.6, 0.0]], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], scale=0.15)
    cameras = orbit(np.zeros(3), 3.0, 4, elevation_deg=20.0)
    quarter = orbit_frame(model, 90.0, (48, 48), cameras=cameras)
    np.testing.assert_array_equal(quarter, render_path(model, orbit_from_cameras(cameras, 1, start_deg=90.0), (48, 48), progress=False)[0])
    assert not np.array_equal(quarter, orbit_frame(model, 0.0, (48, 48), cameras=cameras))

    path = render_orbit_video(model, tmp_path / "orbit.mp4", n_frames=8, size=(48, 32), fps=12.0, cameras=cameras)
    assert path == tmp_path / "orbit.mp4"
    video, fps = read_video(path)
    assert video.shape == (8, 32, 48, 3) and fps == pytest.approx(12.0)
    want = render_path(model, orbit_from_cameras(cameras, 8), (48, 32), progress=False)
    assert np.abs(video.astype(np.float64) - want).mean() < 3.0  # H.264 at crf 18
    assert np.abs(video[::-1].astype(np.float64) - want).mean() > 10.0  # and in orbit order


def test_find_scene_root_takes_the_shallowest_scene_and_climbs_out_of_colmap_folders(tmp_path):
    colmap = tmp_path / "zip_a" / "garden" / "sparse" / "0"
    colmap.mkdir(parents=True)
    (colmap / "cameras.bin").write_bytes(b"")
    assert api.find_scene_root(tmp_path / "zip_a") == tmp_path / "zip_a" / "garden"
    text = tmp_path / "zip_b" / "sparse"
    text.mkdir(parents=True)
    (text / "cameras.txt").write_text("")
    assert api.find_scene_root(tmp_path / "zip_b") == tmp_path / "zip_b"  # never above the folder given
    assert api.find_scene_root(text) == text
    nested = tmp_path / "zip_c" / "outer"
    (nested / "inner").mkdir(parents=True)
    (nested / "transforms.json").write_text("{}")
    (nested / "inner" / "transforms.json").write_text("{}")
    (tmp_path / "zip_c" / "a" / "deep").mkdir(parents=True)
    (tmp_path / "zip_c" / "a" / "deep" / "transforms.json").write_text("{}")  # first by name, but deeper
    assert api.find_scene_root(tmp_path / "zip_c") == nested
    (tmp_path / "zip_d").mkdir()
    (tmp_path / "zip_d" / "points.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="zip_d: no transforms.json or COLMAP cameras.bin/cameras.txt inside"):
        api.find_scene_root(tmp_path / "zip_d")


def test_bundled_scene_is_made_once_and_its_cameras_are_the_scenes(tmp_path):
    spec = SceneSpec(n_views=6, size=16, n_points=200)
    folder = api.bundled_scene(tmp_path / "scene", spec)
    assert folder == tmp_path / "scene" and (folder / "transforms.json").is_file()
    stamp = (folder / "transforms.json").stat().st_mtime_ns
    (folder / "marker").write_text("kept")
    assert api.bundled_scene(folder, spec) == folder  # present: not generated again
    assert (folder / "transforms.json").stat().st_mtime_ns == stamp and (folder / "marker").exists()

    cameras = api.scene_cameras_of(folder)
    assert cameras.shape == (6, 4, 4) and cameras.dtype == np.float64
    scene = load_scene(folder, test_every=0)
    loaded = np.stack([v.viewmat.double().numpy() for v in scene.train])
    np.testing.assert_allclose(np.sort(cameras.reshape(6, -1), axis=0), np.sort(loaded.reshape(6, -1), axis=0), atol=1e-6)
