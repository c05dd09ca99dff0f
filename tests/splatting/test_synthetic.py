"""The bundled scene's ray caster (``splatting.data.synthetic``) against the analytic scene it
describes: ray hits worked out by hand, camera geometry, shading, and the SfM-like point cloud lying
on the objects' surfaces with the colours those surfaces are shaded with."""

import json
import math

import numpy as np
import pytest

from mnemovision.splatting.data import synthetic
from mnemovision.splatting.data.synthetic import AMBIENT, GROUND_HALF, LIGHT_DIR, SceneSpec, hemisphere_cameras, make_scene
from mnemovision.vision.cameras import look_at, read_transforms
from mnemovision.vision.io import read_image, read_ply

SPEC = SceneSpec(n_views=12, size=32, n_points=1200)
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # rays parallel to the ground once made NaN points


@pytest.fixture(scope="module")
def scene():
    return synthetic._Scene()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    make_scene(folder, SPEC)
    return folder


def cast(scene, origin, direction):
    t, normal, albedo = scene.intersect(np.asarray([origin], dtype=np.float64), np.asarray([direction], dtype=np.float64))
    return float(t[0]), normal[0], albedo[0]


def box_rotation(scene) -> np.ndarray:
    """[3, 3] the box's turn about z: world offsets @ it are box-frame coordinates, it @ box-frame
    directions are world ones."""
    cos, sin = math.cos(scene.box_angle), math.sin(scene.box_angle)
    return np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])


def cast_pixel_rays(scene, viewmat, K, size):
    """One ray through each pixel centre of a ``size`` x ``size`` camera: (hit distances [P],
    camera-space directions [P, 3] with z = 1), row-major."""
    c2w = np.linalg.inv(viewmat)
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    cam = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], -1).reshape(-1, 3)
    rays = cam @ c2w[:3, :3].T
    t, _, _ = scene.intersect(np.broadcast_to(c2w[:3, 3], rays.shape).copy(), rays / np.linalg.norm(rays, axis=1, keepdims=True))
    return t, cam


@pytest.mark.parametrize(
    "origin, direction, t, normal",
    [
        ((0.85, 0.45, 5.0), (0, 0, -1), 5.0 - 1.24, (0, 0, 1)),  # the astronaut sphere's top (centre z 0.62 + radius 0.62)
        ((0.85, 5.0, 0.62), (0, -1, 0), 5.0 - 0.45 - 0.62, (0, 1, 0)),  # its near side, not the far one
        ((0.2, -1.15, 5.0), (0, 0, -1), 5.0 - 0.76, (0, 0, 1)),  # the small sphere
        ((-0.85, -0.35, 5.0), (0, 0, -1), 5.0 - 0.9, (0, 0, 1)),  # the box's top face (centre z 0.45 + half 0.45)
        ((-0.35, 1.15, 5.0), (0, 0, -1), 5.0 - 1.25, (0, 0, 1)),  # the cylinder's flat top
        ((-0.35, 5.0, 1.0), (0, -1, 0), 5.0 - 1.15 - 0.33, (0, 1, 0)),  # its side below the top
        ((-0.35, 5.0, 1.4), (0, -1, 0), math.inf, (0, 0, 0)),  # above the cylinder: nothing
        ((2.5, -2.5, 5.0), (0, 0, -1), 5.0, (0, 0, 1)),  # the ground inside its square
        ((2.7, 0.0, 5.0), (0, 0, -1), math.inf, (0, 0, 0)),  # beyond the square: transparent
        ((-0.15, 0.35, 5.0), (-0.3, 0, -1), None, None),  # past the rotated box, down to the ground beside it
    ],
)
def test_rays_hit_the_near_surface_of_each_object(scene, origin, direction, t, normal):
    direction = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    got_t, got_normal, albedo = cast(scene, origin, direction)
    if t is None:  # the oblique ray: it meets z = 0 and nothing before
        t = 5.0 / -direction[2]
        normal = (0, 0, 1)
    assert got_t == pytest.approx(t, abs=1e-9)
    np.testing.assert_allclose(got_normal, normal, atol=1e-9)
    assert (albedo > 0).any() == math.isfinite(t)


def hit_along(scene, normal, center, radius):
    """Cast a ray straight down ``normal`` at the surface point ``center + radius * normal``."""
    normal = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    return cast(scene, center + (radius + 2.0) * normal, -normal), normal


