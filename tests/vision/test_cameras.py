import json

import numpy as np
import pytest

from mnemovision.vision.cameras import (
    Cameras,
    focal_from_fov,
    fov_from_focal,
    invert_pose,
    look_at,
    model_to_cameras,
    opencv_to_opengl,
    opengl_to_opencv,
    orbit,
    read_model,
    read_transforms,
    write_model,
    write_transforms,
)
from mnemovision.vision.cameras.colmap import (
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    ColmapPoints,
    quat_to_rotmat,
    read_cameras_bin,
    read_cameras_txt,
    read_images_txt,
    rotmat_to_quat,
)
from mnemovision.vision.errors import FileFormatError
from tests.vision.mutation import refusals


def random_rotation(rng):
    q = rng.standard_normal(4)
    return quat_to_rotmat(q / np.linalg.norm(q))


def random_pose(rng):
    pose = np.eye(4)
    pose[:3, :3] = random_rotation(rng)
    pose[:3, 3] = rng.standard_normal(3)
    return pose


def in_image(uv, depth, cams):
    return (depth > 0.1) & (uv[..., 0] >= 0) & (uv[..., 0] < cams.width) & (uv[..., 1] >= 0) & (uv[..., 1] < cams.height)


def test_focal_fov_round_trip():
    assert focal_from_fov(np.pi / 2, 200) == pytest.approx(100.0)
    assert fov_from_focal(focal_from_fov(0.7, 640), 640) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="fov_rad"):
        focal_from_fov(0.0, 10)
    with pytest.raises(ValueError, match="focal_px must be positive, got 0"):
        fov_from_focal(0, 10)


def test_invert_pose_is_exact_inverse():
    rng = np.random.default_rng(0)
    poses = np.stack([random_pose(rng) for _ in range(5)])
    np.testing.assert_allclose(invert_pose(poses) @ poses, np.broadcast_to(np.eye(4), poses.shape), atol=1e-12)


def test_opencv_opengl_flip_y_and_z_axes():
    rng = np.random.default_rng(1)
    c2w = random_pose(rng)
    gl = opencv_to_opengl(c2w)
    np.testing.assert_allclose(gl[:3, 0], c2w[:3, 0])
    np.testing.assert_allclose(gl[:3, 1], -c2w[:3, 1])
    np.testing.assert_allclose(gl[:3, 2], -c2w[:3, 2])
    np.testing.assert_allclose(opengl_to_opencv(gl), c2w)


def test_quaternion_round_trip():
    rng = np.random.default_rng(2)
    for _ in range(20):
        rot = random_rotation(rng)
        np.testing.assert_allclose(quat_to_rotmat(rotmat_to_quat(rot)), rot, atol=1e-10)


def test_look_at_puts_target_on_the_optical_axis_with_up_upward():
    eye, target = np.array([3.0, -2.0, 1.5]), np.array([0.2, 0.1, 0.3])
    viewmat = look_at(eye, target, up=(0, 0, 1))
    cam = viewmat[:3, :3] @ target + viewmat[:3, 3]
    assert cam[0] == pytest.approx(0.0, abs=1e-12) and cam[1] == pytest.approx(0.0, abs=1e-12)
    assert cam[2] == pytest.approx(np.linalg.norm(eye - target))
    above = viewmat[:3, :3] @ (target + [0, 0, 1]) + viewmat[:3, 3]
    assert above[1] < 0  # world up appears towards the top of the image (-y in OpenCV axes)
    with pytest.raises(ValueError, match="parallel"):
        look_at([0, 0, 5], [0, 0, 0], up=(0, 0, 1))


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_views=2.5), "n_views must be an int >= 1, got 2.5"),  # once numpy's TypeError
    (dict(radius=float("nan")), "radius must be a positive finite number, got nan"),
    (dict(start_deg=float("nan")), "start_deg must be a finite number, got nan"),  # once NaN cameras, rendered
    (dict(elevation_deg=float("inf")), "elevation_deg must be a finite number, got inf"),
    (dict(center=[0.0, float("inf"), 0.0]), "center and up must be finite 3-vectors"),
    (dict(up=[0.0, 0.0, 0.0]), "up non-zero"),
])
def test_orbit_refuses_what_would_give_non_finite_cameras(kwargs, message):
    args = dict(center=np.zeros(3), radius=2.0, n_views=4, **{"up": (0.0, 0.0, 1.0)}) | kwargs
    with pytest.raises(ValueError, match=message):
        orbit(**args)


def test_orbit_from_cameras_refuses_non_finite_cameras():
    from mnemovision.vision.cameras import orbit_from_cameras

    poses = orbit(np.zeros(3), 2.0, 4)
    assert orbit_from_cameras(poses, 3).shape == (3, 4, 4)
    poses[1, 0, 3] = np.nan
    with pytest.raises(ValueError, match="viewmats must be finite"):  # once numpy's "SVD did not converge"
        orbit_from_cameras(poses, 3)


def test_orbit_circles_the_centre_at_the_radius():
    center = np.array([1.0, 2.0, 0.5])
    poses = orbit(center, radius=4.0, n_views=12, elevation_deg=30.0)
    assert poses.shape == (12, 4, 4)
    centres = invert_pose(poses)[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(centres - center, axis=1), 4.0)
    np.testing.assert_allclose(centres[:, 2] - center[2], 4.0 * np.sin(np.deg2rad(30.0)))
    depth = np.einsum("vij,j->vi", poses[:, :3, :3], center) + poses[:, :3, 3]
    np.testing.assert_allclose(depth[:, :2], 0.0, atol=1e-12)


