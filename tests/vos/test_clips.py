"""Training clips: rectangular sizes, per-clip speed ranges, crops and mirroring that keep frames and
masks aligned."""

import numpy as np
import pytest

from mnemovision.vos.clips import IMAGENET_MEAN, IMAGENET_STD, SyntheticClips, VideoClips
from tests.vos.test_data import write_davis_video


def test_synthetic_clips_are_rectangular_deterministic_and_move():
    data = SyntheticClips(length=4, size=(48, 80), frames=4, objects=2, motion=(0.2, 0.6), seed=3)
    a, b = data[1], data[1]
    assert a["inputs"].shape == (4, 3, 48, 80) and a["data_samples"].shape == (4, 2, 48, 80)
    assert np.array_equal(a["inputs"].numpy(), b["inputs"].numpy())  # a pure function of (seed, index)
    masks = a["data_samples"].numpy()
    assert set(np.unique(masks)) <= {0.0, 1.0} and (masks.sum(1) <= 1).all()  # occlusion: one owner per pixel
    assert masks[0].sum() > 0.05 * 48 * 80
    moved = [np.logical_xor(masks[0, k], masks[-1, k]).mean() for k in range(2)]
    assert max(moved) > 0.01  # objects move between the first and last frame


def test_speed_range_spans_slow_and_fast_clips():
    still = SyntheticClips(length=1, size=48, frames=3, objects=1, motion=(0.0, 0.0), seed=1)[0]["data_samples"].numpy()
    assert np.array_equal(still[0], still[-1])
    fast = SyntheticClips(length=1, size=48, frames=3, objects=1, motion=(1.0, 1.0), seed=1)[0]["data_samples"].numpy()
    assert not np.array_equal(fast[0], fast[-1])


@pytest.mark.parametrize("options, message", [
    (dict(size=0), "SyntheticClips.size must be an int >= 1, got 0"),  # once a ZeroDivisionError
    (dict(frames=0), "SyntheticClips.frames must be an int >= 1, got 0"),  # once empty clips
    (dict(objects=0), "SyntheticClips.objects must be an int >= 1, got 0"),
    (dict(motion=(0.6, 0.1)), "low <= high"),  # once numpy's "high - low < 0"
    (dict(motion=float("nan")), "SyntheticClips.motion must be a finite number >= 0, got nan"),
])
def test_clip_options_out_of_range_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        SyntheticClips(length=1, **options)


def test_the_clip_loss_refuses_clips_it_cannot_learn_from():
    import torch

    from mnemovision.vos.losses import clip_loss
    from mnemovision.vos.models import build_jointformer

    net = build_jointformer("tiny")
    with pytest.raises(ValueError, match="T >= 2 frames, K >= 1 objects and H, W multiples of 16 .the network's stride., got T=1, K=1, 32x32"):
        clip_loss(net, torch.zeros(1, 1, 3, 32, 32), torch.zeros(1, 1, 1, 32, 32), 1.0)  # once a loss without gradient
    with pytest.raises(ValueError, match="got T=2, K=1, 40x32"):
        clip_loss(net, torch.zeros(1, 2, 3, 40, 32), torch.zeros(1, 2, 1, 40, 32), 1.0)
    with pytest.raises(ValueError, match="frames .B, T, 3, H, W. and masks .B, T, K, H, W., got .1, 2, 3, 32, 32. and .1, 3, 1, 32, 32."):
        clip_loss(net, torch.zeros(1, 2, 3, 32, 32), torch.zeros(1, 3, 1, 32, 32), 1.0)
    loss = clip_loss(net, torch.zeros(1, 2, 3, 32, 32), torch.zeros(1, 2, 1, 32, 32), 1.0)
    assert loss["loss_ce"].requires_grad


def write_bright_box_video(root, name="box", frames=6, size=(80, 140)):
    """A DAVIS-format video: a white box on black, left of centre, drifting right a pixel a frame."""
    masks = {t: np.zeros(size, np.uint8) for t in range(frames)}
    for t, mask in masks.items():
        mask[20:60, 15 + t : 55 + t] = 1
    write_davis_video(root, name, [np.repeat(m[..., None] * 255, 3, axis=2) for m in masks.values()], masks)