def test_each_surface_shows_its_own_texture_where_the_ray_meets_it(scene):
    """The texel each object's mapping puts at a known surface point: the ground tiles the brick every
    1.3 units, spheres are equirectangular (u around z from +x, v from the top pole), box faces
    span the photo, the cylinder's side runs the photo top-down from its rim, its top is the photo
    at (x, y) darkened to 0.8."""
    tex = scene.tex
    point = np.array([2.0, -1.7])
    _, _, albedo = cast(scene, (*point, 5.0), (0, 0, -1))
    np.testing.assert_allclose(albedo, synthetic._sample(tex["brick"], point[:1] / 1.3, point[1:] / 1.3)[0])

    center, radius, name = scene.spheres[0]
    (t, normal, albedo), n = hit_along(scene, (0.3, 0.5, 0.6), center, radius)  # the upper, +y side: nothing in front
    assert t == pytest.approx(2.0) and np.allclose(normal, n)
    u, v = 0.5 + math.atan2(n[1], n[0]) / (2 * math.pi), 0.5 - math.asin(n[2]) / math.pi
    np.testing.assert_allclose(albedo, synthetic._sample(tex[name], np.array([u]), np.array([v]))[0])

    rot = box_rotation(scene)
    for axis in (0, 1):  # the two faces that look away from the other objects (-x and -y in the box's frame)
        local = np.zeros(3)
        local[axis] = -1.0
        world_normal = rot @ local
        local_point = scene.box_half[axis] * local + np.array([0.13, 0.13, 0.1]) * (local == 0)  # on the face, off its middle (no texel edge)
        world_point = scene.box_center + rot @ local_point
        t, normal, albedo = cast(scene, world_point + 1.5 * world_normal, -world_normal)
        assert t == pytest.approx(1.5)
        np.testing.assert_allclose(normal, world_normal, atol=1e-12)  # outward, and turned with the box
        uv = local_point / (2 * scene.box_half) + 0.5
        u, v = (uv[1] if axis == 0 else uv[0]), 1.0 - uv[2]
        np.testing.assert_allclose(albedo, synthetic._sample(tex["coffee"], np.array([u]), np.array([v]))[0])

    _, _, albedo = cast(scene, (-0.35, 5.0, 1.0), (0, -1, 0))  # the side 1.0 up: 0.2 of the way down the photo
    np.testing.assert_allclose(albedo, synthetic._sample(tex["rocket"], np.array([0.75]), np.array([1.0 - 1.0 / 1.25]))[0])
    _, _, albedo = cast(scene, (-0.3, 1.2, 5.0), (0, 0, -1))
    np.testing.assert_allclose(albedo, 0.8 * synthetic._sample(tex["rocket"], np.array([-0.3]), np.array([1.2]))[0])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("n_views", 0, "SceneSpec.n_views"),
        ("size", 0, "SceneSpec.size"),
        ("supersample", 0, "SceneSpec.supersample"),
        ("seed", -1, "SceneSpec.seed"),
        ("radius", 0.0, "SceneSpec.radius"),
        ("fov_deg", 180.0, "SceneSpec.fov_deg"),
        ("fov_deg", 0.0, "SceneSpec.fov_deg"),
    ],
)
def test_scene_options_out_of_range_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        SceneSpec(**{field: value})


def test_renders_follow_each_pixels_ray_with_separate_focal_lengths(scene):
    """Depth is the camera z of the hit along the ray through each pixel centre, fx and fy apart."""
    viewmat = look_at(np.array([3.0, -2.0, 2.5]), np.array([0.0, 0.0, 0.4]), up=(0.0, 0.0, 1.0))
    K = np.array([[12.0, 0, 4.0], [0, 7.0, 3.5], [0, 0, 1]])
    rgba, depth = synthetic._render(scene, viewmat, K, 8)
    t, cam = cast_pixel_rays(scene, viewmat, K, 8)
    hit = np.isfinite(t)
    assert 0.5 < hit.mean() < 1.0  # the scene and some sky
    np.testing.assert_allclose(depth.reshape(-1)[hit], t[hit] / np.linalg.norm(cam, axis=1)[hit], rtol=1e-9)
    assert np.isinf(depth.reshape(-1)[~hit]).all()
    np.testing.assert_array_equal(rgba[..., 3].reshape(-1), hit.astype(float))


def test_the_point_cloud_has_exactly_the_points_asked_for(tmp_path):
    path = make_scene(tmp_path, SceneSpec(n_views=3, size=12, n_points=100, supersample=1, seed=4))  # 100 / 3 is no whole number
    assert len(read_ply(tmp_path / "points3d.ply")["x"]) == 100
    assert json.loads(path.read_text())["seed"] == 4