def test_cameras_scaled_and_projection():
    k = np.array([[[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]])
    cams = Cameras(np.eye(4)[None], k, 64, 48)
    uv, depth = cams.project(np.array([[0.0, 0.0, 2.0], [0.2, -0.1, 1.0]]))
    np.testing.assert_allclose(uv[0], [[32, 24], [52, 14]])
    np.testing.assert_allclose(depth[0], [2.0, 1.0])
    half = cams.scaled(2)
    assert (half.width, half.height) == (32, 24)
    np.testing.assert_allclose(half.Ks[0], [[50, 0, 16], [0, 50, 12], [0, 0, 1]])
    with pytest.raises(ValueError, match="Ks"):
        Cameras(np.eye(4)[None], np.eye(3)[None].repeat(2, 0), 64, 48)
    odd = Cameras(np.eye(4)[None], k, 101, 75, names=("cam0",)).scaled(2)  # 50 x 37: K follows the pixels kept
    assert (odd.width, odd.height, odd.names) == (50, 37, ("cam0",))
    np.testing.assert_allclose(odd.Ks[0], [[100 * 50 / 101, 0, 32 * 50 / 101], [0, 100 * 37 / 75, 24 * 37 / 75], [0, 0, 1]])
    with pytest.raises(ValueError, match="width and height must be positive, got 0x48"):
        Cameras(np.eye(4)[None], k, 0, 48)
    with pytest.raises(ValueError, match="names must have 1 entries, got 2"):
        Cameras(np.eye(4)[None], k, 64, 48, names=("a", "b"))


@pytest.mark.parametrize("factor, message", [(float("nan"), "positive finite"), (float("inf"), "positive finite"), (0.0, "positive finite"), (65.0, "leaves no pixel of 64x48 images")])
def test_cameras_scaled_refuses_a_factor_that_leaves_no_image(factor, message):
    cams = Cameras(np.eye(4)[None], np.array([[[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]]), 64, 48)
    with pytest.raises(ValueError, match=message):
        cams.scaled(factor)
    assert (cams.scaled(0.5).width, cams.scaled(48.0).height) == (128, 1)


# ---------------------------------------------------------------------------------------------
# transforms.json


def test_transforms_camera_angle_x_with_image_size_from_file(tmp_path):
    from PIL import Image

    (tmp_path / "train").mkdir()
    Image.new("RGB", (80, 60)).save(tmp_path / "train" / "r_0.png")
    c2w_gl = random_pose(np.random.default_rng(3))
    meta = {"camera_angle_x": 0.8, "frames": [{"file_path": "./train/r_0", "transform_matrix": c2w_gl.tolist()}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    frames = read_transforms(tmp_path / "transforms.json")
    cams = frames.cameras
    assert (cams.width, cams.height) == (80, 60)
    assert frames.image_paths[0] == (tmp_path / "train" / "r_0.png").resolve()
    assert cams.Ks[0, 0, 0] == pytest.approx(focal_from_fov(0.8, 80))
    assert cams.Ks[0, 1, 1] == pytest.approx(cams.Ks[0, 0, 0])
    assert (cams.Ks[0, 0, 2], cams.Ks[0, 1, 2]) == (40.0, 30.0)
    np.testing.assert_allclose(cams.c2w[0], opengl_to_opencv(c2w_gl), atol=1e-12)


def test_transforms_per_frame_intrinsics_and_distortion(tmp_path):
    rng = np.random.default_rng(4)
    meta = {
        "fl_x": 500.0, "fl_y": 510.0, "cx": 320.0, "cy": 240.0, "w": 640, "h": 480,
        "k1": -0.1, "k2": 0.01, "p1": 0.001, "p2": -0.002,
        "frames": [
            {"file_path": "a.png", "transform_matrix": random_pose(rng).tolist()},
            {"file_path": "b.png", "transform_matrix": random_pose(rng).tolist(), "fl_x": 600.0, "fl_y": 610.0, "k1": 0.2},
        ],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    cams = read_transforms(tmp_path / "transforms.json").cameras
    np.testing.assert_allclose(cams.Ks[0], [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    np.testing.assert_allclose(cams.Ks[1], [[600, 0, 320], [0, 610, 240], [0, 0, 1]])
    np.testing.assert_allclose(cams.dist, [[-0.1, 0.01, 0.001, -0.002], [0.2, 0.01, 0.001, -0.002]])


def test_transforms_round_trip_on_the_real_garden_cameras(tmp_path, shared_data):
    data = np.load(shared_data("splatting", "garden", "test_garden.npz"))
    cams = Cameras(data["viewmats"].astype(np.float64), data["Ks"].astype(np.float64), int(data["width"]), int(data["height"]))
    write_transforms(tmp_path / "transforms.json", cams, [f"images/{i:03d}.png" for i in range(len(cams))])
    back = read_transforms(tmp_path / "transforms.json").cameras
    np.testing.assert_allclose(back.viewmats, cams.viewmats, atol=1e-6)
    np.testing.assert_allclose(back.Ks, cams.Ks, atol=1e-9)
    assert (back.width, back.height) == (648, 420)
    # Points seen by the real cameras project to the same pixels after the round trip (the stored
    # rotations are float32, so exactness is to about 1e-4 px).
    uv_a, depth = cams.project(data["means3d"][:2000])
    uv_b, _ = back.project(data["means3d"][:2000])
    seen = in_image(uv_a, depth, cams)
    assert seen.sum() > 1000
    np.testing.assert_allclose(uv_a[seen], uv_b[seen], atol=1e-3)


@pytest.mark.parametrize(
    "content, field",
    [
        ("{not json", "JSON"),
        (json.dumps({"camera_angle_x": 0.5}), "frames"),
        (json.dumps({"camera_angle_x": 0.5, "w": 4, "h": 4, "frames": [{"file_path": "x.png", "transform_matrix": [[1, 0], [0, 1]]}]}), "transform_matrix"),
        (json.dumps({"w": 4, "h": 4, "frames": [{"file_path": "x.png", "transform_matrix": np.eye(4).tolist()}]}), "intrinsics"),
        (json.dumps({"camera_angle_x": "wide", "w": 4, "h": 4, "frames": [{"file_path": "x.png", "transform_matrix": np.eye(4).tolist()}]}), "camera_angle_x"),
        (json.dumps({"camera_angle_x": 0.5, "frames": []}), "frames: expected a non-empty list of frames, found list"),
        (json.dumps({"camera_angle_x": 0.5, "w": True, "h": 4, "frames": [{"file_path": "x.png", "transform_matrix": np.eye(4).tolist()}]}), r"top level.w: expected a finite number, found True"),
        (json.dumps({"camera_angle_x": 0.5, "w": 4, "h": 4, "frames": [{"file_path": "x.png", "transform_matrix": np.eye(4).ravel().tolist()}]}), r"frames\[0\].transform_matrix: expected a 4x4"),
    ],
)
def test_transforms_errors_name_the_file_and_field(tmp_path, content, field):
    path = tmp_path / "transforms.json"
    path.write_text(content)
    with pytest.raises(FileFormatError, match=field) as info:
        read_transforms(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# COLMAP


def garden_colmap_model(data) -> ColmapModel:
    """A COLMAP model built from the real garden cameras and 500 of its SfM points."""
    n_points = 500
    xyz = data["means3d"][:n_points].astype(np.float64)
    ks = data["Ks"].astype(np.float64)
    ks[2, 1, 1] = ks[2, 0, 0]  # camera 3 becomes SIMPLE_RADIAL, which has one focal length
    cams = Cameras(data["viewmats"].astype(np.float64), ks, int(data["width"]), int(data["height"]))
    uv, _ = cams.project(xyz)
    cameras = {
        1: ColmapCamera(1, "PINHOLE", cams.width, cams.height, np.array([cams.Ks[0, 0, 0], cams.Ks[0, 1, 1], cams.Ks[0, 0, 2], cams.Ks[0, 1, 2]])),
        2: ColmapCamera(2, "OPENCV", cams.width, cams.height, np.array([cams.Ks[1, 0, 0], cams.Ks[1, 1, 1], cams.Ks[1, 0, 2], cams.Ks[1, 1, 2], -0.05, 0.01, 0.0, 0.001])),
        3: ColmapCamera(3, "SIMPLE_RADIAL", cams.width, cams.height, np.array([cams.Ks[2, 0, 0], cams.Ks[2, 0, 2], cams.Ks[2, 1, 2], 0.02])),
    }
    images = {}
    for v in range(len(cams)):
        images[v + 1] = ColmapImage(
            id=v + 1,
            qvec=rotmat_to_quat(cams.viewmats[v, :3, :3]),
            tvec=cams.viewmats[v, :3, 3].copy(),
            camera_id=v + 1,
            name=f"frame_{v:05d}.jpg",
            xys=uv[v],
            point3d_ids=np.arange(n_points, dtype=np.int64),
        )
    tracks = [np.array([[v + 1, i] for v in range(len(cams))]) for i in range(n_points)]
    points = ColmapPoints(np.arange(n_points, dtype=np.int64), xyz, data["colors"][:n_points].copy(), np.full(n_points, 0.5), tracks)
    return ColmapModel(cameras, images, points)


def assert_models_equal(a: ColmapModel, b: ColmapModel) -> None:
    assert a.cameras.keys() == b.cameras.keys()
    for k in a.cameras:
        assert (a.cameras[k].model, a.cameras[k].width, a.cameras[k].height) == (b.cameras[k].model, b.cameras[k].width, b.cameras[k].height)
        np.testing.assert_array_equal(a.cameras[k].params, b.cameras[k].params)
    assert a.images.keys() == b.images.keys()
    for k in a.images:
        ia, ib = a.images[k], b.images[k]
        assert (ia.name, ia.camera_id) == (ib.name, ib.camera_id)
        np.testing.assert_array_equal(ia.qvec, ib.qvec)
        np.testing.assert_array_equal(ia.tvec, ib.tvec)
        np.testing.assert_array_equal(ia.xys, ib.xys)
        np.testing.assert_array_equal(ia.point3d_ids, ib.point3d_ids)
    np.testing.assert_array_equal(a.points.ids, b.points.ids)
    np.testing.assert_array_equal(a.points.xyz, b.points.xyz)
    np.testing.assert_array_equal(a.points.rgb, b.points.rgb)
    np.testing.assert_array_equal(a.points.error, b.points.error)
    for ta, tb in zip(a.points.tracks, b.points.tracks):
        np.testing.assert_array_equal(ta, tb)


@pytest.mark.parametrize("ext", [".bin", ".txt"])
def test_colmap_round_trip_on_real_garden_cameras(tmp_path, shared_data, ext):
    data = np.load(shared_data("splatting", "garden", "test_garden.npz"))
    model = garden_colmap_model(data)
    write_model(tmp_path, model, ext)
    back = read_model(tmp_path)
    assert_models_equal(model, back)
    cams = model_to_cameras(back)
    np.testing.assert_allclose(cams.viewmats, data["viewmats"], atol=1e-6)
    np.testing.assert_allclose(cams.dist[1], [-0.05, 0.01, 0.0, 0.001])
    np.testing.assert_allclose(cams.dist[2], [0.02, 0.0, 0.0, 0.0])
    # Keypoints are the projections of their 3D points through the recovered cameras.
    # (the stored rotations are float32 and slightly off orthonormal, hence 1e-3 px)
    uv, depth = cams.project(back.points.xyz)
    seen = in_image(uv, depth, cams)
    assert seen.sum() > 500
    for v, image in enumerate(sorted(back.images.values(), key=lambda im: im.name)):
        np.testing.assert_allclose(uv[v][seen[v]], image.xys[seen[v]], atol=1e-3)


def test_colmap_bin_and_txt_give_the_same_model(tmp_path, shared_data):
    data = np.load(shared_data("splatting", "garden", "test_garden.npz"))
    model = garden_colmap_model(data)
    write_model(tmp_path / "bin", model, ".bin")
    write_model(tmp_path / "txt", model, ".txt")
    assert_models_equal(read_model(tmp_path / "bin"), read_model(tmp_path / "txt"))


def test_colmap_bin_wrong_header_count_names_the_file(tmp_path):
    cameras = {1: ColmapCamera(1, "PINHOLE", 64, 48, np.array([50.0, 50.0, 32.0, 24.0]))}
    write_model(tmp_path, ColmapModel(cameras, {}, ColmapPoints(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0), [])), ".bin")
    path = tmp_path / "cameras.bin"
    raw = bytearray(path.read_bytes())
    raw[0] = 2  # header claims two cameras, the file holds one
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="camera record 1") as info:
        read_cameras_bin(path)
    assert str(path) in str(info.value)
    raw[0:8] = (10**12).to_bytes(8, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="header"):
        read_cameras_bin(path)
    raw[0:8] = (1).to_bytes(8, "little")
    path.write_bytes(bytes(raw) + b"junk")
    with pytest.raises(FileFormatError, match="trailing"):
        read_cameras_bin(path)


def test_colmap_txt_errors_name_file_and_line(tmp_path):
    path = tmp_path / "cameras.txt"
    path.write_text("# comment\n1 PINHOLE 640 480 500 500 320\n")
    with pytest.raises(FileFormatError, match=r"line 2 PARAMS.*4 params for PINHOLE") as info:
        read_cameras_txt(path)
    assert str(path) in str(info.value)
    path.write_text("1 PINHOLEY 640 480 500 500 320 240\n")
    with pytest.raises(FileFormatError, match="MODEL"):
        read_cameras_txt(path)
    images = tmp_path / "images.txt"
    images.write_text("1 1 0 0 0 0 0 0 1\n\n")
    with pytest.raises(FileFormatError, match="10 fields"):
        read_images_txt(images)


def test_colmap_missing_model_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no COLMAP model"):
        read_model(tmp_path)


def small_colmap_model() -> ColmapModel:
    """Two cameras, two images with keypoints, two points with tracks."""
    cameras = {1: ColmapCamera(1, "PINHOLE", 64, 48, np.array([50.0, 51.0, 32.0, 24.0])), 2: ColmapCamera(2, "SIMPLE_RADIAL", 64, 48, np.array([50.0, 32.0, 24.0, 0.01]))}
    images = {
        i: ColmapImage(i, np.array([1.0, 0.1 * i, 0.0, 0.0]), np.array([0.0, 0.0, float(i)]), i, f"im{i}.png", np.array([[3.5 * i, 4.5], [10.0, 20.0]]), np.array([0, -1]))
        for i in (1, 2)
    }
    points = ColmapPoints(np.array([0, 1]), np.array([[0.0, 0.0, 5.0], [1.0, 0.0, 6.0]]), np.array([[10, 20, 30], [200, 100, 0]], np.uint8), np.array([0.5, 0.7]), [np.array([[1, 0], [2, 0]]), np.array([[2, 1]])])
    return ColmapModel(cameras, images, points)


def replace_once(path, old: bytes, new: bytes) -> None:
    """Rewrite ``path`` with its single occurrence of ``old`` replaced by ``new``."""
    data = path.read_bytes()
    assert data.count(old) == 1, (path, old)
    path.write_bytes(data.replace(old, new))


@pytest.mark.parametrize(
    "file, old, new, field",
    [
        # Each case was found by mutating valid files at random (bytes and tokens). Before, each
        # raised UnicodeDecodeError, OverflowError, KeyError or a bare numpy ValueError naming no file.
        ("cameras.txt", b"PINHOLE", b"PINHOLE\xad", "text: expected UTF-8"),
        ("images.bin", b"im1.png", b"im\xad.png", "image record 0 name"),
        ("images.txt", b"3.5 4.5 0", b"3.5 #4.5 0", r"line \d+ \(POINTS2D"),
        ("images.txt", b" 2 im2.png", b" 7 im2.png", r"image 2 CAMERA_ID.*cameras.txt \[1, 2\]"),
        ("images.txt", b"1 1.0 0.1 0.0 0.0", b"1 0 0 0 0", "non-zero quaternion"),
        ("images.txt", b"0.0 0.0 1.0 1 im1", b"0.0 0.0 nan 1 im1", "finite numbers"),
        ("points3D.txt", b" 200 100 0 ", b" 300 100 0 ", "R G B: expected integers in 0-255"),
        ("points3D.txt", b"\n1 ", b"\n99999999999999999999 ", "integers that fit 64 bits"),
        ("points3D.txt", b" 2 1\n", b" 2 1.5\n", "TRACK"),
        ("cameras.txt", b"50.0 51.0", b"inf 51.0", "PARAMS: expected finite numbers"),
    ],
)
def test_colmap_corrupt_fields_name_the_file_and_field(tmp_path, file, old, new, field):
    ext = file.rsplit(".", 1)[1]
    write_model(tmp_path, small_colmap_model(), f".{ext}")
    path = tmp_path / file
    replace_once(path, old, new)
    with pytest.raises(FileFormatError, match=field) as info:
        read_model(tmp_path)
    assert str(path) in str(info.value)


def test_colmap_binary_point_id_beyond_int64_is_reported(tmp_path):
    write_model(tmp_path, small_colmap_model(), ".bin")
    path = tmp_path / "points3D.bin"
    raw = bytearray(path.read_bytes())
    raw[8:16] = (2**64 - 2).to_bytes(8, "little")  # the first point's id
    path.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="point record 0 POINT3D_ID") as info:
        read_model(tmp_path)
    assert str(path) in str(info.value)


def test_colmap_small_model_round_trips_and_huge_quaternions_normalise(tmp_path):
    model = small_colmap_model()
    for ext in (".bin", ".txt"):
        write_model(tmp_path / ext[1:], model, ext)
        assert_models_equal(model, read_model(tmp_path / ext[1:]))
    q = np.array([1.0, 0.2, -0.3, 0.1])
    np.testing.assert_allclose(quat_to_rotmat(q * 1e300), quat_to_rotmat(q), atol=1e-15)


def test_model_to_cameras_names_missing_cameras():
    model = small_colmap_model()
    del model.cameras[2]
    with pytest.raises(ValueError, match=r"cameras \[2\]"):
        model_to_cameras(model)


@pytest.mark.parametrize(
    "matrix, fl_x",
    [([[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0]], 50), ([["1", 0, 0, 0]] * 4, 50), (np.eye(4).tolist(), float("nan")),
     ([[10**400, 0, 0, 0]] + np.eye(4)[1:].tolist(), 50), (np.eye(4).tolist(), 10**400)],  # 400-digit JSON integers: TypeError before
)
def test_transforms_ragged_text_or_nan_values_name_the_field(tmp_path, matrix, fl_x):
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({"fl_x": fl_x, "w": 4, "h": 4, "frames": [{"file_path": "x.png", "transform_matrix": matrix}]}))
    field = "fl_x: expected a finite number" if fl_x != 50 else r"frames\[0\].transform_matrix"
    with pytest.raises(FileFormatError, match=field) as info:
        read_transforms(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "fields, message",
    [
        # a ValueError from focal_from_fov or Cameras without the file, or (fl_x = 0) accepted
        (dict(camera_angle_x=5, w=4, h=4), r"frames\[0\].camera_angle_x: expected a field of view in radians, in \(0, pi\), found 5.0"),
        (dict(fl_x=5, w=-4, h=4), r"frames\[0\].w/h: expected an image size of at least 1x1 pixel, found -4.0x4.0"),
        (dict(fl_x=5, w=0.2, h=4), "w/h: expected an image size of at least 1x1 pixel"),
        (dict(fl_x=0, w=4, h=4), r"frames\[0\].fl_x: expected a positive focal length in pixels, found 0.0"),
    ],
)
def test_transforms_out_of_range_intrinsics_name_the_field(tmp_path, fields, message):
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({**fields, "frames": [{"file_path": "x.png", "transform_matrix": np.eye(4).tolist()}]}))
    with pytest.raises(FileFormatError, match=message) as info:
        read_transforms(path)
    assert str(path) in str(info.value)


def test_transforms_without_size_and_a_damaged_first_image_names_the_image(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")  # Pillow's UnidentifiedImageError escaped before
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({"fl_x": 50, "frames": [{"file_path": "x.png", "transform_matrix": np.eye(4).tolist()}]}))
    with pytest.raises(FileFormatError, match="x.png: image data: expected an image Pillow can decode"):
        read_transforms(path)


def test_transforms_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "transforms.json"
    path.write_bytes(b'{"frames": ["\xad"]}')
    with pytest.raises(FileFormatError, match="byte 0xad at offset 13") as info:
        read_transforms(path)
    assert str(path) in str(info.value)


def test_cameras_refuse_non_finite_entries():
    viewmats = np.stack([np.eye(4)] * 2)
    viewmats[1, 0, 3] = np.nan
    with pytest.raises(ValueError, match="viewmats must be finite; camera b"):
        Cameras(viewmats, np.stack([np.eye(3)] * 2), 4, 4, names=("a", "b"))
    assert len(Cameras(np.zeros((0, 4, 4)), np.zeros((0, 3, 3)), 4, 4)) == 0  # an empty set stays valid
    ks = np.stack([np.eye(3)] * 3)
    ks[2, 1, 1] = np.inf  # camera 2 (the flat index into [V, 3] rows would say 7)
    with pytest.raises(ValueError, match="Ks must be finite; camera index 2 has"):
        Cameras(np.stack([np.eye(4)] * 3), ks, 4, 4)


@pytest.mark.parametrize("viewmats, ks, size, dist, message", [
    (np.zeros((2, 3, 4)), np.zeros((2, 3, 3)), (4, 4), None, r"viewmats must have shape \[V, 4, 4\], got \(2, 3, 4\)"),
    (np.zeros((2, 4, 4)), np.zeros((2, 3, 3)), (4, 4), np.zeros((2, 5)), r"dist must have shape \[2, 4\], got \(2, 5\)"),
    (np.zeros((2, 4, 4)), np.zeros((2, 3, 3)), (4, 0), None, "width and height must be positive, got 4x0"),
])
def test_cameras_refuse_shapes_and_sizes_they_cannot_hold(viewmats, ks, size, dist, message):
    extra = {} if dist is None else {"dist": dist}
    with pytest.raises(ValueError, match=message):
        Cameras(viewmats, ks, *size, **extra)


def test_fields_of_view_are_below_half_a_turn_and_projection_divides_by_depth():
    with pytest.raises(ValueError, match="fov_rad must be in \\(0, pi\\), got 3.14"):
        focal_from_fov(np.pi, 100)
    cams = Cameras(np.eye(4)[None], np.array([[[10.0, 0, 5], [0, 10.0, 4], [0, 0, 1]]]), 10, 8)
    uv, depth = cams.project(np.array([[1.0, 2.0, 2.0], [1.0, 2.0, -2.0]]))
    np.testing.assert_allclose(uv[0], [[10.0, 14.0], [0.0, -6.0]])  # behind the camera: mirrored, with depth < 0 to tell
    np.testing.assert_array_equal(depth[0], [2.0, -2.0])


@pytest.mark.parametrize("file", ["cameras.bin", "images.bin", "points3D.bin", "cameras.txt", "images.txt", "points3D.txt"])
def test_mutated_colmap_files_load_or_name_the_file(tmp_path, file):
    # 1,500 mutations of each file found the cases above; these 80 per file keep the property
    ext = file.rsplit(".", 1)[1]
    write_model(tmp_path, small_colmap_model(), f".{ext}")

    def read():
        model = read_model(tmp_path)
        try:
            model_to_cameras(model)
        except ValueError as err:  # a readable model that is not one camera set: its own messages
            assert "several sizes" in str(err) or "no registered images" in str(err), err

    assert refusals(tmp_path / file, read, FileFormatError, 80) >= 10  # the edits do reach the checks


def test_mutated_transforms_json_loads_or_names_the_file(tmp_path):
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({"fl_x": 50, "w": 64, "h": 48, "frames": [{"file_path": f"im{i}.png", "transform_matrix": np.eye(4).tolist()} for i in range(2)]}))
    assert refusals(path, lambda: read_transforms(path), FileFormatError, 150) >= 30


# camera paths and transforms.json: what the tests above left open (found by source mutation)


def turn_about(up, first, second) -> float:
    """Signed angle in degrees from ``first`` to ``second`` about ``up`` (right-handed)."""
    up = np.asarray(up, float) / np.linalg.norm(up)
    a, b = first - (first @ up) * up, second - (second @ up) * up
    return float(np.degrees(np.arctan2(np.cross(a, b) @ up, a @ b)))


def test_orbit_turns_right_handed_about_any_up_from_start_deg():
    center = np.array([0.5, -1.0, 2.0])
    for up in ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 0.0, 5.0), (0.3, -0.2, 0.9)):
        poses = orbit(center, 3.0, 4, elevation_deg=20.0, up=up)
        eyes = invert_pose(poses)[:, :3, 3] - center
        unit = np.asarray(up) / np.linalg.norm(up)
        assert np.isfinite(poses).all(), up
        np.testing.assert_allclose(np.linalg.norm(eyes, axis=1), 3.0, err_msg=str(up))
        np.testing.assert_allclose(eyes @ unit, 3.0 * np.sin(np.radians(20.0)), err_msg=str(up))  # up need not be a unit vector
        turns = [turn_about(up, eyes[i], eyes[(i + 1) % 4]) for i in range(4)]
        np.testing.assert_allclose(turns, 90.0, err_msg=str(up))  # evenly spaced, open circle, counter-clockwise seen from up
    np.testing.assert_allclose(orbit(center, 3.0, 4, start_deg=90.0), orbit(center, 3.0, 4)[[1, 2, 3, 0]], atol=1e-12)  # degrees
    with pytest.raises(ValueError, match="eye .* and target .* coincide"):
        look_at([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])