def test_video_clips_crop_and_mirror_frames_and_masks_together(tmp_path):
    write_bright_box_video(tmp_path)
    centres = []
    for min_crop in (1.0, 0.6):
        data = VideoClips(root=str(tmp_path), length=16, size=(48, 80), frames=3, objects=1, max_jump=2, min_crop=min_crop, seed=0)
        for i in range(16):
            clip = data[i]
            assert clip["inputs"].shape == (3, 3, 48, 80) and clip["data_samples"].shape == (3, 1, 48, 80)
            grey = (clip["inputs"].numpy() * IMAGENET_STD[None, :, None, None] + IMAGENET_MEAN[None, :, None, None]).mean(1)
            inside = clip["data_samples"].numpy()[:, 0] > 0.5
            assert inside.any(axis=(1, 2)).all()
            assert grey[inside].mean() > 0.8 and grey[~inside].mean() < 0.2  # the mask sits on the box in every frame
            centres.append(np.nonzero(inside[0])[1].mean() / 80)
    assert min(centres) < 0.45 and max(centres) > 0.55  # mirrored clips put the box right of centre


def test_mixed_clips_interleave_real_and_synthetic(tmp_path):
    from mnemovision.vos.clips import MixedClips

    write_bright_box_video(tmp_path)
    video = dict(root=str(tmp_path), size=(48, 80), frames=3, objects=1, max_jump=2)
    mixed = MixedClips(video=video, synthetic=dict(size=(48, 80), frames=3, objects=1, photos=("astronaut",)), length=6, every=3)
    for i in range(6):
        real = VideoClips(length=6, **video)[i]["inputs"].numpy()
        assert np.array_equal(mixed[i]["inputs"].numpy(), real) == (i % 3 != 2), i
    with pytest.raises(ValueError, match="differ in 'frames'"):
        MixedClips(video=video, synthetic=dict(size=(48, 80), frames=4, objects=1, photos=("astronaut",)))


def test_denormalise_inverts_normalise_exactly():
    from mnemovision.vos.clips import denormalise, normalise

    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    frames[0, 0, 0] = (0, 255, 128)
    inputs = normalise(frames)
    assert inputs.shape == (2, 3, 5, 7)
    np.testing.assert_allclose(inputs[1, :, 2, 3].numpy(), (frames[1, 2, 3] / 255 - IMAGENET_MEAN) / IMAGENET_STD, rtol=1e-6)
    np.testing.assert_array_equal(denormalise(inputs), frames)  # rounded, not truncated


@pytest.mark.parametrize("options, message", [
    (dict(size=(8, 8, 8)), r"SyntheticClips.size must be an int or \(H, W\), got \(8, 8, 8\)"),
    (dict(seed=-1), "SyntheticClips.seed must be an int >= 0, got -1"),
    (dict(motion=(0.1, 0.2, 0.3)), r"must be a number or \(low, high\)"),
])
def test_more_clip_options_out_of_range_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        SyntheticClips(length=1, **options)


def test_blob_masks_cover_a_tenth_to_a_third_of_the_frame():
    from mnemovision.vos.clips import blob_mask

    cover = [blob_mask(np.random.default_rng(seed), (48, 80)).mean() for seed in range(60)]
    assert 0.09 <= min(cover) < 0.15 and 0.30 < max(cover) <= 0.36  # the quantile sets the area drawn in [0.1, 0.35]