def test_textures_wrap_and_grey_photos_get_the_stone_tint():
    texture = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    np.testing.assert_array_equal(synthetic._sample(texture, np.array([0.3, 1.3, -0.7]), np.array([0.6, 0.6, 2.6])), texture[[1, 1, 1], [1, 1, 1]])
    # -1e-20 % 1.0 is exactly 1.0 in floating point: the last texel, not one past it
    np.testing.assert_array_equal(synthetic._sample(texture, np.array([-1e-20]), np.array([-1e-20])), texture[[1], [3]])
    brick = synthetic._texture("brick")
    import skimage.data

    grey = skimage.data.brick().astype(np.float32) / 255
    np.testing.assert_allclose(brick, np.stack([grey * 0.85, grey * 0.7, grey * 0.55], -1))


def test_box_filter_averages_premultiplied_colour():
    block = np.zeros((2, 2, 4))
    block[0, 0] = [1.0, 0.2, 0.0, 1.0]  # one opaque pixel, three transparent (their colour is 0)
    block[0, 1] = [0.0, 1.0, 1.0, 0.0]  # a transparent pixel's colour must not leak in
    out = synthetic._box_filter(block, 2)
    np.testing.assert_allclose(out, [[[1.0, 0.2, 0.0, 0.25]]])
    assert synthetic._box_filter(block, 1) is block


def test_cameras_spiral_over_the_hemisphere_looking_at_the_centre():
    cams = hemisphere_cameras(SceneSpec(n_views=10, size=64, radius=3.0, fov_deg=60.0))
    target = np.array([0.0, 0.0, 0.45])
    c2w = np.linalg.inv(cams.viewmats)
    offsets = c2w[:, :3, 3] - target
    np.testing.assert_allclose(np.linalg.norm(offsets, axis=1), 3.0)
    elevations = np.degrees(np.arcsin(offsets[:, 2] / 3.0))
    np.testing.assert_allclose(elevations, 15.0 + 55.0 * (np.arange(10) + 0.5) / 10)
    azimuth_steps = np.diff(np.unwrap(np.arctan2(offsets[:, 1], offsets[:, 0])))
    np.testing.assert_allclose(np.mod(azimuth_steps, 2 * np.pi), math.pi * (3 - math.sqrt(5)))  # the golden angle
    np.testing.assert_allclose(c2w[:, :3, 2], -offsets / 3.0, atol=1e-12)  # optical axes through the target
    focal = 32 / math.tan(math.radians(30))
    np.testing.assert_allclose(cams.Ks[0], [[focal, 0, 32], [0, focal, 32], [0, 0, 1]])
    assert cams.names[:2] == ("r_000.png", "r_001.png")


def test_shading_is_ambient_in_shadow_and_lambertian_in_light(scene):
    def pixel_at(point, eye):
        """The one-pixel render of a camera at ``eye`` whose centre ray meets ``point``."""
        point, eye = np.asarray(point, dtype=np.float64), np.asarray(eye, dtype=np.float64)
        K = np.array([[10.0, 0, 0.5], [0, 10.0, 0.5], [0, 0, 1]])
        rgba, depth = synthetic._render(scene, look_at(eye, point, up=(0.0, 0.0, 1.0)), K, 1)
        t, _, albedo = cast(scene, eye, (point - eye) / np.linalg.norm(point - eye))
        assert t == pytest.approx(np.linalg.norm(point - eye)) and depth[0, 0] == pytest.approx(t)  # the point is what the camera sees
        return rgba[0, 0], albedo

    center = scene.spheres[0][0]
    shadowed = center - center[2] / LIGHT_DIR[2] * LIGHT_DIR  # on the ground, behind the sphere's centre from the light
    rgba, albedo = pixel_at(shadowed, shadowed + np.array([-1.0, 2.0, 1.5]))
    np.testing.assert_allclose(rgba, [*(albedo * AMBIENT), 1.0], atol=1e-12)
    open_ground = np.array([2.0, -2.0, 0.0])
    rgba, albedo = pixel_at(open_ground, open_ground + np.array([0.3, 0.2, 3.0]))
    np.testing.assert_allclose(rgba, [*(albedo * (AMBIENT + (1 - AMBIENT) * LIGHT_DIR[2])), 1.0], atol=1e-12)