def test_orbit_from_cameras_recovers_the_orbit_they_were_taken_on():
    from mnemovision.vision.cameras import orbit_from_cameras

    center, up = np.array([1.0, 2.0, -0.5]), np.array([0.1, -0.2, 1.0])
    poses = orbit(center, 3.0, 8, elevation_deg=25.0, up=up)
    np.testing.assert_allclose(orbit_from_cameras(poses, 8), poses, atol=1e-9)  # centre, up, radius, elevation
    np.testing.assert_allclose(orbit_from_cameras(poses, 8, start_deg=45.0), np.roll(poses, -1, axis=0), atol=1e-9)
    eyes = [center + r * np.array([np.cos(t), np.sin(t), 0.0]) for r, t in zip((2.0, 4.0, 2.0, 4.0), np.radians([0, 90, 180, 270]))]
    level = np.stack([look_at(eye, center, up=(0.0, 0.0, 1.0)) for eye in eyes])  # distances 2 and 4 at elevation 0
    back = invert_pose(orbit_from_cameras(level, 6))[:, :3, 3] - center
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), 3.0)  # the mean distance
    np.testing.assert_allclose(back[:, 2], 0.0, atol=1e-9)
    for shape in ((1, 4, 4), (2, 3, 4)):
        with pytest.raises(ValueError, match=r"viewmats must be \[V >= 2, 4, 4\]"):
            orbit_from_cameras(np.zeros(shape), 3)


