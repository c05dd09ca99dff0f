"""The splatting tab's functions, without a browser: upload a scene zip, train with live updates, orbit."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from mnemovision.demos import splat_tab
from mnemovision.splatting.data.synthetic import SceneSpec, make_scene


@pytest.fixture(scope="module")
def scene_zip(tmp_path_factory):
    root = tmp_path_factory.mktemp("zip")
    make_scene(root / "my_scene", SceneSpec(n_views=10, size=24, n_points=500))
    path = root / "my_scene.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in (root / "my_scene").rglob("*"):
            archive.write(file, file.relative_to(root))  # files under one top-level folder, as zips usually are
    return path


def test_train_on_an_uploaded_zip_streams_progress_then_orbits(scene_zip, tmp_path):
    calls = []
    steps = list(splat_tab.train(splat_tab.UPLOAD, str(scene_zip), 20, tmp_path, progress=lambda *a, **k: calls.append((a, k))))
    live = [s for s in steps if s[0].startswith("step ")]
    assert [s[0].split()[1] for s in live] == ["10/20", "20/20"]
    assert calls == [(((10, 20),), {"desc": "fitting Gaussians"}), (((20, 20),), {"desc": "fitting Gaussians"})]  # gradio's bar
    assert all(s[1].shape == (256, 256, 3) and s[1].dtype == np.uint8 for s in live)
    status, preview, table, state = steps[-1]
    assert status.startswith("done: 20 steps") and "| psnr |" in table and "| n_gaussians |" in table
    assert state["cameras"].shape == (10, 4, 4)
    # each upload unpacks into its own folder, each (scene, steps) fit writes its own results
    assert (tmp_path / "upload_my_scene" / "my_scene" / "transforms.json").exists()
    assert state["ply"] == str(tmp_path / "fit_my_scene_20" / "point_cloud.ply") and f"`{tmp_path / 'fit_my_scene_20'}`" in status
    a, b = splat_tab.orbit_view(state, 0.0), splat_tab.orbit_view(state, 90.0)
    assert a.shape == (256, 256, 3) and not np.array_equal(a, b)  # the slider moves the camera
    assert (a < 250).any(axis=-1).mean() > 0.05  # something is in view, not only background


def test_a_ply_upload_goes_straight_to_the_orbit(scene_zip, tmp_path):
    steps = list(splat_tab.train(splat_tab.UPLOAD, str(scene_zip), 10, tmp_path))
    ply = steps[-1][3]["ply"]
    (status, frame, _, state), = list(splat_tab.train(splat_tab.UPLOAD, ply, 10, tmp_path / "again"))
    assert status.startswith("Loaded **point_cloud.ply**") and frame.shape == (256, 256, 3)
    assert state["cameras"] is None and splat_tab.orbit_view(state, 45.0).shape == (256, 256, 3)
    upper = tmp_path / "SCENE.PLY"
    upper.write_bytes(Path(ply).read_bytes())
    (status, _, _, upper_state), = list(splat_tab.train(splat_tab.UPLOAD, str(upper), 10, tmp_path / "again"))
    assert status.startswith("Loaded **SCENE.PLY**")  # the extension in any case
    splat_tab.orbit_view(upper_state, 0.0)
    assert list(splat_tab._PLY_CACHE) == [str(upper)]  # one scene held at a time


def test_bad_uploads_are_explained(tmp_path):
    (status, *_), = list(splat_tab.train(splat_tab.UPLOAD, None, 10, tmp_path))
    assert "Upload a scene zip" in status
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    (status, *_), = list(splat_tab.train(splat_tab.UPLOAD, str(tmp_path / "junk.zip"), 10, tmp_path))
    assert status.startswith("**Error**")
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("readme.txt", "no scene here")
    (status, *_), = list(splat_tab.train(splat_tab.UPLOAD, str(tmp_path / "empty.zip"), 10, tmp_path))
    assert "no transforms.json or COLMAP" in status
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../../escape.txt", "x")
    (status, *_), = list(splat_tab.train(splat_tab.UPLOAD, str(tmp_path / "evil.zip"), 10, tmp_path))
    assert "points outside the archive folder" in status


def test_a_failure_inside_the_training_thread_is_shown_in_the_tab(scene_zip, tmp_path, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(splat_tab.api, "fit_scene", broken_fit)
    steps = list(splat_tab.train(splat_tab.UPLOAD, str(scene_zip), 10, tmp_path))
    assert steps[-1][0] == "**Error**: disk full" and steps[-1][3] is None