def surface_distances(scene, points):
    """[P, 6] distance of each point to the ground square, the two spheres, the box, the cylinder's
    side and its top (inf where the point is outside that surface's extent)."""
    inf = np.inf
    ground = np.where((np.abs(points[:, :2]) <= GROUND_HALF + 1e-9).all(1), np.abs(points[:, 2]), inf)
    spheres = [np.abs(np.linalg.norm(points - c, axis=1) - r) for c, r, _ in scene.spheres]
    local = (points - scene.box_center) @ box_rotation(scene)
    excess = np.abs(local) - scene.box_half  # on the box: all <= 0 and the largest is 0
    box = np.where((excess <= 1e-9).all(1), np.abs(excess.max(1)), inf)
    radial = np.linalg.norm(points[:, :2] - scene.cyl_center, axis=1)
    side = np.where((points[:, 2] >= -1e-9) & (points[:, 2] <= scene.cyl_height + 1e-9), np.abs(radial - scene.cyl_radius), inf)
    top = np.where(radial <= scene.cyl_radius + 1e-9, np.abs(points[:, 2] - scene.cyl_height), inf)
    return np.stack([ground, *spheres, box, side, top], 1)


def test_the_point_cloud_lies_on_the_surfaces_with_their_shaded_colours(scene, written):
    props = read_ply(written / "points3d.ply")
    points = np.stack([props["x"], props["y"], props["z"]], -1).astype(np.float64)
    colors = np.stack([props["red"], props["green"], props["blue"]], -1).astype(np.float64) / 255
    assert points.shape == (1200, 3)
    distances = surface_distances(scene, points)
    assert distances.min(1).max() < 1e-9  # back-projected depths land exactly on the surfaces
    counts = np.bincount(distances.argmin(1), minlength=6)
    assert counts[0] > 300 and (counts[1:] >= 10).all(), counts  # sampled all over the views, not one image band
    assert len(np.unique(np.round(points, 6), axis=0)) > 1150  # drawn without replacement

    # Lambertian shading does not depend on the view: each point's colour is its surface's albedo times
    # the light it gets, whichever camera it was sampled from (the ray that hit it started at the camera;
    # a ray from just off the surface finds the same texel)
    normals = np.zeros_like(points)
    kind = distances.argmin(1)
    normals[kind == 0] = [0, 0, 1]
    for index, (center, radius, _) in enumerate(scene.spheres, start=1):
        normals[kind == index] = (points[kind == index] - center) / radius
    rot = box_rotation(scene)
    local = (points[kind == 3] - scene.box_center) @ rot
    axis = np.argmax(np.abs(local) / scene.box_half, axis=1)
    face = np.zeros_like(local)
    face[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
    normals[kind == 3] = face @ rot.T
    radial = points[kind == 4, :2] - scene.cyl_center
    normals[kind == 4] = np.concatenate([radial / scene.cyl_radius, np.zeros((len(radial), 1))], 1)
    normals[kind == 5] = [0, 0, 1]
    _, _, albedo = scene.intersect(points + 1e-3 * normals, -normals)
    shadow_t, _, _ = scene.intersect(points + 1e-4 * normals, np.broadcast_to(LIGHT_DIR, points.shape).copy())
    light = AMBIENT + (1 - AMBIENT) * np.clip(normals @ LIGHT_DIR, 0, 1) * ~np.isfinite(shadow_t)
    error = np.abs(colors - np.clip(albedo * light[:, None], 0, 1)).max(1)
    assert (error <= 0.5 / 255 + 1e-9).mean() > 0.97  # the rest sit on texel edges
    assert (light == AMBIENT).mean() > 0.05  # some points are in shadow


def test_written_views_match_the_cameras_and_are_transparent_where_rays_miss(scene, written):
    frames = read_transforms(written / "transforms.json")
    assert len(frames.cameras.viewmats) == 12
    np.testing.assert_allclose(frames.cameras.viewmats, hemisphere_cameras(SPEC).viewmats, atol=1e-6)
    image = read_image(written / "images" / "r_005.png", mode="keep")
    assert image.shape == (32, 32, 4)
    # one ray per pixel centre at the written resolution: where it hits nothing, alpha is 0
    cams = hemisphere_cameras(SPEC)
    t, _ = cast_pixel_rays(scene, cams.viewmats[5], cams.Ks[5], 32)
    hit = np.isfinite(t).reshape(32, 32)
    alpha = image[..., 3]
    assert (alpha[hit] > 0).mean() > 0.97 and (alpha[~hit] < 255).mean() > 0.97  # supersampled edges are partial
    assert (alpha[~hit] == 0).mean() > 0.8
    assert ((alpha > 0) & (alpha < 255)).sum() > 10  # supersampled: object edges cover part of a pixel