def test_transforms_image_names_suffixes_angles_and_3x4_matrices(tmp_path):
    from PIL import Image

    (tmp_path / "train").mkdir()
    Image.new("RGB", (80, 60)).save(tmp_path / "train" / "r_0.jpg")
    c2w_gl = random_pose(np.random.default_rng(5))
    frames = [
        {"file_path": "./train/r_0", "transform_matrix": c2w_gl.tolist()},  # a .jpg on disk
        {"file_path": "./train/r_1", "transform_matrix": c2w_gl[:3].tolist()},  # no file: .png assumed; 3x4 matrix
        {"file_path": "images/a.png", "transform_matrix": c2w_gl.tolist()},  # missing, named with its suffix
    ]
    meta = {"camera_angle_x": 0.8, "camera_angle_y": 0.5, "w": 80, "frames": frames}  # no h: read from the image
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    read = read_transforms(tmp_path / "transforms.json")
    root = tmp_path.resolve()
    assert read.image_paths == (root / "train" / "r_0.jpg", root / "train" / "r_1.png", root / "images" / "a.png")
    assert read.cameras.names == ("r_0.jpg", "r_1.png", "a.png")
    cams = read.cameras
    assert (cams.width, cams.height) == (80, 60)
    assert cams.Ks[0, 0, 0] == pytest.approx(focal_from_fov(0.8, 80)) and cams.Ks[0, 1, 1] == pytest.approx(focal_from_fov(0.5, 60))
    np.testing.assert_allclose(cams.viewmats[1], cams.viewmats[0], atol=1e-12)
    meta = {"fl_x": 50.0, "frames": [{"file_path": "a.png", "transform_matrix": c2w_gl.tolist(), "w": 80, "h": 60}, {"file_path": "b.png", "transform_matrix": c2w_gl.tolist(), "w": 80, "h": 64}]}
    (tmp_path / "sizes.json").write_text(json.dumps(meta))
    with pytest.raises(FileFormatError, match=r"sizes.json: w/h: expected one image size for all frames, found sizes \[\(80, 60\), \(80, 64\)\]"):
        read_transforms(tmp_path / "sizes.json")