def test_random_motions_span_their_ranges():
    from mnemovision.vos.clips import random_motion

    rng = np.random.default_rng(0)
    draws = [random_motion(rng, (40, 60)) for _ in range(200)]
    angles, scales = np.array([d["angle"] for d in draws]), np.array([d["scale"] for d in draws])
    shifts = np.array([d["shift"] for d in draws])
    assert np.abs(angles).max() <= 20 and angles.min() < -15 and angles.max() > 15  # degrees
    assert np.abs(scales).max() <= 0.15 and scales.min() < -0.1 and scales.max() > 0.1
    assert np.abs(shifts).max() <= 0.12 * 40 and np.abs(shifts).max() > 0.09 * 40  # a fraction of the shorter side
    assert all(e.shape == (40, 60) and e.std() > 0.1 for d in draws[:5] for e in d["elastic"])


def test_warp_maps_sample_the_inverse_of_rotation_scale_and_shift_plus_elastic():
    from mnemovision.vos.clips import warp_maps

    h, w, t = 30, 50, 0.5
    rng = np.random.default_rng(1)
    elastic = [rng.standard_normal((h, w)).astype(np.float32) for _ in range(2)]
    motion = {"angle": 30.0, "scale": 0.2, "shift": np.array([4.0, -3.0]), "elastic": elastic}
    map_x, map_y = warp_maps(motion, (h, w), t)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle, s, (cx, cy) = np.radians(30.0 * t), 1 + 0.2 * t, (w / 2, h / 2)
    a, b = s * np.cos(angle), s * np.sin(angle)  # OpenCV's rotation: positive angles turn counter-clockwise on screen
    sx, sy = map_x - elastic[0] * t, map_y - elastic[1] * t  # the affine part of the sampling map
    np.testing.assert_allclose(a * sx + b * sy + (1 - a) * cx - b * cy + 4.0 * t, xx, atol=2e-3)
    np.testing.assert_allclose(-b * sx + a * sy + b * cx + (1 - a) * cy - 3.0 * t, yy, atol=2e-3)
    still_x, still_y = warp_maps(motion, (h, w), 0.0)
    np.testing.assert_allclose(still_x, xx, atol=1e-4)
    np.testing.assert_allclose(still_y, yy, atol=1e-4)


def shift_motion(dx: float, size: tuple[int, int]) -> dict:
    """A motion that only shifts right by ``dx`` pixels per unit time."""
    return {"angle": 0.0, "scale": 0.0, "shift": np.array([dx, 0.0]), "elastic": [np.zeros(size, np.float32)] * 2}


def test_compose_clip_moves_the_background_slower_and_pastes_moved_layers():
    from mnemovision.vos.clips import compose_clip

    size = (24, 40)
    background = np.random.default_rng(2).integers(0, 200, (*size, 3), dtype=np.uint8)
    frames, masks = compose_clip(background, shift_motion(10.0, size), [], 1.0, 3)
    assert frames.shape == (3, 24, 40, 3) and masks.shape == (3, 0, 24, 40)
    np.testing.assert_array_equal(frames[0], background)
    np.testing.assert_array_equal(frames[2][:, 6:], background[:, :-6])  # 0.3 x speed: 6 px after 2 frames

    layer_mask = np.zeros(size, np.float32)
    layer_mask[:, :10] = 1.0  # touches the left border
    texture = np.full((*size, 3), 250, np.uint8)
    frames, masks = compose_clip(background, shift_motion(0.0, size), [(texture, layer_mask, shift_motion(5.0, size))], 1.0, 2)
    expected = np.zeros(size, np.float32)
    expected[:, 5:15] = 1.0  # nothing comes in from beyond the border
    np.testing.assert_array_equal(masks[1, 0], expected)
    assert (frames[1][:, 5:15] == 250).all()
    np.testing.assert_array_equal(frames[1][:, :5], background[:, :5])
    np.testing.assert_array_equal(frames[1][:, 15:], background[:, 15:])