def test_write_transforms_keeps_distortion_and_writes_the_angle_and_extra_fields(tmp_path):
    rng = np.random.default_rng(6)
    ks = np.array([[[500.0, 0, 320], [0, 510, 240], [0, 0, 1]]] * 2)
    dist = np.array([[-0.1, 0.01, 0.001, -0.002], [0.0, 0.0, 0.0, 0.0]])
    cams = Cameras(np.stack([invert_pose(random_pose(rng)) for _ in range(2)]), ks, 640, 480, dist)
    write_transforms(tmp_path / "t.json", cams, ["a.png", "b.png"], extra={"aabb_scale": 16})
    meta = json.loads((tmp_path / "t.json").read_text())
    assert meta["aabb_scale"] == 16 and meta["camera_angle_x"] == pytest.approx(fov_from_focal(500.0, 640))
    assert "k1" in meta["frames"][0] and "k1" not in meta["frames"][1]  # zero distortion is left out
    np.testing.assert_allclose(read_transforms(tmp_path / "t.json").cameras.dist, dist)
    with pytest.raises(ValueError, match="file_paths must have 2 entries, got 1"):
        write_transforms(tmp_path / "u.json", cams, ["a.png"])
    assert not (tmp_path / "u.json").exists()


# COLMAP: what the tests above left open (found by source mutation)


def test_rotmat_to_quat_returns_w_non_negative_and_the_same_rotation():
    rng = np.random.default_rng(7)
    for _ in range(20):
        q = rng.standard_normal(4)
        q[0] = -abs(q[0])  # rotations whose direct quaternion has w < 0
        rot = quat_to_rotmat(q)
        back = rotmat_to_quat(rot)
        assert back[0] >= 0
        np.testing.assert_allclose(back, -q / np.linalg.norm(q), atol=1e-12)


def test_colmap_intrinsics_of_each_perspective_model():
    from mnemovision.vision.cameras.colmap import camera_intrinsics

    cases = {
        "SIMPLE_PINHOLE": ([50.0, 30.0, 20.0], [50, 50, 30, 20], [0, 0, 0, 0]),
        "PINHOLE": ([50.0, 51.0, 30.0, 20.0], [50, 51, 30, 20], [0, 0, 0, 0]),
        "SIMPLE_RADIAL": ([50.0, 30.0, 20.0, 0.1], [50, 50, 30, 20], [0.1, 0, 0, 0]),
        "RADIAL": ([50.0, 30.0, 20.0, 0.1, -0.02], [50, 50, 30, 20], [0.1, -0.02, 0, 0]),
        "OPENCV": ([50.0, 51.0, 30.0, 20.0, 0.1, -0.02, 0.003, -0.004], [50, 51, 30, 20], [0.1, -0.02, 0.003, -0.004]),
    }
    for model, (params, (fx, fy, cx, cy), dist) in cases.items():
        k, d = camera_intrinsics(ColmapCamera(1, model, 64, 48, np.array(params)))
        np.testing.assert_array_equal(k, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], err_msg=model)
        np.testing.assert_array_equal(d, dist, err_msg=model)
    with pytest.raises(ValueError, match="model OPENCV_FISHEYE is not supported"):
        camera_intrinsics(ColmapCamera(3, "OPENCV_FISHEYE", 64, 48, np.zeros(8)))