def test_synthetic_crops_keep_the_aspect_and_span_a_third_to_all_of_the_photo():
    data = SyntheticClips(length=1, size=(16, 32), photos=("astronaut",))
    ramp = np.zeros((128, 256, 3), np.uint8)
    ramp[..., 0] = np.arange(256)[None, :]
    ramp[..., 1] = 2 * np.arange(128)[:, None]
    data.photos = [ramp]
    rng = np.random.default_rng(0)
    spans = []
    for _ in range(40):
        crop = data._crop(rng, (16, 32)).astype(int)
        assert crop.shape == (16, 32, 3)
        x_span, y_span = np.ptp(crop[..., 0]), np.ptp(crop[..., 1])
        assert abs(x_span - y_span) <= 16  # the photo's aspect: a crop 2:1 like the output
        spans.append(x_span / 255)
    assert min(spans) >= 0.28 and min(spans) < 0.45 and max(spans) > 0.9


def write_counting_video(root, name="count", frames=10, size=(32, 48)):
    """A DAVIS-format video whose frame t is a flat grey of level 20 t + 10, with objects 1 and 2 and a
    void (255) band in every mask."""
    mask = np.zeros(size, np.uint8)
    mask[4:12, 4:20], mask[16:28, 24:44], mask[:, 46:] = 1, 2, 255
    write_davis_video(root, name, [np.full((*size, 3), 20 * t + 10, np.uint8) for t in range(frames)], dict.fromkeys(range(frames), mask))


def test_video_clips_pick_random_starts_and_forward_jumps_up_to_max_jump(tmp_path):
    from mnemovision.vos.clips import denormalise

    write_counting_video(tmp_path)
    data = VideoClips(root=str(tmp_path), length=40, size=(32, 48), frames=3, objects=3, max_jump=3, seed=0)
    picks = []
    for i in range(40):
        clip = data[i]
        picks.append([int(round((f.mean() - 10) / 20)) for f in denormalise(clip["inputs"])])
        masks = clip["data_samples"].numpy()
        assert masks[:, 0].sum() > 0 and masks[:, 1].sum() > 0 and masks[:, 2].sum() == 0  # ids 1, 2; 255 is void
    picks = np.array(picks)
    steps, came_from = np.diff(picks, axis=1), picks[:, :-1]
    assert (steps[came_from < 9] >= 1).all() and (steps[came_from == 9] == 0).all()  # forward; the last frame repeats
    assert steps.max() == 3 and (steps == 1).any()  # jumps up to max_jump
    assert len({p[0] for p in picks}) >= 5 and max(p[0] for p in picks) <= 6  # starts leave room for the clip
    again = VideoClips(root=str(tmp_path), length=40, size=(32, 48), frames=3, objects=3, max_jump=3, seed=0)[7]
    assert np.array_equal(again["inputs"].numpy(), data[7]["inputs"].numpy())
    other = VideoClips(root=str(tmp_path), length=40, size=(32, 48), frames=3, objects=3, max_jump=3, seed=1)
    assert any(not np.array_equal(other[i]["inputs"].numpy(), data[i]["inputs"].numpy()) for i in range(8))


@pytest.mark.parametrize("options, message", [
    (dict(max_jump=0), "VideoClips.max_jump must be an int >= 1, got 0"),
    (dict(min_crop=0.0), "VideoClips.min_crop must be"),
    (dict(min_crop=1.5), "VideoClips.min_crop must be"),
])
def test_video_clip_options_out_of_range_are_named(tmp_path, options, message):
    write_counting_video(tmp_path)
    with pytest.raises(ValueError, match=message):
        VideoClips(root=str(tmp_path), **options)