def test_model_to_cameras_sorts_by_name_and_refuses_an_empty_model():
    model = small_colmap_model()
    model.images[1].name, model.images[2].name = "b.png", "a.png"
    cams = model_to_cameras(model)
    assert cams.names == ("a.png", "b.png")
    np.testing.assert_allclose(cams.viewmats[0], model.images[2].viewmat)
    model.images.clear()
    with pytest.raises(ValueError, match="COLMAP model has no registered images"):
        model_to_cameras(model)


def test_colmap_text_images_without_keypoints_round_trip(tmp_path):
    model = small_colmap_model()
    for image in model.images.values():  # their second lines are empty
        image.xys, image.point3d_ids = np.zeros((0, 2)), np.zeros(0, np.int64)
    write_model(tmp_path, model, ".txt")
    back = read_model(tmp_path)
    assert sorted(back.images) == [1, 2] and all(len(image.xys) == 0 for image in back.images.values())


@pytest.mark.parametrize("file, old, new, field", [
    ("cameras.txt", b"32.0 24.0\n", b"32.0 24.0 7.0\n", r"line \d+ PARAMS: expected 4 params for PINHOLE, found 5"),
    ("images.txt", b"im1.png", b"im 1.png", r"line \d+ \(IMAGE_ID .* NAME\): expected 10 fields, found 11"),
    ("images.txt", b"3.5 4.5 0", b"3.5 4.5 0 9.0", r"line \d+ \(POINTS2D\[\] as X Y POINT3D_ID\): expected a multiple of 3 fields, found 7"),
])
def test_colmap_text_fields_beyond_the_layout_are_refused(tmp_path, file, old, new, field):
    write_model(tmp_path, small_colmap_model(), ".txt")
    replace_once(tmp_path / file, old, new)
    with pytest.raises(FileFormatError, match=field):
        read_model(tmp_path)


def test_colmap_binary_name_without_its_nul_is_named(tmp_path):
    model = small_colmap_model()
    del model.images[2]
    write_model(tmp_path, model, ".bin")
    path = tmp_path / "images.bin"
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"im1.png") + 5])  # cut inside the name
    with pytest.raises(FileFormatError, match="image record 0 name: expected a NUL-terminated name, found end of file"):
        read_model(tmp_path)


def test_colmap_folder_prefers_binary_files_and_writers_check_their_input(tmp_path):
    model = small_colmap_model()
    write_model(tmp_path, model, ".bin")
    other = small_colmap_model()
    other.cameras[1].width = other.cameras[2].width = 99
    write_model(tmp_path, other, ".txt")
    assert read_model(tmp_path).cameras[1].width == 64  # .bin when both are there
    with pytest.raises(ValueError, match="ext must be '.bin' or '.txt', got '.json'"):
        write_model(tmp_path / "j", model, ".json")
    model.cameras[1].params = np.array([50.0, 51.0, 32.0])
    with pytest.raises(ValueError, match="camera 1: model PINHOLE needs 4 params, got 3"):
        write_model(tmp_path / "p", model, ".bin")


@pytest.mark.parametrize("change, field", [
    (lambda m: m.cameras[2].params.__setitem__(3, np.nan), "camera record 1 params: expected finite numbers"),
    (lambda m: m.images[2].tvec.__setitem__(1, np.inf), "image record 1 QW QX QY QZ TX TY TZ: expected finite numbers"),
    (lambda m: m.images[1].qvec.__setitem__(slice(None), 0.0), "image record 0 QW QX QY QZ: expected a non-zero quaternion"),
])
def test_colmap_binary_non_finite_params_and_poses_are_named(tmp_path, change, field):
    """The binary readers check what the text readers check (the writers store any float)."""
    model = small_colmap_model()
    change(model)
    write_model(tmp_path, model, ".bin")
    with pytest.raises(FileFormatError, match=field):
        read_model(tmp_path)


def test_colmap_text_blank_lines_between_images_and_exact_errors(tmp_path):
    model = small_colmap_model()
    model.points.error[:] = [0.123456789012345, 1 / 3]  # repr keeps every digit of a reprojection error
    write_model(tmp_path, model, ".txt")
    replace_once(tmp_path / "images.txt", b"\n2 ", b"\n\n\n2 ")  # hand-edited: blank lines before image 2's header
    assert_models_equal(model, read_model(tmp_path))  # errors included, to the last bit


def test_transforms_focal_lengths_win_over_angles_and_sizes_come_from_the_first_readable_image(tmp_path):
    from PIL import Image

    eye = np.eye(4).tolist()
    Image.new("RGB", (80, 60)).save(tmp_path / "b.png")
    Image.new("RGB", (80, 60)).save(tmp_path / "c.tif")  # an existing file keeps its own suffix
    frames = [
        {"file_path": "a.png", "transform_matrix": eye},  # missing: the size comes from b.png
        {"file_path": "b.png", "transform_matrix": eye},
        {"file_path": "c.tif", "transform_matrix": eye, "w": 80, "h": 60},  # one frame with a size is not enough
    ]
    meta = {"fl_x": 70.0, "fl_y": 71.0, "camera_angle_x": 0.8, "camera_angle_y": 0.5, "frames": frames}
    (tmp_path / "t.json").write_text(json.dumps(meta))
    read = read_transforms(tmp_path / "t.json")
    assert (read.cameras.width, read.cameras.height) == (80, 60)
    np.testing.assert_array_equal(read.cameras.Ks[:, 0, 0], 70.0)  # fl_x, not focal_from_fov(0.8, 80)
    np.testing.assert_array_equal(read.cameras.Ks[:, 1, 1], 71.0)
    assert read.image_paths[2] == (tmp_path / "c.tif").resolve()
    meta = {"fl_x": 70.0, "w": 63.6, "h": 47.5, "frames": frames[:1]}  # fractional sizes round to the nearest pixel
    (tmp_path / "round.json").write_text(json.dumps(meta))
    rounded = read_transforms(tmp_path / "round.json").cameras
    assert (rounded.width, rounded.height) == (64, 48)


def test_write_transforms_keeps_a_single_non_zero_distortion_term(tmp_path):
    ks = np.array([[[500.0, 0, 320], [0, 510, 240], [0, 0, 1]]])
    cams = Cameras(np.eye(4)[None], ks, 640, 480, np.array([[0.0, 0.0, 0.0, 0.003]]))  # p2 alone
    write_transforms(tmp_path / "t.json", cams, ["a.png"])
    np.testing.assert_array_equal(read_transforms(tmp_path / "t.json").cameras.dist, [[0.0, 0.0, 0.0, 0.003]])