def test_mixed_clips_take_synthetic_clips_in_order_and_check_their_shapes(tmp_path):
    from mnemovision.vos.clips import MixedClips

    write_bright_box_video(tmp_path)
    video = dict(root=str(tmp_path), size=(48, 48), frames=3, objects=1, max_jump=2)
    synthetic = dict(size=48, frames=3, objects=1, photos=("astronaut",))  # 48 is (48, 48)
    mixed = MixedClips(video=video, synthetic=synthetic, length=6, every=3)
    made = SyntheticClips(**synthetic)
    for i in (2, 5):
        assert np.array_equal(mixed[i]["inputs"].numpy(), made[i // 3]["inputs"].numpy())
    for other, key in ((dict(synthetic, size=40), "size"), (dict(synthetic, objects=2), "objects")):
        with pytest.raises(ValueError, match=f"differ in '{key}'"):
            MixedClips(video=video, synthetic=other)
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        MixedClips(video=video, synthetic=synthetic, every=0)


def test_blobs_are_one_compact_region_near_the_middle():
    import cv2

    from mnemovision.vos.clips import blob_mask

    single, centres = 0, []
    for seed in range(100):
        mask = blob_mask(np.random.default_rng(seed), (48, 80))
        single += cv2.connectedComponents(mask.astype(np.uint8))[0] == 2  # background and one blob
        ys, xs = np.nonzero(mask)
        centres.append((ys.mean() / 48, xs.mean() / 80))
    assert single >= 90  # 94 of these 100; noise thresholded alone gives scattered islands
    assert 0.2 < np.min(centres) and np.max(centres) < 0.8  # centred in [0.3, 0.7] of each side


def test_moved_layer_masks_keep_pixels_more_than_half_covered():
    from mnemovision.vos.clips import compose_clip

    size = (12, 40)
    layer_mask = np.zeros(size, np.float32)
    layer_mask[:, 10:20] = 1.0
    texture = np.full((*size, 3), 250, np.uint8)
    background = np.zeros((*size, 3), np.uint8)
    _, masks = compose_clip(background, shift_motion(0.0, size), [(texture, layer_mask, shift_motion(10.3, size))], 1.0, 2)
    expected = np.zeros(size, np.float32)
    expected[:, 20:30] = 1.0  # column 30 is 0.3 covered: out; column 20 is 0.7 covered: in
    np.testing.assert_array_equal(masks[1, 0], expected)


def test_each_synthetic_clip_draws_its_own_content_and_speed():
    data = SyntheticClips(length=8, size=32, frames=3, objects=1, motion=(0.0, 1.0), photos=("astronaut", "coffee"), seed=0)
    clips = [data[i] for i in range(8)]
    assert not np.array_equal(clips[0]["inputs"].numpy(), clips[1]["inputs"].numpy())  # (seed, index), not seed alone
    moved = [np.logical_xor(c["data_samples"][0, 0].numpy() > 0, c["data_samples"][-1, 0].numpy() > 0).mean() for c in clips]
    assert max(moved) > 0.01  # speeds drawn in [0, 1], not all at the low end


def test_video_clips_draw_each_crop_side_and_read_masks_by_nearest_id(tmp_path, monkeypatch):
    import cv2

    from mnemovision.vos.clips import denormalise

    ramp = np.zeros((32, 256, 3), np.uint8)
    ramp[..., 0] = np.arange(256)[None, :]  # red = column
    mask = np.zeros((32, 256), np.uint8)
    mask[4:12, 4:60], mask[16:28, 100:200] = 1, 2
    write_davis_video(tmp_path, "ramp", [ramp] * 4, dict.fromkeys(range(4), mask))
    data = VideoClips(root=str(tmp_path), length=20, size=(20, 30), frames=2, objects=2, min_crop=0.5, seed=0)
    spans = []
    for i in range(20):
        clip = data[i]
        spans.append(np.ptp(denormalise(clip["inputs"])[0, ..., 0].astype(int)))
        for one, two in clip["data_samples"].numpy().astype(np.uint8):  # the objects are >= 4 px apart in every crop
            near_two = cv2.dilate(two, np.ones((5, 5), np.uint8))  # bilinear ids would give 1s on object 2's edge
            assert two.any() and not (one & near_two).any()
    assert min(spans) < 160 and max(spans) > 220  # crop widths from half to all of the 256 columns
    (tmp_path / "no_data").mkdir()
    monkeypatch.setenv("MNEMOVISION_DATA", str(tmp_path / "no_data"))  # a shared data folder without it
    with pytest.raises(FileNotFoundError, match="VideoClips: no root given and vos/davis2016 not found"):
        VideoClips()
